//! Bearer tokens (spec/security.md "Pro Santé Connect"): Pro Santé Connect access tokens — JWTs
//! verified against the issuer's JWKS, or opaque tokens checked by introspection — and the tokens
//! this server issues by token exchange. A verified token becomes a [`TokenIdentity`]; its binding
//! to the connection's certificate and its replay are decided where the exchange knows its
//! connection ([`Tokens::bound`], [`Tokens::replay`]). A token is never logged, audited or shown:
//! only its issuer, `jti` and SHA-256.

mod claims;
mod introspect;
pub(crate) use introspect::form_encode;
pub mod issuer;
mod jwks;
mod replay;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use claims::Claims;
pub use claims::TokenIdentity;
use issuer::Issuer;

use crate::config::{TokenBinding, TokenSettings};

/// Why a token is refused: a fixed word the audit keeps in `motif` (never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// A token that could not be decided on.
#[derive(Debug)]
pub enum TokenError {
    /// The token is not acceptable: Fault 8002, `WWW-Authenticate: Bearer error="invalid_token"`.
    Refused(Refused),
    /// The issuer could not be asked (JWKS or introspection unreachable): 0999.
    Unavailable(anyhow::Error),
}

impl From<Refused> for TokenError {
    fn from(r: Refused) -> Self {
        TokenError::Refused(r)
    }
}

/// The token verifiers of this server.
pub struct Tokens {
    psc: Option<Psc>,
    /// This server's own tokens (token exchange).
    pub issuer: Option<Arc<Issuer>>,
    pub binding: TokenBinding,
    seen: replay::Seen,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("psc", &self.psc.as_ref().map(|p| &p.settings.issuer))
            .field("issuer", &self.issuer.as_ref().map(|i| &i.issuer))
            .field("binding", &self.binding)
            .finish()
    }
}

/// The Pro Santé Connect side: settings, JWKS cache, introspection client.
struct Psc {
    settings: crate::config::PscIssuer,
    keys: jwks::Jwks,
    introspection: Option<introspect::Introspection>,
}

/// The SHA-256 of a token, lower-case hex: what the audit keeps of it.
pub fn token_sha256(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

impl Tokens {
    /// Builds the verifiers: reads this server's token key, the issuer's trust roots and client
    /// identity. Nothing is fetched yet (the JWKS is fetched on the first token).
    pub fn load(settings: &TokenSettings) -> anyhow::Result<Self> {
        let psc = match &settings.psc {
            None => None,
            Some(p) => {
                let tls = Arc::new(https_config(p)?);
                Some(Psc {
                    keys: jwks::Jwks::new(p, tls.clone()),
                    introspection: p
                        .introspection_url
                        .as_ref()
                        .map(|url| introspect::Introspection::new(p, url.clone(), tls)),
                    settings: p.clone(),
                })
            }
        };
        let issuer = settings
            .exchange
            .as_ref()
            .map(Issuer::load)
            .transpose()?
            .map(Arc::new);
        Ok(Tokens {
            psc,
            issuer,
            binding: settings.binding,
            seen: replay::Seen::default(),
        })
    }

    /// What `check-config` reports: the issuer and its JWKS (downloaded now), the token
    /// exchange's clients. An issuer that cannot be reached is a warning, not an error: `serve`
    /// starts without it and tokens get 0999 until it answers.
    pub async fn report(&self) -> (Vec<String>, Vec<String>) {
        let (mut lines, mut warnings) = (Vec::new(), Vec::new());
        let Some(psc) = &self.psc else {
            lines.push("Pro Santé Connect: off (VD_PSC_ISSUER not set)".to_string());
            return (lines, warnings);
        };
        match psc.keys.fetch_now().await {
            Ok(0) => warnings.push(format!(
                "Pro Santé Connect: {} holds no usable signing key (RS256, PS256, ES256)",
                psc.settings.jwks_url
            )),
            Ok(n) => lines.push(format!(
                "Pro Santé Connect: tokens of {} ({n} signing key(s) at {}), introspection {}",
                psc.settings.issuer,
                psc.settings.jwks_url,
                if psc.introspection.is_some() {
                    "on"
                } else {
                    "off"
                }
            )),
            Err(e) => warnings.push(format!(
                "Pro Santé Connect: cannot download {}: {e:#}",
                psc.settings.jwks_url
            )),
        }
        match &self.issuer {
            Some(i) => lines.push(format!(
                "token exchange: POST /token for {} client(s), tokens of {} for {} s",
                i.clients.len(),
                i.issuer,
                i.lifetime.as_secs()
            )),
            None => lines.push("token exchange: off (VD_TOKEN_KEY not set)".to_string()),
        }
        (lines, warnings)
    }

    /// Whether any token can be accepted here.
    pub fn enabled(&self) -> bool {
        self.psc.is_some()
    }

    /// Verifies `raw` (the text after `Bearer `), whose [`token_sha256`] the caller computed for
    /// its audit row: signature or introspection, issuer, audience, dates, `acr`, subject.
    /// Binding and replay are [`Tokens::bound`]'s and [`Tokens::replay`]'s.
    pub async fn verify(&self, raw: &str, sha256: &str) -> Result<TokenIdentity, TokenError> {
        let Some(psc) = &self.psc else {
            return Err(Refused("token_not_accepted").into());
        };
        let sha256 = sha256.to_string();
        if !is_b64token(raw) {
            return Err(Refused("token_malformed").into());
        }
        if !is_jwt(raw) {
            let Some(introspection) = &psc.introspection else {
                return Err(Refused("token_malformed").into());
            };
            let claims = introspection.check(raw).await?;
            return claims::psc_identity(claims, &psc.settings, sha256, true);
        }
        let header = jsonwebtoken::decode_header(raw).map_err(|_| Refused("token_malformed"))?;
        // The issuer chooses the key; the signature is then checked with that issuer's keys only.
        let iss = unverified_issuer(raw).ok_or(Refused("token_malformed"))?;
        if let Some(ours) = self.issuer.as_ref().filter(|i| i.issuer == iss) {
            let claims: Claims = ours.verify(raw, &header)?;
            return claims::own_identity(claims, sha256);
        }
        if iss != psc.settings.issuer {
            return Err(Refused("token_issuer").into());
        }
        // An access token: not an ID token nor a refresh token of the same issuer.
        if header.typ.as_deref().is_some_and(|t| {
            !matches!(
                t.to_ascii_lowercase().as_str(),
                "jwt" | "at+jwt" | "application/at+jwt"
            )
        }) {
            return Err(Refused("token_type").into());
        }
        let claims: Claims = psc.keys.verify(raw, &header).await?;
        claims::psc_identity(claims, &psc.settings, sha256, false)
    }

    /// The token's binding on a connection whose client certificate has the SHA-256
    /// `thumbprint`: a bound token only with that certificate (constant-time comparison), an
    /// unbound one only where `bound_required` is false.
    pub fn bound(
        &self,
        token: &TokenIdentity,
        thumbprint: Option<&[u8]>,
        bound_required: bool,
    ) -> Result<(), Refused> {
        match (&token.thumbprint, thumbprint) {
            (Some(bound), Some(cert)) if constant_time_eq(bound, cert) => Ok(()),
            (Some(_), _) => Err(Refused("token_binding")),
            (None, _) if bound_required => Err(Refused("token_unbound")),
            (None, _) => Ok(()),
        }
    }

    /// Replay, across instances: an unbound token, or one that is `single_use` (a subject token
    /// of the exchange), may not have been seen before; a `jti` may not come with another token.
    pub async fn replay(
        &self,
        store: &crate::store::Store,
        token: &TokenIdentity,
        single_use: bool,
    ) -> Result<(), TokenError> {
        self.seen
            .check(store, token, single_use || token.thumbprint.is_none())
            .await
    }
}

/// Equal lengths and equal bytes, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 6750 §2.1 `b64token`: what a bearer token may be made of (anything else is not sent on to
/// the issuer).
fn is_b64token(raw: &str) -> bool {
    let body = raw.trim_end_matches('=');
    !body.is_empty()
        && raw.len() <= 16 * 1024
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// A compact JWS: three base64url parts.
fn is_jwt(raw: &str) -> bool {
    raw.split('.').count() == 3
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The `iss` of a JWT's payload, read before verification only to choose the keys.
fn unverified_issuer(raw: &str) -> Option<String> {
    use base64::Engine;
    let payload = raw.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: String,
    }
    serde_json::from_slice::<Iss>(&bytes).ok().map(|i| i.iss)
}

/// The TLS client configuration towards the issuer: its roots (or the public web roots), and the
/// client certificate when configured.
fn https_config(p: &crate::config::PscIssuer) -> anyhow::Result<rustls::ClientConfig> {
    https_client(
        p.ca.as_deref().map(|path| ("VD_PSC_CA", path)),
        p.client_cert.as_ref(),
    )
}

/// An HTTP/1.1 TLS client configuration trusting the PEM bundle `ca` (named, for errors, by what
/// set it), or the public web roots without one, and presenting `client_cert` (PEM chain, key)
/// when given.
pub(crate) fn https_client(
    ca: Option<(&str, &std::path::Path)>,
    client_cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> anyhow::Result<rustls::ClientConfig> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some((name, path)) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("{name}: cannot read {}", path.display()))?
            {
                roots
                    .add(cert.map_err(crate::tls::pem::readable)?)
                    .with_context(|| format!("{name}: not a usable certificate"))?;
            }
            anyhow::ensure!(!roots.is_empty(), "{name}: no certificate in the file");
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("VD_PSC_CLIENT_CERT: cannot read {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(crate::tls::pem::readable)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| anyhow::anyhow!("VD_PSC_CLIENT_KEY: not a PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("VD_PSC_CLIENT_CERT: the key does not match")?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_opaque_tokens() {
        assert!(is_jwt("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"));
        assert!(!is_jwt("8f14e45fceea167a5a36dedd4bea2543"));
        assert!(!is_jwt("a.b.c.d"));
        assert!(!is_jwt("a.b c.d"));
        assert!(is_b64token("8f14e45fceea167a5a36dedd4bea2543"));
        assert!(is_b64token("abc+/~=="));
        assert!(!is_b64token("n'importe quoi"));
        assert!(!is_b64token("=="));
        assert!(!is_b64token(""));
        assert_eq!(
            unverified_issuer("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln").as_deref(),
            Some("x")
        );
    }

    #[test]
    fn thumbprints_compare_whole() {
        assert!(constant_time_eq(&[1, 2, 3], &[1, 2, 3]));
        assert!(!constant_time_eq(&[1, 2, 3], &[1, 2, 4]));
        assert!(!constant_time_eq(&[1, 2], &[1, 2, 3]));
    }
}
