//! What a token says, and what the server takes from it: the PS identifier (`SubjectNameID` for
//! Pro Santé Connect, `sub` for our own tokens), the structures it names (the activities'
//! `numeroFinessSite`, our `numero_structure`), the certificate it is bound to (`cnf.x5t#S256`),
//! and what the audit keeps (issuer, `jti`, SHA-256).

use base64::Engine;
use serde::Deserialize;

use super::{Refused, TokenError};
use crate::config::{AudienceClaim, PscIssuer};

/// The level of assurance PSC gives an e-CPS or card authentication.
pub(crate) const ACR_EIDAS1: &str = "eidas1";

/// A verified token, as the exchanges use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub issuer: String,
    pub jti: Option<String>,
    /// SHA-256 of the token, lower-case hex.
    pub sha256: String,
    /// `identifiant_ps`: `8` + RPPS (or `0` + ADELI).
    pub ps_id: String,
    /// The structures (FINESS) the token names: PSC activities, or our own token's structure.
    pub structures: Vec<String>,
    /// `cnf.x5t#S256`, decoded: the SHA-256 of the certificate the token is bound to.
    pub thumbprint: Option<Vec<u8>>,
    pub acr: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires: i64,
    /// Issued by this server (token exchange).
    pub ours: bool,
}

/// `aud`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
}

/// The claims read from a JWT or an introspection answer.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub acr: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default, rename = "SubjectNameID")]
    pub subject_name_id: Option<String>,
    #[serde(default, rename = "SubjectRefPro")]
    pub ref_pro: Option<serde_json::Value>,
    #[serde(default)]
    pub numero_structure: Option<String>,
    /// Keycloak's token type claim: `Bearer` for an access token (`ID`, `Refresh` otherwise).
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The dates, with `leeway`: `exp` required and not past, `nbf` and `iat` not in the future.
fn check_dates(c: &Claims, leeway: i64) -> Result<i64, Refused> {
    let now = now();
    let exp = c.exp.ok_or(Refused("token_no_exp"))?;
    if exp + leeway < now {
        return Err(Refused("token_expired"));
    }
    if c.nbf.is_some_and(|nbf| nbf - leeway > now) || c.iat.is_some_and(|iat| iat - leeway > now) {
        return Err(Refused("token_not_yet_valid"));
    }
    Ok(exp)
}

fn thumbprint(c: &Claims) -> Result<Option<Vec<u8>>, Refused> {
    match c.cnf.as_ref().and_then(|cnf| cnf.x5t_s256.as_deref()) {
        None => Ok(None),
        Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.trim_end_matches('='))
            .ok()
            .filter(|d| d.len() == 32)
            .map(Some)
            .ok_or(Refused("token_cnf")),
    }
}

/// The `numeroFinessSite` of every activity of `SubjectRefPro` (PSC's professional record).
fn activities(ref_pro: Option<&serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    let exercices = ref_pro
        .and_then(|r| r.get("exercices"))
        .and_then(|e| e.as_array());
    for ex in exercices.into_iter().flatten() {
        let acts = ex.get("activities").and_then(|a| a.as_array());
        for act in acts.into_iter().flatten() {
            if let Some(f) = act.get("numeroFinessSite").and_then(|f| f.as_str()) {
                let f = f.trim();
                if !f.is_empty() && !out.iter().any(|o| o == f) {
                    out.push(f.to_string());
                }
            }
        }
    }
    out
}

/// A PS identifier as the certificates carry it: `8` + 11 digits (RPPS) or `0` + ADELI.
fn ps_id(raw: Option<&str>) -> Result<String, Refused> {
    let id = raw.map(str::trim).ok_or(Refused("token_no_subject"))?;
    let ok = id.len() >= 9
        && id.len() <= 16
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && matches!(id.as_bytes()[0], b'0' | b'8');
    ok.then(|| id.to_string()).ok_or(Refused("token_subject"))
}

/// A Pro Santé Connect token's identity: issuer exact, audience (`aud` contains it, or `azp` is
/// it, as configured), an access token (`typ`), dates, `acr` = `eidas1`, `SubjectNameID`. For an introspection answer, `active` must be
/// true and `iss`, when given, the issuer.
pub(crate) fn psc_identity(
    c: Claims,
    settings: &PscIssuer,
    sha256: String,
    introspected: bool,
) -> Result<TokenIdentity, TokenError> {
    if introspected && c.active != Some(true) {
        return Err(Refused("token_inactive").into());
    }
    match &c.iss {
        Some(iss) if iss == &settings.issuer => {}
        None if introspected => {}
        _ => return Err(Refused("token_issuer").into()),
    }
    let audience_ok = match settings.audience_claim {
        AudienceClaim::Aud => c
            .aud
            .as_ref()
            .is_some_and(|a| a.contains(&settings.audience)),
        AudienceClaim::Azp => c.azp.as_deref() == Some(settings.audience.as_str()),
    };
    if !audience_ok {
        return Err(Refused("token_audience").into());
    }
    if c.typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(Refused("token_type").into());
    }
    let expires = check_dates(&c, settings.leeway.as_secs() as i64)?;
    if c.acr.as_deref() != Some(ACR_EIDAS1) {
        return Err(Refused("token_acr").into());
    }
    Ok(TokenIdentity {
        issuer: settings.issuer.clone(),
        jti: c.jti.clone(),
        sha256,
        ps_id: ps_id(c.subject_name_id.as_deref())?,
        structures: activities(c.ref_pro.as_ref()),
        thumbprint: thumbprint(&c)?,
        acr: c.acr,
        expires,
        ours: false,
    })
}

/// One of this server's tokens (signature, `iss` and `aud` already checked by the issuer):
/// `sub`, `numero_structure`, `cnf` and a `jti` are always there.
pub(crate) fn own_identity(c: Claims, sha256: String) -> Result<TokenIdentity, TokenError> {
    let expires = check_dates(&c, 5)?;
    let thumbprint = thumbprint(&c)?;
    if thumbprint.is_none() || c.jti.is_none() {
        return Err(Refused("token_malformed").into());
    }
    Ok(TokenIdentity {
        issuer: c.iss.clone().unwrap_or_default(),
        jti: c.jti.clone(),
        sha256,
        ps_id: ps_id(c.sub.as_deref())?,
        structures: c.numero_structure.clone().into_iter().collect(),
        thumbprint,
        acr: c.acr,
        expires,
        ours: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activities_are_read_from_the_professional_record() {
        let v = serde_json::json!({
            "exercices": [
                {"codeProfession": "21", "activities": [
                    {"numeroFinessSite": "750000001", "raisonSocialeSite": "PHARMACIE"},
                    {"numeroSiretSite": "12345678900017"}
                ]},
                {"activities": [{"numeroFinessSite": "920000002"}, {"numeroFinessSite": "750000001"}]}
            ]
        });
        assert_eq!(activities(Some(&v)), vec!["750000001", "920000002"]);
        assert!(activities(None).is_empty());
    }

    #[test]
    fn ps_identifiers_have_the_certificates_shape() {
        assert_eq!(ps_id(Some("810001234565")).unwrap(), "810001234565");
        assert_eq!(ps_id(None), Err(Refused("token_no_subject")));
        assert_eq!(ps_id(Some("f:550e8400")), Err(Refused("token_subject")));
        assert_eq!(ps_id(Some("310001234565")), Err(Refused("token_subject")));
    }
}
