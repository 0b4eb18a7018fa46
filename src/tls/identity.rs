//! The caller's identity, fixed at accept time from the verified TLS session.
//!
//! Nothing in a request can set or change it: the acceptor builds a [`Connection`] from the peer
//! certificates of the rustls session and attaches it as a request extension.

use std::net::SocketAddr;
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509};

use super::crl::{CaSet, CrlSet};
use crate::config::SubjectPolicy;

/// What the audit and the logs may know of a client certificate (no health data in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub subject: String,
    pub issuer: String,
    /// Serial, upper-case hex.
    pub serial: String,
    /// SHA-256 fingerprint of the DER, lower-case hex.
    pub fingerprint: String,
    /// (issuer name DER, serial bytes) of each certificate of the chain below the root: what the
    /// per-request revocation check looks up.
    pub chain: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Who is calling, as established by the TLS handshake and the CN/OU policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No client certificate was presented.
    Anonymous,
    /// A certificate that chains to the anchors and satisfies the CN/OU policy.
    Professional {
        /// `identifiant_ps`: the whole CN value under the default policy (e.g. `8` + RPPS).
        ps_id: String,
        /// `numero_structure`: the FINESS digits under the default policy.
        structure_id: String,
        cert: Arc<ClientCertificate>,
    },
    /// A valid certificate whose subject the CN/OU policy refuses (→ 8003).
    Refused {
        reason: &'static str,
        cert: Arc<ClientCertificate>,
    },
}

impl PeerIdentity {
    pub fn certificate(&self) -> Option<&ClientCertificate> {
        match self {
            PeerIdentity::Anonymous => None,
            PeerIdentity::Professional { cert, .. } | PeerIdentity::Refused { cert, .. } => {
                Some(cert)
            }
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
}

impl Connection {
    /// Whether any certificate of the client's chain is revoked in the CRLs in force now.
    pub fn is_revoked(&self, crls: &CrlSet) -> bool {
        self.identity.certificate().is_some_and(|c| {
            c.chain
                .iter()
                .any(|(issuer, serial)| crls.is_revoked(issuer, serial))
        })
    }
}

/// A presented chain as parsed once: its audit description, whether the walk by issuer name
/// reached an anchor, and the CN/OU policy's verdict on the leaf.
#[derive(Debug)]
pub struct Described {
    pub cert: Arc<ClientCertificate>,
    pub complete: bool,
    pub policy: Result<(String, String), &'static str>,
}

/// Parsed chains by SHA-256 of the presented chain. Pharmacies reconnect with the same card, and
/// parsing X.509 with OpenSSL 3 takes process-wide locks: the profile of resumed handshakes
/// showed a fifth of the server's time there. What is cached depends only on the chain's bytes,
/// the configured CAs and the policy, all fixed for the process; revocation and CRL freshness
/// are still decided on every handshake and request. Bounded: emptied when full.
#[derive(Debug)]
pub struct ChainCache {
    cas: Arc<CaSet>,
    policy: SubjectPolicy,
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Described>>>,
}

const CHAIN_CACHE_ENTRIES: usize = 16_384;

impl ChainCache {
    pub fn new(cas: Arc<CaSet>, policy: SubjectPolicy) -> Self {
        ChainCache {
            cas,
            policy,
            map: Default::default(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], Arc<Described>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        if let Some(d) = self.lock().get(&key) {
            return Some(d.clone());
        }
        let leaf = X509::from_der(chain.first()?).ok()?;
        let (cert, complete) = describe(&leaf, &chain[1..], &self.cas);
        let described = Arc::new(Described {
            cert: Arc::new(cert),
            complete,
            policy: apply_policy(&leaf, &self.policy),
        });
        let mut m = self.lock();
        if m.len() >= CHAIN_CACHE_ENTRIES {
            m.clear();
        }
        m.insert(key, described.clone());
        Some(described)
    }
}

/// Builds the identity of a verified peer chain (leaf first).
pub fn identify(
    chain: &[rustls_pki_types::CertificateDer<'_>],
    chains: &ChainCache,
) -> PeerIdentity {
    if chain.is_empty() {
        return PeerIdentity::Anonymous;
    }
    // The chain was verified by rustls before we get here; a parse failure cannot be a valid
    // identity, so it is refused rather than trusted.
    let Some(d) = chains.get(chain) else {
        return PeerIdentity::Refused {
            reason: "certificat illisible",
            cert: Arc::new(ClientCertificate {
                subject: String::new(),
                issuer: String::new(),
                serial: String::new(),
                fingerprint: String::new(),
                chain: Vec::new(),
            }),
        };
    };
    match &d.policy {
        Ok((ps_id, structure_id)) => PeerIdentity::Professional {
            ps_id: ps_id.clone(),
            structure_id: structure_id.clone(),
            cert: d.cert.clone(),
        },
        Err(reason) => PeerIdentity::Refused {
            reason,
            cert: d.cert.clone(),
        },
    }
}

/// The audit description of a (possibly unverified) chain, leaf first.
pub fn describe_der(
    chain: &[rustls_pki_types::CertificateDer<'_>],
    cas: &CaSet,
) -> Option<ClientCertificate> {
    let leaf = X509::from_der(chain.first()?).ok()?;
    Some(describe(&leaf, &chain[1..], cas).0)
}

/// The description of a chain, and whether walking up by issuer name reached an anchor.
fn describe(
    leaf: &X509,
    presented: &[rustls_pki_types::CertificateDer<'_>],
    cas: &CaSet,
) -> (ClientCertificate, bool) {
    let serial = leaf
        .serial_number()
        .to_bn()
        .map(|bn| bn.to_vec())
        .unwrap_or_default();
    let fingerprint = leaf
        .digest(MessageDigest::sha256())
        .map(|d| hex::encode(d.as_ref()))
        .unwrap_or_default();
    // Walk up by issuer name: leaf, then intermediates (presented or configured), to the anchor.
    let presented: Vec<X509> = presented
        .iter()
        .filter_map(|d| X509::from_der(d).ok())
        .collect();
    let mut chain = Vec::new();
    let mut complete = false;
    let mut current = leaf.clone();
    for _ in 0..8 {
        let issuer_der = current.issuer_name().to_der().unwrap_or_default();
        let serial = current
            .serial_number()
            .to_bn()
            .map(|bn| bn.to_vec())
            .unwrap_or_default();
        chain.push((issuer_der.clone(), serial));
        if let Some(ca) = cas.by_subject(&issuer_der) {
            if ca.is_self_issued() {
                complete = true;
                break;
            }
            current = ca.x509.clone();
        } else if let Some(next) = presented
            .iter()
            .find(|c| c.subject_name().to_der().ok().as_deref() == Some(&issuer_der[..]))
        {
            current = next.clone();
        } else {
            break;
        }
    }
    let cert = ClientCertificate {
        subject: name_to_string(leaf.subject_name()),
        issuer: name_to_string(leaf.issuer_name()),
        serial: hex::encode_upper(&serial),
        fingerprint,
        chain,
    };
    (cert, complete)
}

/// Applies the CN/OU policy; returns (PS id, structure id) or the reason of the refusal.
pub fn apply_policy(leaf: &X509, policy: &SubjectPolicy) -> Result<(String, String), &'static str> {
    let cn = entries(leaf.subject_name(), Nid::COMMONNAME);
    let [cn] = cn.as_slice() else {
        return Err("CN absent ou multiple");
    };
    let caps = policy.cn.captures(cn).ok_or("CN hors politique")?;
    let ps_id = caps
        .name("ps")
        .or_else(|| caps.get(0))
        .map(|m| m.as_str().to_string())
        .ok_or("CN hors politique")?;
    if policy.rpps_luhn {
        if let Some(rpps) = ps_id.strip_prefix('8') {
            if rpps.len() == 11 && rpps.bytes().all(|b| b.is_ascii_digit()) && !luhn_valid(rpps) {
                return Err("RPPS invalide (clé de Luhn)");
            }
        }
    }
    let structure_id = entries(leaf.subject_name(), Nid::ORGANIZATIONALUNITNAME)
        .iter()
        .find_map(|ou| {
            let caps = policy.ou.captures(ou)?;
            caps.name("structure")
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_string())
        })
        .ok_or("OU hors politique")?;
    Ok((ps_id, structure_id))
}

/// Values of the entries `nid` of a name, decoded to UTF-8 whatever their ASN.1 string type
/// (older card CAs use BMPString or T61String).
fn entries(name: &X509NameRef, nid: Nid) -> Vec<String> {
    name.entries_by_nid(nid)
        .filter_map(|e| e.data().to_string().ok())
        .collect()
}

/// `CN=…,OU=…,O=…,C=…` for logs and the audit.
pub fn name_to_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Luhn check over a string of digits (the RPPS check digit).
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        assert!(luhn_valid("10001234565"));
        assert!(!luhn_valid("10001234566"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("1000123456a"));
    }
}
