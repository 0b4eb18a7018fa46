//! TLS termination: rustls server configuration, client verification with CRLs, the acceptor that
//! fixes the caller's identity, and the CRL set in force.

pub mod acceptor;
pub mod crl;
pub mod fetch;
pub mod identity;
pub mod pem;
pub mod reload;
pub mod tickets;
pub mod verifier;

use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use crl::{CaSet, CrlSet};

/// Everything TLS needs at run time; shared by the acceptor and the handlers.
#[derive(Debug)]
pub struct TlsContext {
    pub cas: Arc<CaSet>,
    /// Presented chains parsed once (identity and revocation walk).
    pub chains: Arc<identity::ChainCache>,
    crls: ArcSwap<CrlSet>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    ticketer: ArcSwap<Arc<dyn ProducesTickets>>,
    sessions: Arc<ServerSessionMemoryCache>,
}

/// Tickets sealed with the shared key file when configured, else rotating per-instance keys.
fn ticketer(config: &Config) -> anyhow::Result<Arc<dyn ProducesTickets>> {
    match &config.ticket_key_file {
        Some(path) => Ok(Arc::new(tickets::SharedTicketer::from_file(path)?)),
        None => rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| anyhow::anyhow!("cannot create the TLS ticketer: {e}")),
    }
}

/// The only crypto provider of the process (see notes/stack-pitfalls: one provider only).
///
/// Suites keep the default set (ECDHE + AEAD only) with the SHA-256 ones first: the server picks
/// (`ignore_client_order`), and on this hardware SHA-256 runs on the SHA extensions while
/// SHA-384 does not; the profile of resumed TLS 1.3 handshakes showed a fifth of the server's
/// time in SHA-512 blocks (key schedule and tickets). AES-128-GCM is within the ANSSI guide.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite().as_str().is_none_or(|n| !n.ends_with("_SHA256")));
    Arc::new(p)
}

impl TlsContext {
    /// Loads anchors and CRLs. CRLs that are refused are returned for the caller to report.
    pub fn load(config: &Config) -> anyhow::Result<(Self, Vec<String>)> {
        let cas = Arc::new(CaSet::load(&config.client_ca).context("VD_CLIENT_CA")?);
        let crls = CrlSet::load_dir(&config.crl.dir, &cas).context("VD_CRL_DIR")?;
        let refused = crls.refused.clone();
        let ctx = TlsContext {
            chains: Arc::new(identity::ChainCache::new(
                cas.clone(),
                config.policy.clone(),
            )),
            cas,
            crls: ArcSwap::from_pointee(crls),
            provider: provider(),
            ticketer: ArcSwap::from_pointee(ticketer(config)?),
            sessions: ServerSessionMemoryCache::new(20_000),
        };
        Ok((ctx, refused))
    }

    /// The CRL set in force now.
    pub fn crls(&self) -> Arc<CrlSet> {
        self.crls.load_full()
    }

    /// Replaces the CRL set (after a reload); returns the refused files.
    pub fn swap_crls(&self, crls: CrlSet) -> Vec<String> {
        let refused = crls.refused.clone();
        self.crls.store(Arc::new(crls));
        refused
    }

    /// Rereads the shared ticket key file (rotation), if one is configured.
    pub fn reload_ticket_keys(&self, config: &Config) -> anyhow::Result<()> {
        if config.ticket_key_file.is_some() {
            self.ticketer.store(Arc::new(ticketer(config)?));
        }
        Ok(())
    }

    /// Puts back a previous CRL set (when a reload could not complete).
    pub fn restore_crls(&self, previous: Arc<CrlSet>) {
        self.crls.store(previous);
    }

    /// Builds the rustls server configuration from the files named in `config` and the CRLs in
    /// force.
    pub fn server_config(&self, config: &Config) -> anyhow::Result<Arc<ServerConfig>> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.tls_cert)
            .with_context(|| format!("VD_TLS_CERT: cannot read {}", config.tls_cert.display()))?
            .collect::<Result<_, _>>()
            .map_err(pem::readable)
            .with_context(|| format!("VD_TLS_CERT: {} is not PEM", config.tls_cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!(
                "VD_TLS_CERT: {} holds no certificate",
                config.tls_cert.display()
            );
        }
        let key = PrivateKeyDer::from_pem_file(&config.tls_key).with_context(|| {
            format!(
                "VD_TLS_KEY: cannot read a private key from {}",
                config.tls_key.display()
            )
        })?;
        let verifier = verifier::CpsVerifier::new(
            self.cas.clone(),
            self.chains.clone(),
            self.crls(),
            &config.crl,
            self.provider.clone(),
        )?;
        let mut server = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(chain, key)
            .context("VD_TLS_CERT/VD_TLS_KEY: the key does not match the certificate")?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        server.ticketer = Arc::clone(&self.ticketer.load());
        server.session_storage = self.sessions.clone();
        server.ignore_client_order = true;
        // One TLS 1.3 ticket per handshake: a pharmacy's client resumes one connection at a time,
        // and each ticket costs a key derivation and an encryption.
        server.send_tls13_tickets = 1;
        Ok(Arc::new(server))
    }
}
