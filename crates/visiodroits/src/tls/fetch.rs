//! Optional CRL download (`VD_CRL_FETCH`): from the CRL distribution points named in the
//! configured CA certificates and from `VD_CRL_URLS`, over HTTP, with a timeout and a size cap.
//! A download is used only if it parses, its issuer is a configured CA, its signature verifies
//! with that CA's key, and it is newer than the CRL in force; it is then written into the CRL
//! directory (atomically) for the next reload. Anything else keeps the previous CRL and is
//! logged, counted and reported to the caller (which audits it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use sha2::{Digest, Sha256};

use super::crl::{verify_crl, CrlSet};
use super::trust::CaSet;

/// What one fetch round did, per URL.
#[derive(Debug, Default)]
pub struct FetchReport {
    /// URLs whose CRL was newer and written into the directory.
    pub updated: Vec<String>,
    /// URLs that were refused or failed, with the reason.
    pub refused: Vec<String>,
}

/// The URLs to fetch: distribution points of the configured CAs (HTTP only) and `extra`.
pub(crate) fn urls(cas: &CaSet, extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ca in cas.all() {
        for dp in ca.x509.crl_distribution_points().into_iter().flatten() {
            let names = dp.distpoint().and_then(|n| n.fullname());
            for name in names.into_iter().flatten() {
                if let Some(uri) = name.uri() {
                    if uri.starts_with("http://") && !out.iter().any(|u| u == uri) {
                        out.push(uri.to_string());
                    }
                }
            }
        }
    }
    for u in extra {
        if !out.contains(u) {
            out.push(u.clone());
        }
    }
    out
}

/// Downloads `url` (plain HTTP), at most `max_bytes`, within `timeout`.
pub async fn download(url: &str, timeout: Duration, max_bytes: usize) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        url.starts_with("http://"),
        "only http:// distribution points are fetched"
    );
    let body = crate::http_client::send(
        crate::http_client::Outbound::get(url),
        None,
        timeout,
        max_bytes,
    )
    .await?;
    Ok(body.to_vec())
}

/// Checks a download against the configured CAs and the CRLs in force (the same CA, scope and
/// kind, base or delta); returns the DER to keep.
pub fn accept(bytes: &[u8], cas: &CaSet, in_force: &CrlSet) -> anyhow::Result<Vec<u8>> {
    let der = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::from_pem_slice(bytes)
            .map_err(super::pem::readable)
            .context("not a PEM CRL")?
    } else {
        CertificateRevocationListDer::from(bytes.to_vec())
    };
    // The refresh period does not matter here: only the issuer and the dates are compared.
    let info = verify_crl(&der, Path::new("download"), cas, 0)?;
    if let Some(current) = in_force.in_force(&info) {
        if info.this_update <= current.this_update {
            bail!("not newer than the CRL in force for {}", info.issuer);
        }
    }
    Ok(der.to_vec())
}

/// The file a URL's CRL is kept in.
pub(crate) fn file_for(dir: &Path, url: &str) -> PathBuf {
    let h = Sha256::digest(url.as_bytes());
    dir.join(format!("fetched-{}.crl", hex::encode(&h[..8])))
}

/// One round: downloads every URL and writes the accepted CRLs into `dir`.
pub async fn fetch_all(
    urls: &[String],
    dir: &Path,
    cas: &CaSet,
    in_force: &CrlSet,
    timeout: Duration,
    max_bytes: usize,
) -> FetchReport {
    let mut report = FetchReport::default();
    for url in urls {
        let result = async {
            let bytes = download(url, timeout, max_bytes).await?;
            let der = accept(&bytes, cas, in_force)?;
            let target = file_for(dir, url);
            super::crl::write_atomically(&target, &der)?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => report.updated.push(url.clone()),
            Err(e) => report.refused.push(format!("{url}: {e:#}")),
        }
    }
    report
}
