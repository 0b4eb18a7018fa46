//! The configured client CAs (`VD_CLIENT_CA`): trust anchors and intermediates, each known by
//! its name *and* its key.
//!
//! IGC-Santé re-keys its intermediate CAs under the same name; anything keyed by name alone (a
//! CRL lookup, "the CA of this name") would let one mask the other. A CA is therefore identified
//! by a [`CaId`]: SHA-256 over its subject and its public key.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use openssl::x509::X509;
use rustls::DistinguishedName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use sha2::{Digest, Sha256};

use super::certinfo::CertInfo;
use super::der;

/// A CA's identity: SHA-256 over the contents of its subject Name and of its
/// SubjectPublicKeyInfo (the forms rustls-webpki exposes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaId(pub [u8; 32]);

impl CaId {
    pub fn of(subject_value: &[u8], spki_value: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update((subject_value.len() as u32).to_be_bytes());
        h.update(subject_value);
        h.update(spki_value);
        CaId(h.finalize().into())
    }

    /// Of a certificate met in a verified path.
    pub(crate) fn of_cert(cert: &webpki::Cert<'_>) -> Self {
        let spki = cert.subject_public_key_info();
        let value = der::single(spki.as_ref()).map(|t| t.value).unwrap_or(&[]);
        Self::of(cert.subject(), value)
    }

    /// Of a trust anchor.
    pub(crate) fn of_anchor(anchor: &TrustAnchor<'_>) -> Self {
        Self::of(&anchor.subject, &anchor.subject_public_key_info)
    }

    /// The first 8 hexadecimal digits: tells same-name CAs apart in reports and metrics.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl std::fmt::Debug for CaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaId({})", self.short())
    }
}

/// A configured CA certificate (trust anchor or intermediate).
#[derive(Debug)]
pub struct CaCert {
    pub der: CertificateDer<'static>,
    /// For CRL signatures and distribution points.
    pub x509: X509,
    pub id: CaId,
    /// The subject Name as encoded in the certificate (tag included): what a CRL's issuer is
    /// compared with.
    pub subject_der: Vec<u8>,
    pub subject: String,
    pub info: CertInfo,
    pub self_issued: bool,
}

impl CaCert {
    fn parse(der: CertificateDer<'static>) -> anyhow::Result<Self> {
        let x509 = X509::from_der(&der)?;
        let info = CertInfo::parse(&der).context("not an X.509 certificate")?;
        let (subject_der, issuer_der) = {
            use x509_parser::prelude::FromDer;
            let (_, c) = x509_parser::certificate::X509Certificate::from_der(&der)
                .map_err(|_| anyhow::anyhow!("not an X.509 certificate"))?;
            (c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec())
        };
        let id = {
            let cert = webpki::EndEntityCert::try_from(&der)
                .map_err(|e| anyhow::anyhow!("certificate refused by the path builder: {e:?}"))?;
            CaId::of_cert(&cert)
        };
        Ok(CaCert {
            subject: info.subject.clone(),
            self_issued: subject_der == issuer_der,
            subject_der,
            id,
            info,
            x509,
            der,
        })
    }
}

/// The client trust bundle, split into anchors (self-issued) and intermediates.
#[derive(Debug)]
pub struct CaSet {
    pub anchors: Vec<CaCert>,
    pub intermediates: Vec<CaCert>,
    /// The anchors as the path builder takes them.
    pub(crate) roots: Vec<TrustAnchor<'static>>,
    /// Subjects sent in the CertificateRequest (each name once).
    pub(crate) hints: Vec<DistinguishedName>,
    /// The first certificate of each identity (name and key): CRLs belong to the key.
    by_id: HashMap<CaId, (bool, usize)>,
    /// Distinguishes one load of the bundle from the next (paths verified under an older bundle
    /// are verified again).
    pub generation: u64,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl CaSet {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(super::pem::readable)
            .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?;
        Self::from_certificates(certs).with_context(|| path.display().to_string())
    }

    pub(crate) fn from_certificates(certs: Vec<CertificateDer<'static>>) -> anyhow::Result<Self> {
        let (mut anchors, mut intermediates) = (Vec::new(), Vec::new());
        for (i, der) in certs.into_iter().enumerate() {
            let ca = CaCert::parse(der).with_context(|| format!("certificate {}", i + 1))?;
            // The same certificate twice is one; two certificates of one name and key (a
            // renewal, a cross-certificate) are both kept: paths use the exact certificate.
            if anchors
                .iter()
                .chain(&intermediates)
                .any(|c: &CaCert| c.der == ca.der)
            {
                continue;
            }
            if ca.self_issued {
                anchors.push(ca);
            } else {
                intermediates.push(ca);
            }
        }
        if anchors.is_empty() {
            bail!("holds no root (self-issued) CA certificate");
        }
        let roots = anchors
            .iter()
            .map(|a| {
                webpki::anchor_from_trusted_cert(&a.der)
                    .map(|t| t.to_owned())
                    .map_err(|e| anyhow::anyhow!("{}: not a usable trust anchor: {e:?}", a.subject))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Whole Names (SEQUENCE included), each once: same-name CAs share one.
        let mut names: Vec<Vec<u8>> = Vec::new();
        for ca in anchors.iter().chain(&intermediates) {
            if !names.contains(&ca.subject_der) {
                names.push(ca.subject_der.clone());
            }
        }
        let hints = names.into_iter().map(DistinguishedName::from).collect();
        let mut by_id = HashMap::new();
        for (i, a) in anchors.iter().enumerate() {
            by_id.entry(a.id).or_insert((true, i));
        }
        for (i, c) in intermediates.iter().enumerate() {
            by_id.entry(c.id).or_insert((false, i));
        }
        Ok(CaSet {
            anchors,
            intermediates,
            roots,
            hints,
            by_id,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub fn all(&self) -> impl Iterator<Item = &CaCert> {
        self.anchors.iter().chain(&self.intermediates)
    }

    /// The configured CA with this identity.
    pub(crate) fn by_id(&self, id: &CaId) -> Option<&CaCert> {
        self.by_id.get(id).map(|(anchor, i)| {
            if *anchor {
                &self.anchors[*i]
            } else {
                &self.intermediates[*i]
            }
        })
    }

    /// The configured intermediate whose DER is exactly `der`.
    pub fn intermediate(&self, der: &[u8]) -> Option<&CaCert> {
        self.intermediates.iter().find(|c| c.der.as_ref() == der)
    }

    /// The SHA-256 fingerprints of the configured certificates, in order (what a reload
    /// compares).
    pub(crate) fn fingerprints(&self) -> Vec<&str> {
        self.all().map(|c| c.info.fingerprint.as_str()).collect()
    }

    /// Every configured CA with this subject (re-keyed CAs share one).
    pub fn named<'a>(&'a self, subject_der: &'a [u8]) -> impl Iterator<Item = &'a CaCert> + 'a {
        self.all().filter(move |c| c.subject_der == subject_der)
    }
}
