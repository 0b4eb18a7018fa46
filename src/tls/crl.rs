//! Trust anchors and CRLs: loading, verification before use, freshness and the per-request
//! revocation lookup.
//!
//! A CRL is used only once its issuer is a configured CA and its signature verifies with that CA's
//! key: a CRL signed by another key would otherwise make every handshake of that issuer fail.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use openssl::asn1::Asn1TimeRef;
use openssl::x509::{X509Crl, X509};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

/// A configured CA certificate (trust anchor or intermediate).
#[derive(Debug)]
pub struct CaCert {
    pub der: CertificateDer<'static>,
    pub x509: X509,
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    pub subject: String,
}

impl CaCert {
    fn parse(der: CertificateDer<'static>) -> anyhow::Result<Self> {
        let x509 = X509::from_der(&der)?;
        Ok(CaCert {
            subject_der: x509.subject_name().to_der()?,
            issuer_der: x509.issuer_name().to_der()?,
            subject: super::identity::name_to_string(x509.subject_name()),
            x509,
            der,
        })
    }

    pub fn is_self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
    }
}

/// The client trust bundle, split into anchors (self-issued) and intermediates.
#[derive(Debug)]
pub struct CaSet {
    pub anchors: Vec<CaCert>,
    pub intermediates: Vec<CaCert>,
}

impl CaSet {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(super::pem::readable)
            .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?;
        let (mut anchors, mut intermediates) = (Vec::new(), Vec::new());
        for der in certs {
            let ca = CaCert::parse(der)?;
            if ca.is_self_issued() {
                anchors.push(ca);
            } else {
                intermediates.push(ca);
            }
        }
        if anchors.is_empty() {
            bail!(
                "{} holds no root (self-issued) CA certificate",
                path.display()
            );
        }
        Ok(CaSet {
            anchors,
            intermediates,
        })
    }

    pub fn all(&self) -> impl Iterator<Item = &CaCert> {
        self.anchors.iter().chain(&self.intermediates)
    }

    pub fn by_subject(&self, subject_der: &[u8]) -> Option<&CaCert> {
        self.all().find(|c| c.subject_der == subject_der)
    }
}

/// One loaded, verified CRL.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    pub issuer: String,
    pub issuer_der: Vec<u8>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub entries: usize,
    pub source: PathBuf,
}

/// How fresh the CRL of an issuer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
    Missing,
}

/// The revoked serials of one issuer (shared between CRL sets when a reload keeps them).
type Serials = std::sync::Arc<HashSet<Box<[u8]>>>;

/// The CRLs in force: one per issuer, plus a hash index of revoked serials.
#[derive(Debug, Default)]
pub struct CrlSet {
    pub crls: Vec<CrlInfo>,
    revoked: HashMap<Vec<u8>, Serials>,
    /// Files that were refused, with the reason (logged and audited by the caller).
    pub refused: Vec<String>,
    /// Issuers named by refused files, when the file could be read that far.
    refused_issuers: HashSet<Vec<u8>>,
}

/// The CRL files of `dir`, sorted: regular files whose name does not start with a dot (a CRL
/// being written is written under such a name, see [`write_atomically`], and renamed into place
/// when complete).
pub fn crl_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Writes `bytes` to `path` through a hidden file of the same directory renamed into place, so
/// that a reload never reads a CRL half written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a file path is needed")
    })?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(".tmp");
    let tmp = path.with_file_name(hidden);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

impl CrlSet {
    /// Loads every CRL (PEM or DER) in `dir`; CRLs of unknown issuers or with a bad signature are
    /// refused and reported in `refused`. Reads the files of [`crl_files`].
    pub fn load_dir(dir: &Path, cas: &CaSet) -> anyhow::Result<Self> {
        let mut set = CrlSet::default();
        let entries = crl_files(dir)
            .with_context(|| format!("cannot read the CRL directory {}", dir.display()))?;
        let mut by_issuer: HashMap<Vec<u8>, (CrlInfo, X509Crl)> = HashMap::new();
        for path in entries {
            match load_file(&path, cas) {
                Ok(list) => {
                    for (info, crl) in list {
                        let newer = by_issuer
                            .get(&info.issuer_der)
                            .is_none_or(|(old, _)| old.this_update < info.this_update);
                        if newer {
                            by_issuer.insert(info.issuer_der.clone(), (info, crl));
                        }
                    }
                }
                Err(e) => {
                    set.refused.push(format!("{}: {e:#}", path.display()));
                    set.refused_issuers.extend(issuers_of(&path));
                }
            }
        }
        for (issuer, (info, crl)) in by_issuer {
            let serials: HashSet<Box<[u8]>> = crl
                .get_revoked()
                .map(|stack| {
                    stack
                        .iter()
                        .filter_map(|r| r.serial_number().to_bn().ok())
                        .map(|bn| normalise_serial(&bn.to_vec()).into())
                        .collect()
                })
                .unwrap_or_default();
            set.revoked.insert(issuer, std::sync::Arc::new(serials));
            set.crls.push(info);
        }
        set.crls.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        Ok(set)
    }

    /// After a reload: keeps the previous CRL of an issuer whose new file was refused, and the
    /// previous CRL when the new one is older (a replayed or stale download). Fail-closed stays:
    /// an issuer whose file was simply removed loses its CRL.
    pub fn keep_from(&mut self, previous: &CrlSet) {
        for old in &previous.crls {
            let kept = match self
                .crls
                .iter()
                .position(|c| c.issuer_der == old.issuer_der)
            {
                None => self.refused_issuers.contains(&old.issuer_der),
                Some(i) if self.crls[i].this_update < old.this_update => {
                    self.refused.push(format!(
                        "{}: older than the CRL in force for {}; the latter is kept",
                        self.crls[i].source.display(),
                        old.issuer
                    ));
                    self.crls.remove(i);
                    true
                }
                Some(_) => false,
            };
            if kept {
                self.crls.push(old.clone());
                if let Some(serials) = previous.revoked.get(&old.issuer_der) {
                    self.revoked.insert(old.issuer_der.clone(), serials.clone());
                }
            }
        }
        self.crls.sort_by(|a, b| a.issuer.cmp(&b.issuer));
    }

    pub fn for_issuer(&self, issuer_der: &[u8]) -> Option<&CrlInfo> {
        self.crls.iter().find(|c| c.issuer_der == issuer_der)
    }

    /// Freshness of the CRL of `issuer_der` at `now` (unix seconds), with `grace` seconds.
    pub fn freshness(&self, issuer_der: &[u8], now: i64, grace: i64) -> Freshness {
        match self.for_issuer(issuer_der) {
            None => Freshness::Missing,
            Some(c) => match c.next_update {
                Some(next) if now > next.saturating_add(grace) => Freshness::Stale,
                _ => Freshness::Fresh,
            },
        }
    }

    /// Whether `serial` (big-endian bytes) issued by `issuer_der` is revoked: a hash lookup.
    pub fn is_revoked(&self, issuer_der: &[u8], serial: &[u8]) -> bool {
        self.revoked
            .get(issuer_der)
            .is_some_and(|set| set.contains(normalise_serial(serial)))
    }

    pub fn total_entries(&self) -> usize {
        self.crls.iter().map(|c| c.entries).sum()
    }
}

/// Serials compare without leading zero bytes (DER adds one to keep the integer positive).
pub fn normalise_serial(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

/// The issuers named by the CRLs of a file, read without any verification (to know whose CRL a
/// refused file meant to replace).
fn issuers_of(path: &Path) -> Vec<Vec<u8>> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let crls = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .filter_map(|d| d.ok())
            .filter_map(|d| X509Crl::from_der(&d).ok())
            .collect()
    } else {
        X509Crl::from_der(&bytes).into_iter().collect::<Vec<_>>()
    };
    crls.iter()
        .filter_map(|c| c.issuer_name().to_der().ok())
        .collect()
}

fn load_file(path: &Path, cas: &CaSet) -> anyhow::Result<Vec<(CrlInfo, X509Crl)>> {
    let bytes = fs::read(path)?;
    let ders: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(super::pem::readable)
            .context("not a PEM CRL")?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if ders.is_empty() {
        bail!("no CRL in file");
    }
    ders.into_iter()
        .map(|der| verify_crl(der, path, cas))
        .collect()
}

/// Parses a CRL and checks it is signed by the configured CA named as its issuer.
pub fn verify_crl(
    der: CertificateRevocationListDer<'static>,
    source: &Path,
    cas: &CaSet,
) -> anyhow::Result<(CrlInfo, X509Crl)> {
    let crl = X509Crl::from_der(&der).context("not a CRL")?;
    let issuer_der = crl.issuer_name().to_der()?;
    let issuer = super::identity::name_to_string(crl.issuer_name());
    let ca = cas
        .by_subject(&issuer_der)
        .with_context(|| format!("issuer {issuer} is not a configured CA"))?;
    let key = ca.x509.public_key()?;
    if !crl.verify(&key).unwrap_or(false) {
        bail!("signature does not verify with the key of {issuer}");
    }
    let info = CrlInfo {
        issuer,
        issuer_der,
        this_update: unix_time(crl.last_update())?,
        next_update: crl.next_update().map(unix_time).transpose()?,
        entries: crl.get_revoked().map(|s| s.len()).unwrap_or(0),
        source: source.to_path_buf(),
    };
    Ok((info, crl))
}

/// Seconds since the Unix epoch of an ASN.1 time.
pub fn unix_time(t: &Asn1TimeRef) -> anyhow::Result<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0)?;
    let d = epoch.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}
