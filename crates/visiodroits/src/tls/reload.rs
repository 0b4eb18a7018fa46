//! Reloading without restart: the client CAs, the CRL directory, the ticket keys and the server
//! certificate, on SIGHUP, on a period, on `crl refresh` and when the files change, one reload at
//! a time. Handshakes in progress keep the old configuration; new ones use the new one at once,
//! and every request is checked against the CAs and CRLs in force.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum_server::tls_rustls::RustlsConfig;

use super::TlsContext;
use crate::config::Config;

/// The state of the watched files: (path, modification time, length).
pub(crate) type FilesState = Vec<(PathBuf, Option<SystemTime>, u64)>;

#[derive(Clone)]
pub(crate) struct Reloader {
    pub config: Arc<Config>,
    pub tls: Arc<TlsContext>,
    pub rustls: RustlsConfig,
    /// The files as they were at the last (re)load, whoever triggered it.
    loaded: Arc<Mutex<FilesState>>,
    /// Where refused CRLs are audited.
    pub audit: Option<Arc<crate::audit::handshake::HandshakeAudit>>,
    /// Where CRL downloads are counted.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// One download round at a time (the reload itself is serialised by the TLS context).
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl Reloader {
    /// A reloader for the configuration just loaded from `config`'s files.
    pub(crate) fn new(config: Arc<Config>, tls: Arc<TlsContext>, rustls: RustlsConfig) -> Self {
        let mut r = Reloader {
            config,
            tls,
            rustls,
            loaded: Arc::new(Mutex::new(Vec::new())),
            audit: None,
            metrics: None,
            refreshing: Arc::default(),
        };
        r.loaded = Arc::new(Mutex::new(r.files_state()));
        r
    }

    /// Whether the files changed since the last (re)load.
    pub(crate) fn files_changed(&self) -> bool {
        let now = self.files_state();
        *self.loaded.lock().expect("reload state") != now
    }

    /// Reloads the client CAs, the CRL directory, the ticket keys and the server certificate
    /// (see [`TlsContext::reload`]), then swaps the TLS configuration. A part that fails keeps
    /// what was in force and makes the result an error; the parts that loaded apply anyway.
    /// Returns a one-line summary.
    pub(crate) fn reload(&self) -> anyhow::Result<String> {
        *self.loaded.lock().expect("reload state") = self.files_state();
        let done = self.tls.reload(&self.config, |server| {
            self.rustls.reload_from_config(server)
        });
        for r in &done.refused {
            tracing::warn!(file = %r, "CRL refused");
            if let Some(audit) = &self.audit {
                audit.crl_refused(r);
            }
        }
        if !done.errors.is_empty() {
            anyhow::bail!("{}; applied: {}", done.errors.join("; "), done.summary);
        }
        tracing::info!(summary = %done.summary, "TLS configuration reloaded");
        Ok(format!("reloaded: {}", done.summary))
    }

    /// Downloads CRLs when `VD_CRL_FETCH` is on, then reloads: the periodic refresh and
    /// `crl refresh`.
    pub(crate) async fn refresh(&self) -> anyhow::Result<String> {
        let _one_at_a_time = self.refreshing.lock().await;
        let mut fetched = String::new();
        if self.config.crl.fetch {
            let urls = super::fetch::urls(&self.tls.cas(), &self.config.crl.urls);
            let report = super::fetch::fetch_all(
                &urls,
                &self.config.crl.dir,
                &self.tls.cas(),
                &self.tls.crls(),
                self.config.crl.fetch_timeout,
                self.config.crl.fetch_max_bytes,
            )
            .await;
            for r in &report.refused {
                tracing::warn!(download = %r, "CRL download refused; the CRL in force is kept");
                if let Some(audit) = &self.audit {
                    audit.crl_refused(r);
                }
            }
            if let Some(m) = &self.metrics {
                m.crl_fetched(report.updated.len() as u64, report.refused.len() as u64);
            }
            fetched = format!(
                "fetched: {} updated, {} refused; ",
                report.updated.len(),
                report.refused.len()
            );
        }
        let r = self.clone();
        let reloaded = tokio::task::spawn_blocking(move || r.reload()).await??;
        Ok(format!("{fetched}{reloaded}"))
    }

    /// What the watched files look like now: (path, modification time, length) of the server
    /// certificate, its key, the trust anchors and the CRL files (`crl::crl_files`: a CRL being
    /// written is not one until renamed into place).
    pub(crate) fn files_state(&self) -> FilesState {
        let mut paths = vec![
            self.config.tls_cert.clone(),
            self.config.tls_key.clone(),
            self.config.client_ca.clone(),
        ];
        paths.extend(self.config.ticket_key_file.clone());
        if let Ok(crls) = super::crl::crl_files(&self.config.crl.dir) {
            paths.extend(crls);
        }
        paths
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                let len = meta.map(|m| m.len()).unwrap_or(0);
                (p, modified, len)
            })
            .collect()
    }
}
