//! The issuer's signing keys (JWKS), fetched over HTTPS on the first token, again when a token
//! names an unknown `kid` — at most one attempt per `VD_PSC_JWKS_REFETCH_SECS`, failed or not,
//! so that tokens with made-up `kid`s or an issuer that is down cannot make the server hammer
//! it — and once the keys are [`MAX_AGE`] old, so that a key the issuer withdrew stops being
//! accepted (while the issuer cannot be reached, the keys in hand are kept). One download at a
//! time; requests waiting for it share its outcome. RS256, PS256 and ES256 only.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};

use super::claims::Claims;
use super::{Refused, TokenError};
use crate::config::PscIssuer;

/// The algorithms accepted from the issuer.
pub(crate) const ALLOWED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];

const MAX_JWKS_BYTES: usize = 256 * 1024;

/// How long downloaded keys are used before they are downloaded again.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(3600);

/// The last download attempt.
#[derive(Clone, Copy)]
struct Attempt {
    at: Instant,
    ok: bool,
}

struct Key {
    key: DecodingKey,
    /// The JWK's `alg`, when it names one of ours.
    alg: Option<Algorithm>,
}

/// The keys by `kid`, and when they were downloaded.
type KeySet = (HashMap<String, Arc<Key>>, Option<Instant>);

/// The JWKS cache.
pub(crate) struct Jwks {
    url: String,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    refetch: Duration,
    keys: RwLock<KeySet>,
    /// The last attempt; held across a download so that one runs at a time.
    attempt: tokio::sync::Mutex<Option<Attempt>>,
}

impl Jwks {
    pub(crate) fn new(settings: &PscIssuer, tls: Arc<rustls::ClientConfig>) -> Self {
        Jwks {
            url: settings.jwks_url.clone(),
            tls,
            timeout: settings.timeout,
            refetch: settings.jwks_refetch,
            keys: RwLock::new((HashMap::new(), None)),
            attempt: tokio::sync::Mutex::new(None),
        }
    }

    /// The key `kid` if known, and whether the keys are fresh.
    fn cached(&self, kid: &str) -> (Option<Arc<Key>>, bool) {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = keys.1.is_some_and(|at| at.elapsed() < MAX_AGE);
        (keys.0.get(kid).cloned(), fresh)
    }

    /// The key `kid`, downloading the JWKS when it is unknown or the keys are old, and the last
    /// attempt allows.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, TokenError> {
        if let (Some(k), true) = self.cached(kid) {
            return Ok(k);
        }
        let mut attempt = self.attempt.lock().await;
        let (known, fresh) = self.cached(kid);
        if let (Some(k), true) = (&known, fresh) {
            return Ok(k.clone());
        }
        if let Some(last) = attempt.filter(|a| a.at.elapsed() < self.refetch) {
            return match (known, last.ok) {
                (Some(k), _) => Ok(k),
                (None, true) => Err(Refused("token_kid_unknown").into()),
                (None, false) => Err(TokenError::Unavailable(anyhow::anyhow!(
                    "JWKS download failed less than {} s ago",
                    self.refetch.as_secs()
                ))),
            };
        }
        let downloaded = self.download().await;
        *attempt = Some(Attempt {
            at: Instant::now(),
            ok: downloaded.is_ok(),
        });
        match downloaded {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "PSC JWKS fetched");
                let found = keys.get(kid).cloned();
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    (keys, Some(Instant::now()));
                found.ok_or(Refused("token_kid_unknown").into())
            }
            // The keys in hand stay in use while the issuer cannot be reached.
            Err(e) => match known {
                Some(k) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "PSC JWKS refresh failed; the keys in hand are kept"
                    );
                    Ok(k)
                }
                None => Err(TokenError::Unavailable(e)),
            },
        }
    }

    async fn download(&self) -> anyhow::Result<HashMap<String, Arc<Key>>> {
        let body = crate::http_client::send(
            crate::http_client::Outbound::get(&self.url),
            Some(&self.tls),
            self.timeout,
            MAX_JWKS_BYTES,
        )
        .await
        .map_err(|e| e.context("JWKS download"))?;
        parse(&body)
    }

    /// Downloads the JWKS now (`check-config`): how many signing keys it holds.
    pub(crate) async fn fetch_now(&self) -> anyhow::Result<usize> {
        Ok(self.download().await?.len())
    }

    /// Verifies a PSC JWT's signature with the key its `kid` names and the header's algorithm
    /// (in the allow-list, of the key's family, and the JWK's own `alg` when it has one).
    pub(crate) async fn verify(&self, raw: &str, header: &Header) -> Result<Claims, TokenError> {
        if !ALLOWED.contains(&header.alg) {
            return Err(Refused("token_algorithm").into());
        }
        let kid = header.kid.as_deref().ok_or(Refused("token_no_kid"))?;
        let key = self.key(kid).await?;
        if key.alg.is_some_and(|a| a != header.alg) || key.key.family() != header.alg.family() {
            return Err(Refused("token_algorithm").into());
        }
        decode(raw, &key.key, header.alg)
    }
}

/// Decodes with signature checking only: the claims (issuer, audience, dates) are checked by
/// `claims`, with the spec's leeway and the right refusal words.
pub(crate) fn decode(raw: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, TokenError> {
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    jsonwebtoken::decode::<Claims>(raw, key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Refused("token_signature").into(),
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Refused("token_algorithm").into(),
            _ => Refused("token_malformed").into(),
        })
}

/// The signing keys of a JWKS document, by `kid`; encryption keys and key types or algorithms
/// outside the allow-list are left out.
fn parse(body: &[u8]) -> anyhow::Result<HashMap<String, Arc<Key>>> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set =
        serde_json::from_slice(body).map_err(|_| anyhow::anyhow!("JWKS: not a JWK set"))?;
    let mut out = HashMap::new();
    for raw in set.keys {
        if raw
            .get("use")
            .and_then(|u| u.as_str())
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        if alg.is_some_and(|a| !ALLOWED.contains(&a)) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if !matches!(key.family(), AlgorithmFamily::Rsa | AlgorithmFamily::Ec) {
            continue;
        }
        out.insert(kid, Arc::new(Key { key, alg }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_of_the_allowed_kinds_are_kept() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig", "alg": "ES256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "es384", "alg": "ES384",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "unknown"}
        ]});
        let keys = parse(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ec"]);
        assert!(parse(b"{}").is_err());
    }
}
