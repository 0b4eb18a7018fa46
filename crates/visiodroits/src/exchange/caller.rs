//! Who calls, established for an exchange (spec/security.md "Structure binding" and "Pro Santé
//! Connect"): the professional — a card's certificate, or a bearer token on an organisation's
//! (ORG) or employee's (CPE) certificate, bound to it —, the message's `ps` against them (8001),
//! and the structure: from the certificate, or named by the token, or declared by a CPS card's
//! holder and checked against the professional directory (8004), or trusted as declared when the
//! operator chose so, or declared without a certificate when `DemandeDroits` accepts that.

use super::fields::Declared;
use super::{Call, ExchangeError, Exchanges, Seen};
use crate::code::Code;
use crate::config::StructureCheck;
use crate::domain::{PsId, StructureNumber};
use crate::store::annuaire::{self, Exercises};
use crate::tls::identity::{CertIdentity, PeerIdentity};
use crate::tls::profile::CertProfile;
use crate::token::{Refused, TokenIdentity};

/// How the structure of an exchange was established (the audit's `origine_structure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StructureSource {
    /// Carried by the certificate (CPE, ORG).
    Certificate,
    /// Declared, and named by the bearer token (its activities, or our token's structure).
    Token,
    /// Declared by a CPS card's holder and found in the professional directory.
    Directory,
    /// Declared by a CPS card's holder and trusted (`VD_STRUCTURE_CHECK=declared`).
    Declared,
    /// Declared without a client certificate (`VD_RIGHTS_CLIENT_CERT=optional`).
    Uncertified,
}

impl StructureSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StructureSource::Certificate => "certificat",
            StructureSource::Token => "jeton",
            StructureSource::Directory => "annuaire",
            StructureSource::Declared => "declaree",
            StructureSource::Uncertified => "sans_certificat",
        }
    }
}

/// The caller of an exchange once established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub ps_id: PsId,
    /// `numero_structure`: what the dossier is bound to.
    pub structure: StructureNumber,
    pub source: StructureSource,
}

/// Who acts in an exchange.
#[derive(Debug, Clone)]
pub(crate) enum Professional<'a> {
    /// A professional's card (CPS, CPS2ter, CPE).
    Card(&'a CertIdentity),
    /// A bearer token, admitted on the connection's ORG or CPE certificate.
    Token {
        cert: &'a CertIdentity,
        token: TokenIdentity,
    },
}

impl Professional<'_> {
    fn ps_id(&self) -> Option<&str> {
        match self {
            Professional::Card(c) => c.ps_id.as_deref(),
            Professional::Token { token, .. } => Some(&token.ps_id),
        }
    }

    /// The structure the certificate carries. A card's OU that is not a FINESS binds nothing
    /// (8003); an organisation's certificate with a token then leaves it to the token and the
    /// directory.
    fn carried(&self) -> Result<Option<StructureNumber>, ExchangeError> {
        match self {
            Professional::Card(c) => c
                .structure
                .as_deref()
                .map(|s| {
                    StructureNumber::parse(s).ok_or(ExchangeError::Access(Code::CertificatePolicy))
                })
                .transpose(),
            Professional::Token { cert, .. } => {
                Ok(cert.structure.as_deref().and_then(StructureNumber::parse))
            }
        }
    }

    /// The structures the token names.
    fn named(&self) -> &[String] {
        match self {
            Professional::Card(_) => &[],
            Professional::Token { token, .. } => &token.structures,
        }
    }
}

/// The professional of the call, or the refusal, in this order: 8003 for a certificate no
/// profile recognises; with a token, 8002 (`invalid_token`) for a token that `exchange::token`
/// did not admit (refused, on another connection than an ORG or CPE certificate's, bound to
/// another certificate, unbound where it must be bound, replayed); without one, 8002 for an
/// organisation's certificate and, when `required`, for no certificate.
pub(crate) fn professional<'a>(
    call: &Call<'a>,
    required: bool,
) -> Result<Option<Professional<'a>>, ExchangeError> {
    let identity: &'a PeerIdentity = &call.conn.identity;
    if let PeerIdentity::Refused { .. } = identity {
        return Err(ExchangeError::Access(Code::CertificatePolicy));
    }
    match &call.token {
        Some(Err(refused)) => Err(ExchangeError::Token(*refused)),
        Some(Ok(token)) => match identity {
            PeerIdentity::Certified(cert)
                if matches!(cert.profile, CertProfile::Org | CertProfile::Cpe) =>
            {
                Ok(Some(Professional::Token {
                    cert,
                    token: token.clone(),
                }))
            }
            _ => Err(ExchangeError::Token(Refused("token_needs_org_certificate"))),
        },
        None => match identity {
            PeerIdentity::Certified(c) if c.profile.names_a_person() => {
                Ok(Some(Professional::Card(c)))
            }
            PeerIdentity::Certified(_) => Err(ExchangeError::Access(Code::CertificateRequired)),
            PeerIdentity::Anonymous if required => {
                Err(ExchangeError::Access(Code::CertificateRequired))
            }
            PeerIdentity::Anonymous | PeerIdentity::Refused { .. } => Ok(None),
        },
    }
}

/// The opening of each exchange of the dispensing side (tarification, cancellation,
/// consultation), in the spec's order: the professional — a card, or a certificate-bound token —
/// (8002, 8003), no patient identity anywhere in the message (7005), the fields (6000), then
/// `ps` bound to the professional (8001), noted in the audit row. The request and its caller;
/// the directory check (8004) is [`Caller::confirm`], in the exchange's transaction.
pub(crate) fn dispensing<R>(
    ex: &Exchanges,
    call: &mut Call<'_>,
    parse: impl FnOnce(&crate::soap::Element) -> (Seen, Result<R, Vec<String>>),
    ps: impl FnOnce(&R) -> &Declared,
) -> Result<(R, Caller), ExchangeError> {
    let who = professional(call, true)?.ok_or(ExchangeError::Access(Code::CertificateRequired))?;
    if super::tarification::carries_identity(call.body) {
        return Err(ExchangeError::Business(Code::MixedData));
    }
    let req = call.take(parse(call.body))?;
    let caller = bind(&who, ps(&req), ex.structure_check)?;
    caller.audit(call);
    Ok((req, caller))
}

/// The message's `ps` bound to the professional: 8001 when they differ; 6000 when the structure
/// must be declared (the certificate carries none) and is not.
pub(crate) fn bind(
    who: &Professional<'_>,
    declared: &Declared,
    check: StructureCheck,
) -> Result<Caller, ExchangeError> {
    if who.ps_id() != Some(declared.ps_id.as_str()) {
        return Err(ExchangeError::Access(Code::PsMismatch));
    }
    let (structure, source) = match (who.carried()?, &declared.structure) {
        (Some(carried), declared) => {
            if declared.as_ref().is_some_and(|d| d != &carried) {
                return Err(ExchangeError::Access(Code::PsMismatch));
            }
            (carried, StructureSource::Certificate)
        }
        (None, None) => {
            return Err(ExchangeError::Invalid(vec![
                "ps/numero_structure: obligatoire, le certificat ne porte pas la structure".into(),
            ]))
        }
        (None, Some(d)) if who.named().iter().any(|n| n == d.as_str()) => {
            (d.clone(), StructureSource::Token)
        }
        // A token's declared structure is always checked: `declared` trusts a card's holder.
        (None, Some(d)) => (
            d.clone(),
            match (check, who) {
                (StructureCheck::Declared, Professional::Card(_)) => StructureSource::Declared,
                _ => StructureSource::Directory,
            },
        ),
    };
    Ok(Caller {
        ps_id: declared.ps_id.clone(),
        structure,
        source,
    })
}

impl Caller {
    /// Without a client certificate: the structure is the one declared.
    pub(crate) fn uncertified(ps_id: &PsId, structure: &StructureNumber) -> Self {
        Caller {
            ps_id: ps_id.clone(),
            structure: structure.clone(),
            source: StructureSource::Uncertified,
        }
    }

    /// Completes the audit row with the caller, whatever the exchange's outcome.
    pub(crate) fn audit(&self, call: &mut Call<'_>) {
        call.audit.ps_id = Some(self.ps_id.to_string());
        call.audit.structure = Some(self.structure.to_string());
        call.audit.structure_source = Some(self.source.as_str());
    }

    /// For a structure checked against the directory, the check, on the exchange's connection:
    /// a PS without an activity there, or no directory loaded, is refused with 8004 (the inner
    /// error; the outer one is the database's).
    pub(crate) async fn confirm(
        &self,
        tx: &mut sqlx::PgConnection,
    ) -> sqlx::Result<Result<(), ExchangeError>> {
        if self.source != StructureSource::Directory {
            return Ok(Ok(()));
        }
        Ok(
            match annuaire::exercises(tx, self.ps_id.as_str(), self.structure.as_str()).await? {
                Exercises::Yes => Ok(()),
                Exercises::No | Exercises::NotLoaded => {
                    Err(ExchangeError::Access(Code::StructureNotEstablished))
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::identity::ClientCertificate;
    use crate::tls::profile::CertProfile;
    use std::sync::Arc;

    fn cert(profile: CertProfile, ps: &str, structure: Option<&str>) -> CertIdentity {
        CertIdentity {
            profile,
            ps_id: Some(ps.into()),
            structure: structure.map(str::to_string),
            cert: Arc::new(ClientCertificate {
                subject: String::new(),
                issuer: String::new(),
                serial: String::new(),
                fingerprint: String::new(),
            }),
        }
    }

    fn declared(ps: &str, structure: Option<&str>) -> Declared {
        Declared {
            ps_id: PsId::parse(ps).unwrap(),
            structure: structure.map(|s| StructureNumber::parse(s).unwrap()),
        }
    }

    fn code(r: Result<Caller, ExchangeError>) -> Option<Code> {
        match r {
            Err(ExchangeError::Access(c)) => Some(c),
            Err(ExchangeError::Invalid(_)) => Some(Code::InvalidRequest),
            _ => None,
        }
    }

    #[test]
    fn the_structure_comes_from_the_certificate_or_the_message() {
        let cpe = cert(CertProfile::Cpe, "3750000001/1", Some("750000001"));
        let cps = cert(CertProfile::Cps, "899700075122", None);
        let d = StructureCheck::Directory;
        let bound =
            |c: &CertIdentity, ps, s, check| bind(&Professional::Card(c), &declared(ps, s), check);
        assert_eq!(
            bound(&cpe, "3750000001/1", None, d).unwrap().source,
            StructureSource::Certificate
        );
        assert_eq!(
            bound(&cpe, "3750000001/1", Some("750000001"), d)
                .unwrap()
                .structure
                .as_str(),
            "750000001"
        );
        assert_eq!(
            code(bound(&cpe, "3750000001/1", Some("920000002"), d)),
            Some(Code::PsMismatch)
        );
        assert_eq!(
            code(bound(&cps, "810001234565", Some("750000001"), d)),
            Some(Code::PsMismatch)
        );
        assert_eq!(
            code(bound(&cps, "899700075122", None, d)),
            Some(Code::InvalidRequest)
        );
        let c = bound(&cps, "899700075122", Some("750000001"), d).unwrap();
        assert_eq!(
            (c.structure.as_str(), c.source),
            ("750000001", StructureSource::Directory)
        );
        let c = bound(
            &cps,
            "899700075122",
            Some("750000001"),
            StructureCheck::Declared,
        )
        .unwrap();
        assert_eq!(c.source, StructureSource::Declared);
    }
}
