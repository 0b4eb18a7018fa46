//! This server's own tokens (RFC 8693 token exchange): a short-lived JWT signed ES256 with
//! `VD_TOKEN_KEY`, whose public part is published at `GET /.well-known/jwks.json` with its RFC
//! 7638 thumbprint as `kid`. `iss` = `aud` = `VD_TOKEN_ISSUER`, `sub` = the PS identifier,
//! `numero_structure`, `cnf.x5t#S256` of the calling certificate, a random `jti`.

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use openssl::bn::{BigNum, BigNumContext};
use openssl::nid::Nid;
use sha2::{Digest, Sha256};

use super::claims::{Claims, ACR_EIDAS1};
use super::{Refused, TokenError};
use crate::config::TokenIssuer;

pub struct Issuer {
    pub issuer: String,
    pub lifetime: std::time::Duration,
    pub clients: Vec<crate::config::TokenClient>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    /// `{"keys":[…]}`, served as is.
    jwks: String,
}

/// What the exchange puts in a token.
pub struct Grant<'a> {
    pub ps_id: &'a str,
    pub structure: &'a str,
    /// SHA-256 of the calling certificate.
    pub thumbprint: &'a [u8],
    pub client_id: &'a str,
    /// The subject token's `exp`: ours never outlives it.
    pub subject_expires: i64,
}

impl Issuer {
    /// Reads the key (an EC P-256 private key, PEM); its bytes are never printed.
    pub fn load(settings: &TokenIssuer) -> anyhow::Result<Self> {
        let pem =
            crate::config::Secret::new(std::fs::read(&settings.key).with_context(|| {
                format!("VD_TOKEN_KEY: cannot read {}", settings.key.display())
            })?);
        let key = openssl::pkey::PKey::private_key_from_pem(pem.expose())
            .map_err(|_| anyhow::anyhow!("VD_TOKEN_KEY: not a PEM private key"))?;
        let ec = key
            .ec_key()
            .ok()
            .filter(|ec| ec.group().curve_name() == Some(Nid::X9_62_PRIME256V1))
            .context("VD_TOKEN_KEY: an EC P-256 key is expected (ES256)")?;
        let mut ctx = BigNumContext::new()?;
        let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
        ec.public_key()
            .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)?;
        let x = URL_SAFE_NO_PAD.encode(x.to_vec_padded(32)?);
        let y = URL_SAFE_NO_PAD.encode(y.to_vec_padded(32)?);
        // RFC 7638: the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256"
        }]})
        .to_string();
        let pkcs8 = crate::config::Secret::new(key.private_key_to_pkcs8()?);
        Ok(Issuer {
            issuer: settings.issuer.clone(),
            lifetime: settings.lifetime,
            clients: settings.clients.clone(),
            encoding: EncodingKey::from_ec_der(pkcs8.expose()),
            decoding: DecodingKey::from_ec_components(&x, &y)?,
            kid,
            jwks,
        })
    }

    /// The JWKS document of `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// A token for `grant`, and its lifetime in seconds.
    pub fn mint(&self, grant: &Grant<'_>) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now().timestamp();
        let exp = (now + self.lifetime.as_secs() as i64).min(grant.subject_expires);
        anyhow::ensure!(exp > now, "the subject token expires now");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": grant.ps_id,
            "numero_structure": grant.structure,
            "client_id": grant.client_id,
            "acr": ACR_EIDAS1,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid::Uuid::new_v4().to_string(),
            "cnf": {"x5t#S256": URL_SAFE_NO_PAD.encode(grant.thumbprint)},
        });
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, exp - now))
    }

    /// Verifies one of our tokens: ES256 with our key, `aud` ours (`iss` chose us).
    pub(crate) fn verify(&self, raw: &str, header: &Header) -> Result<Claims, TokenError> {
        if header.alg != Algorithm::ES256 {
            return Err(Refused("token_algorithm").into());
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(Refused("token_kid_unknown").into());
        }
        let claims = super::jwks::decode(raw, &self.decoding, Algorithm::ES256)?;
        let aud_ok =
            matches!(&claims.aud, Some(super::claims::Audience::One(a)) if a == &self.issuer);
        if !aud_ok {
            return Err(Refused("token_audience").into());
        }
        Ok(claims)
    }
}
