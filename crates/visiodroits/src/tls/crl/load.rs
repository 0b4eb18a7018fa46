//! Reading a CRL file and verifying each CRL in it: parsed, and assigned to the configured CA
//! whose name, key identifier and key issued it.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use openssl::asn1::Asn1TimeRef;
use openssl::x509::X509Crl;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;

use super::parse;
use super::CrlInfo;
use crate::tls::trust::CaSet;

pub(super) type Serials = Arc<HashSet<Box<[u8]>>>;

/// A verified CRL with its serials, before it is placed.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub(super) info: CrlInfo,
    pub(super) revoked: Serials,
    /// Entries of a delta with reason removeFromCRL.
    pub(super) released: Serials,
}

/// The DER CRLs of a file (PEM or DER).
fn ders_of(bytes: Vec<u8>) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    let ders: Vec<CertificateRevocationListDer<'static>> = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(crate::tls::pem::readable)
            .context("not a PEM CRL")?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if ders.is_empty() {
        bail!("no CRL in file");
    }
    Ok(ders)
}

pub(super) fn load_file(path: &Path, cas: &CaSet, refresh: i64) -> anyhow::Result<Vec<Loaded>> {
    ders_of(fs::read(path)?)?
        .into_iter()
        .map(|der| verify(&der, path, cas, refresh))
        .collect()
}

/// Parses a CRL and finds the configured CA that issued it: one of that name, allowed to sign
/// CRLs (KeyUsage `cRLSign` where it has a KeyUsage), whose key identifier (where both carry one)
/// matches and whose key verifies the signature.
fn verify(der: &[u8], source: &Path, cas: &CaSet, refresh: i64) -> anyhow::Result<Loaded> {
    let crl = X509Crl::from_der(der).context("not a CRL")?;
    let facts = parse::read(der)?;
    let issuer = {
        use x509_parser::prelude::FromDer;
        let (_, name) = x509_parser::x509::X509Name::from_der(facts.issuer)
            .map_err(|_| anyhow::anyhow!("not a CRL issuer name"))?;
        crate::tls::certinfo::name_to_string(&name)
    };
    let mut named = cas.named(facts.issuer).peekable();
    if named.peek().is_none() {
        bail!("issuer {issuer} is not a configured CA");
    }
    let owner = named
        .filter(
            |ca| match (&facts.authority_key_id, &ca.info.subject_key_id) {
                (Some(aki), Some(ski)) => aki == &ski.as_slice(),
                _ => true,
            },
        )
        .find(|ca| {
            ca.x509
                .public_key()
                .ok()
                .is_some_and(|k| crl.verify(&k).unwrap_or(false))
        })
        .with_context(|| format!("signature does not verify with the key of {issuer}"))?;
    let this_update = unix_time(crl.last_update())?;
    let next_update = crl.next_update().map(unix_time).transpose()?;
    let (released, revoked): (Vec<_>, Vec<_>) = facts.entries.iter().partition(|e| e.removed);
    let info = CrlInfo {
        ca: owner.id,
        issuer,
        issuer_der: facts.issuer.to_vec(),
        delta_of: facts.delta_of.clone(),
        number: facts.number.clone(),
        scope: facts.scope.clone(),
        this_update,
        next_update,
        valid_until: next_update.unwrap_or(this_update.saturating_add(refresh)),
        entries: facts.entries.len(),
        source: source.to_path_buf(),
    };
    let set = |list: Vec<&parse::Entry<'_>>| -> Serials {
        Arc::new(list.into_iter().map(|e| e.serial.into()).collect())
    };
    Ok(Loaded {
        info,
        revoked: set(revoked),
        released: set(released),
    })
}

/// Checks a CRL (a download) against the configured CAs; returns what it is.
pub(crate) fn verify_crl(
    der: &[u8],
    source: &Path,
    cas: &CaSet,
    refresh: i64,
) -> anyhow::Result<CrlInfo> {
    verify(der, source, cas, refresh).map(|l| l.info)
}

/// Seconds since the Unix epoch of an ASN.1 time.
pub(crate) fn unix_time(t: &Asn1TimeRef) -> anyhow::Result<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0)?;
    let d = epoch.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}
