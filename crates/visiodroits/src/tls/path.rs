//! The path the verifier accepted, kept for the connection's life: revocation, CRL freshness and
//! validity are decided on it at the handshake, and again on every request, so that a resumed
//! session or a long keep-alive connection is served only while a new handshake would be.

use rustls_pki_types::UnixTime;

use super::certinfo::CertInfo;
use super::crl::{CrlSet, Status};
use super::trust::{CaId, CaSet};

/// One certificate of the path below its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The CA (name and key) that issued it: the next certificate of the path, or the anchor.
    pub issuer: CaId,
    /// Without leading zero bytes.
    pub serial: Box<[u8]>,
    pub is_ca: bool,
    pub crl_uris: Vec<String>,
}

/// A verified path: the anchor, then the leaf and the intermediates, and the time window in
/// which every one of them is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    pub anchor: CaId,
    /// SHA-256 fingerprints of the intermediates of the path (configured certificates).
    pub intermediates: Vec<String>,
    /// Leaf first.
    pub links: Vec<Link>,
    pub not_before: i64,
    pub not_after: i64,
    /// The [`CaSet::generation`] it was verified under.
    pub generation: u64,
}

/// How revocation is decided (configuration, `VD_CRL_*`).
#[derive(Debug, Clone, Copy)]
pub struct RevocationPolicy {
    pub grace: i64,
    pub allow_missing: bool,
    pub allow_stale: bool,
}

/// Why a path is no longer (or not) acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotYetValid,
    Expired,
    /// Its anchor or one of its intermediates is no longer configured.
    CaRemoved,
    /// A certificate of the path has no CRL of its issuer covering it.
    NoCrl,
    /// The CRLs covering a certificate of the path are past their nextUpdate (+ grace).
    StaleCrl,
    Revoked,
}

impl Refusal {
    /// The audit's and the metrics' word for it.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Expired => "expired",
            Refusal::CaRemoved => "unknown_issuer",
            Refusal::NoCrl => "no_crl",
            Refusal::StaleCrl => "crl_expired",
            Refusal::Revoked => "revoked",
        }
    }

    /// As the path builder reports it (so that it ranks it among other candidate paths).
    pub(crate) fn webpki_error(self, now: i64) -> webpki::Error {
        let t =
            |s: i64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s.max(0) as u64));
        match self {
            Refusal::Revoked => webpki::Error::CertRevoked,
            Refusal::NoCrl => webpki::Error::UnknownRevocationStatus,
            Refusal::StaleCrl => webpki::Error::CrlExpired {
                time: t(now),
                next_update: t(now),
            },
            Refusal::CaRemoved => webpki::Error::UnknownIssuer,
            Refusal::NotYetValid => webpki::Error::CertNotValidYet {
                time: t(now),
                not_before: t(now),
            },
            Refusal::Expired => webpki::Error::CertExpired {
                time: t(now),
                not_after: t(now),
            },
        }
    }
}

impl VerifiedChain {
    /// The chain of a path the path builder accepted. `leaf` is the parsed end-entity
    /// certificate; intermediates are read from the configuration, or parsed when presented
    /// only by the client.
    pub(crate) fn of_path(path: &webpki::VerifiedPath<'_>, leaf: &CertInfo, cas: &CaSet) -> Self {
        let anchor = CaId::of_anchor(path.anchor());
        let mut links = vec![Link {
            issuer: anchor,
            serial: leaf.serial.clone().into(),
            is_ca: false,
            crl_uris: leaf.crl_uris.clone(),
        }];
        let mut intermediates = Vec::new();
        let (mut not_before, mut not_after) = (leaf.not_before, leaf.not_after);
        for cert in path.intermediate_certificates() {
            // The previous certificate was issued by this one.
            if let Some(previous) = links.last_mut() {
                previous.issuer = CaId::of_cert(cert);
            }
            // The path builder is given the configured intermediates only: this one is one of
            // them, byte for byte.
            let Some(ca) = cas.intermediate(cert.der().as_ref()) else {
                not_after = i64::MIN;
                continue;
            };
            links.push(Link {
                issuer: anchor,
                serial: ca.info.serial.clone().into(),
                is_ca: true,
                crl_uris: ca.info.crl_uris.clone(),
            });
            intermediates.push(ca.info.fingerprint.clone());
            not_before = not_before.max(ca.info.not_before);
            not_after = not_after.min(ca.info.not_after);
        }
        VerifiedChain {
            anchor,
            intermediates,
            links,
            not_before,
            not_after,
            generation: cas.generation,
        }
    }

    /// Whether the path is acceptable at `now` (unix seconds) with the CAs and CRLs in force:
    /// within every certificate's validity, its anchor still configured, no certificate revoked,
    /// each covered by a fresh CRL of its issuer (unless a degraded mode allows otherwise).
    pub fn check(
        &self,
        cas: &CaSet,
        crls: &CrlSet,
        now: i64,
        policy: &RevocationPolicy,
    ) -> Result<(), Refusal> {
        if now < self.not_before {
            return Err(Refusal::NotYetValid);
        }
        if now > self.not_after {
            return Err(Refusal::Expired);
        }
        if cas.by_id(&self.anchor).is_none() {
            return Err(Refusal::CaRemoved);
        }
        if cas.generation != self.generation
            && self
                .intermediates
                .iter()
                .any(|f| !cas.intermediates.iter().any(|c| &c.info.fingerprint == f))
        {
            return Err(Refusal::CaRemoved);
        }
        let mut worst = None;
        for link in &self.links {
            match crls.status(
                &link.issuer,
                &link.serial,
                link.is_ca,
                &link.crl_uris,
                now,
                policy.grace,
            ) {
                Status::Good => {}
                Status::Revoked => return Err(Refusal::Revoked),
                Status::Missing if policy.allow_missing => {}
                Status::Stale if policy.allow_stale => {}
                Status::Missing => worst = Some(Refusal::NoCrl),
                Status::Stale => worst = worst.or(Some(Refusal::StaleCrl)),
            }
        }
        worst.map_or(Ok(()), Err)
    }
}
