//! Opaque tokens, checked by RFC 7662 introspection at the issuer (client credentials by HTTP
//! Basic, or the configured client certificate). An active answer is kept, by the token's
//! SHA-256, until the earlier of its `exp` and `VD_PSC_INTROSPECTION_CACHE_SECS` (at most 60 s):
//! a token the issuer deactivates is refused at most that long after. An inactive answer is kept
//! as long, so that the same unknown token sent again does not reach the issuer again; at most
//! [`IN_FLIGHT`] requests are at the issuer at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::claims::Claims;
use super::{Refused, TokenError};
use crate::config::{PscIssuer, Secret};

const MAX_ANSWER_BYTES: usize = 64 * 1024;
const CACHE_ENTRIES: usize = 16_384;
/// Introspection requests at the issuer at once.
pub(crate) const IN_FLIGHT: usize = 16;

/// By token hash: until when, and the active answer (`None`: inactive).
type Cache = HashMap<[u8; 32], (Instant, Option<Claims>)>;

pub(crate) struct Introspection {
    url: String,
    tls: Arc<rustls::ClientConfig>,
    authorization: Option<Secret<String>>,
    timeout: Duration,
    keep: Duration,
    cache: Mutex<Cache>,
    in_flight: tokio::sync::Semaphore,
}

/// `application/x-www-form-urlencoded` value (RFC 6749 appendix B, also for Basic credentials).
pub(crate) fn form_encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s[1..].to_string())
        .unwrap_or_default()
}

impl Introspection {
    pub(crate) fn new(settings: &PscIssuer, url: String, tls: Arc<rustls::ClientConfig>) -> Self {
        let authorization = match (&settings.client_id, &settings.client_secret) {
            (Some(id), Some(secret)) => {
                let pair = format!("{}:{}", form_encode(id), form_encode(secret.expose()));
                Some(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )))
            }
            _ => None,
        };
        Introspection {
            url,
            tls,
            authorization,
            timeout: settings.timeout,
            keep: settings.introspection_cache,
            cache: Mutex::new(HashMap::new()),
            in_flight: tokio::sync::Semaphore::new(IN_FLIGHT),
        }
    }

    /// The issuer's answer for `token` (from the cache while it holds).
    pub(crate) async fn check(&self, token: &str) -> Result<Claims, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let lock = || self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((until, answer)) = lock().get(&key) {
            if Instant::now() < *until {
                return answer.clone().ok_or(Refused("token_inactive").into());
            }
        }
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| TokenError::Unavailable(e.into()))?;
        let form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let body = crate::http_client::send(
            crate::http_client::Outbound {
                url: &self.url,
                form: Some(form),
                authorization: self.authorization.as_ref().map(|a| a.expose().clone()),
            },
            Some(&self.tls),
            self.timeout,
            MAX_ANSWER_BYTES,
        )
        .await
        .map_err(|e| TokenError::Unavailable(e.context("token introspection")))?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|_| {
            TokenError::Unavailable(anyhow::anyhow!("token introspection: not a JSON answer"))
        })?;
        let remember = |until: Instant, answer: Option<Claims>| {
            let mut cache = lock();
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (until, answer));
        };
        if claims.active != Some(true) {
            if !self.keep.is_zero() {
                remember(Instant::now() + self.keep, None);
            }
            return Err(Refused("token_inactive").into());
        }
        let left = claims
            .exp
            .map(|exp| (exp - chrono::Utc::now().timestamp()).max(0) as u64)
            .map(Duration::from_secs)
            .unwrap_or(self.keep);
        let keep = self.keep.min(left);
        if !keep.is_zero() {
            remember(Instant::now() + keep, Some(claims.clone()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_values_are_escaped() {
        assert_eq!(super::form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
