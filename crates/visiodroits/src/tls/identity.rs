//! The caller's identity, fixed at accept time from the verified TLS session.
//!
//! Nothing in a request can set or change it: the acceptor builds a [`Connection`] from the peer
//! certificates of the rustls session and attaches it as a request extension.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::certinfo::CertInfo;
use super::path::VerifiedChain;
use super::profile::{CertProfile, Profiles, Recognised};

pub use crate::audit::ClientCertificate;

/// The audit's description of a parsed certificate.
pub(crate) fn client_certificate(info: &CertInfo) -> ClientCertificate {
    ClientCertificate {
        subject: info.subject.clone(),
        issuer: info.issuer.clone(),
        serial: info.serial_hex(),
        fingerprint: info.fingerprint.clone(),
    }
}

/// A verified certificate that an accepted profile recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub profile: CertProfile,
    /// `identifiant_ps`: for the profiles that name a person.
    pub ps_id: Option<String>,
    /// `numero_structure`: for the profiles whose certificate carries it (CPE, ORG); a CPS card's
    /// holder declares it in the message.
    pub structure: Option<String>,
    pub cert: Arc<ClientCertificate>,
}

/// Who is calling, as established by the TLS handshake and the certificate profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No client certificate was presented.
    Anonymous,
    Certified(CertIdentity),
    /// A valid certificate that no accepted profile recognises (→ 8003).
    Refused {
        reason: &'static str,
        cert: Arc<ClientCertificate>,
    },
}

impl PeerIdentity {
    pub fn certificate(&self) -> Option<&ClientCertificate> {
        match self {
            PeerIdentity::Anonymous => None,
            PeerIdentity::Certified(c) => Some(&c.cert),
            PeerIdentity::Refused { cert, .. } => Some(cert),
        }
    }

    /// The profile of the certificate, when one recognised it.
    pub fn profile(&self) -> Option<CertProfile> {
        match self {
            PeerIdentity::Certified(c) => Some(c.profile),
            _ => None,
        }
    }
}

/// Everything known about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    pub tls_version: &'static str,
    pub resumed: bool,
    pub identity: PeerIdentity,
    /// The path the client certificate was verified on; `Err` with the reason when it could not
    /// be verified again (a resumed session whose certificate was revoked, expired or whose CA
    /// was removed). `None` without a client certificate.
    pub path: Option<Result<Arc<VerifiedChain>, &'static str>>,
}

/// A presented chain as parsed once: the leaf's facts, its audit description, the profiles'
/// verdict, and the path it was verified on (per CA bundle).
#[derive(Debug)]
pub struct Described {
    pub leaf: CertInfo,
    pub cert: Arc<ClientCertificate>,
    pub recognised: Result<Recognised, &'static str>,
    verified: Mutex<Option<Arc<VerifiedChain>>>,
}

impl Described {
    /// The path verified under the CA bundle of `generation`, if any.
    pub fn verified(&self, generation: u64) -> Option<Arc<VerifiedChain>> {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|c| c.generation == generation)
            .cloned()
    }

    pub(crate) fn remember(&self, chain: Arc<VerifiedChain>) {
        *self.verified.lock().unwrap_or_else(PoisonError::into_inner) = Some(chain);
    }

    /// The identity the profiles give this certificate.
    pub fn identity(&self) -> PeerIdentity {
        match &self.recognised {
            Ok(r) => PeerIdentity::Certified(CertIdentity {
                profile: r.profile,
                ps_id: r.ps_id.clone(),
                structure: r.structure.clone(),
                cert: self.cert.clone(),
            }),
            Err(reason) => PeerIdentity::Refused {
                reason,
                cert: self.cert.clone(),
            },
        }
    }
}

/// Parsed chains by SHA-256 of the presented chain. Pharmacies reconnect with the same card; what
/// is cached depends only on the chain's bytes and the profiles (fixed for the process), and the
/// verified path is kept with the CA bundle it was verified under. Revocation, CRL freshness and
/// validity are still decided on every handshake and request. Bounded: emptied when full.
#[derive(Debug)]
pub struct ChainCache {
    profiles: Profiles,
    map: Mutex<std::collections::HashMap<[u8; 32], Arc<Described>>>,
}

const CHAIN_CACHE_ENTRIES: usize = 16_384;

impl ChainCache {
    pub fn new(profiles: Profiles) -> Self {
        ChainCache {
            profiles,
            map: Default::default(),
        }
    }

    /// The chain (leaf first) described; `None` when the leaf cannot be parsed.
    pub fn get(&self, chain: &[rustls_pki_types::CertificateDer<'_>]) -> Option<Arc<Described>> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for c in chain {
            h.update((c.len() as u32).to_be_bytes());
            h.update(c.as_ref());
        }
        let key: [u8; 32] = h.finalize().into();
        let lock = || self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = lock().get(&key) {
            return Some(d.clone());
        }
        let leaf = CertInfo::parse(chain.first()?)?;
        let described = Arc::new(Described {
            cert: Arc::new(client_certificate(&leaf)),
            recognised: self.profiles.recognise(&leaf),
            leaf,
            verified: Mutex::new(None),
        });
        let mut m = lock();
        if m.len() >= CHAIN_CACHE_ENTRIES {
            m.clear();
        }
        m.insert(key, described.clone());
        Some(described)
    }
}

/// The audit description of a (possibly unverified) chain's leaf.
pub(crate) fn describe_der(
    chain: &[rustls_pki_types::CertificateDer<'_>],
) -> Option<ClientCertificate> {
    CertInfo::parse(chain.first()?).map(|i| client_certificate(&i))
}
