//! The issuer's signing keys (JWKS), fetched over HTTPS on the first token and again when a token
//! names an unknown `kid` — at most once per `VD_PSC_JWKS_REFETCH_SECS`, so that tokens with
//! made-up `kid`s cannot make the server hammer the issuer. RS256, PS256 and ES256 only.

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

struct Key {
    key: DecodingKey,
    /// The JWK's `alg`, when it names one of ours.
    alg: Option<Algorithm>,
}

/// The JWKS cache.
pub(crate) struct Jwks {
    url: String,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    refetch: Duration,
    keys: RwLock<HashMap<String, Arc<Key>>>,
    /// When the keys were last fetched; held across a fetch so that one fetch runs at a time.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub(crate) fn new(settings: &PscIssuer, tls: Arc<rustls::ClientConfig>) -> Self {
        Jwks {
            url: settings.jwks_url.clone(),
            tls,
            timeout: settings.timeout,
            refetch: settings.jwks_refetch,
            keys: RwLock::new(HashMap::new()),
            fetched: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    /// The key `kid`, fetching the JWKS when it is unknown and the last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, TokenError> {
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let mut fetched = self.fetched.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        if fetched.is_some_and(|at| at.elapsed() < self.refetch) {
            return Err(Refused("token_kid_unknown").into());
        }
        let body = crate::http_client::send(
            crate::http_client::Outbound::get(&self.url),
            Some(&self.tls),
            self.timeout,
            MAX_JWKS_BYTES,
        )
        .await
        .map_err(|e| TokenError::Unavailable(e.context("JWKS download")))?;
        *fetched = Some(Instant::now());
        let keys = parse(&body).map_err(TokenError::Unavailable)?;
        tracing::info!(keys = keys.len(), "PSC JWKS fetched");
        let found = keys.get(kid).cloned();
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        found.ok_or(Refused("token_kid_unknown").into())
    }

    /// Downloads the JWKS now (`check-config`): how many signing keys it holds.
    pub(crate) async fn fetch_now(&self) -> anyhow::Result<usize> {
        let body = crate::http_client::send(
            crate::http_client::Outbound::get(&self.url),
            Some(&self.tls),
            self.timeout,
            MAX_JWKS_BYTES,
        )
        .await?;
        Ok(parse(&body)?.len())
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
