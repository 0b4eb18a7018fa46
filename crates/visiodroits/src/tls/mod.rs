//! TLS termination: rustls server configuration, client verification on the verified path with
//! CRLs, certificate profiles, the acceptor that fixes the caller's identity, and the CAs and
//! CRLs in force (reloaded without restart).

pub(crate) mod acceptor;
pub(crate) mod certinfo;
pub mod crl;
pub mod fetch;
pub(crate) mod heads;
pub mod identity;
pub mod path;
pub(crate) mod pending;
pub mod profile;
pub mod proxy;
pub mod reload;
pub mod sessions;
pub mod tickets;
pub mod trust;
pub(crate) mod verifier;

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::config::Config;
use crl::CrlSet;
use identity::{ChainCache, Connection, PeerIdentity};
use path::{RevocationPolicy, VerifiedChain};
use trust::CaSet;
use verifier::{CpsVerifier, PathVerifier};
/// DER and PEM wording are shared with the tools.
pub use visiodroits_wire::{der, pem};

/// The server's own certificate chain and key, as last loaded successfully.
struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Everything TLS needs at run time; shared by the acceptor, the handlers and the reloader.
pub struct TlsContext {
    cas: ArcSwap<CaSet>,
    crls: Arc<ArcSwap<CrlSet>>,
    /// Presented chains parsed once (identity, verified path).
    pub chains: Arc<ChainCache>,
    paths: Arc<PathVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    ticketer: ArcSwap<Arc<dyn ProducesTickets>>,
    sessions: Arc<sessions::Aged<ServerSessionMemoryCache>>,
    server: ArcSwap<ServerIdentity>,
    /// A CRL without nextUpdate is current for this long after its thisUpdate.
    refresh: i64,
    /// Reloads (timer, SIGHUP, file watcher, `crl refresh`) run one at a time.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsContext")
    }
}

/// Tickets sealed with the shared key file when configured, else rotating per-instance keys;
/// either way refused once older than their lifetime.
fn ticketer(config: &Config) -> anyhow::Result<Arc<dyn ProducesTickets>> {
    let inner: Arc<dyn ProducesTickets> = match &config.ticket_key_file {
        Some(path) => Arc::new(tickets::SharedTicketer::from_file(path)?),
        None => rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| anyhow::anyhow!("cannot create the TLS ticketer: {e}"))?,
    };
    Ok(Arc::new(sessions::Aged::new(inner, sessions::MAX_AGE)))
}

/// The only crypto provider of the process (see notes/stack-pitfalls: one provider only).
///
/// Suites keep the default set (ECDHE + AEAD only) with the SHA-256 ones first: the server picks
/// (`ignore_client_order`), and on this hardware SHA-256 runs on the SHA extensions while
/// SHA-384 does not; the profile of resumed TLS 1.3 handshakes showed a fifth of the server's
/// time in SHA-512 blocks (key schedule and tickets). AES-128-GCM is within the ANSSI guide.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite().as_str().is_none_or(|n| !n.ends_with("_SHA256")));
    Arc::new(p)
}

fn load_server_identity(config: &Config) -> anyhow::Result<ServerIdentity> {
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
    // Checked here so that a key that does not match never replaces a working one.
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .context("VD_TLS_CERT/VD_TLS_KEY: the key does not match the certificate")?;
    Ok(ServerIdentity { chain, key })
}

fn now() -> UnixTime {
    UnixTime::now()
}

fn secs(t: UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

/// What a reload did: a line per part that changed or failed, and the CRL files refused.
#[derive(Debug, Default)]
pub struct Reloaded {
    pub summary: String,
    pub errors: Vec<String>,
    pub refused: Vec<String>,
}

impl TlsContext {
    /// Loads anchors, CRLs, tickets and the server certificate. CRLs that are refused are
    /// returned for the caller to report.
    pub fn load(config: &Config) -> anyhow::Result<(Self, Vec<String>)> {
        let cas = CaSet::load(&config.client_ca).context("VD_CLIENT_CA")?;
        let refresh = i64::try_from(config.crl.refresh.as_secs()).unwrap_or(i64::MAX);
        let crls = CrlSet::load_dir(&config.crl.dir, &cas, refresh).context("VD_CRL_DIR")?;
        let refused = crls.refused.clone();
        let provider = provider();
        let ctx = TlsContext {
            chains: Arc::new(ChainCache::new(config.profiles.clone())),
            paths: Arc::new(PathVerifier {
                algs: provider.signature_verification_algorithms,
                policy: RevocationPolicy {
                    grace: i64::try_from(config.crl.grace.as_secs()).unwrap_or(i64::MAX),
                    allow_missing: config.crl.allow_missing,
                    allow_stale: config.crl.allow_stale,
                },
            }),
            cas: ArcSwap::from_pointee(cas),
            crls: Arc::new(ArcSwap::from_pointee(crls)),
            provider,
            ticketer: ArcSwap::from_pointee(ticketer(config)?),
            sessions: Arc::new(sessions::Aged::new(
                ServerSessionMemoryCache::new(20_000),
                sessions::MAX_AGE,
            )),
            server: ArcSwap::from_pointee(load_server_identity(config)?),
            refresh,
            reloading: Mutex::new(()),
        };
        Ok((ctx, refused))
    }

    /// The client CAs in force now.
    pub(crate) fn cas(&self) -> Arc<CaSet> {
        self.cas.load_full()
    }

    /// The CRL set in force now.
    pub fn crls(&self) -> Arc<CrlSet> {
        self.crls.load_full()
    }

    /// Builds the rustls server configuration from what is in force.
    pub(crate) fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let server = self.server.load();
        let verifier = CpsVerifier::new(
            self.cas(),
            self.crls.clone(),
            self.chains.clone(),
            self.paths.clone(),
        );
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(server.chain.clone(), server.key.clone_key())
            .context("VD_TLS_CERT/VD_TLS_KEY: the key does not match the certificate")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ticketer = Arc::clone(&self.ticketer.load());
        config.session_storage = self.sessions.clone();
        config.ignore_client_order = true;
        // One TLS 1.3 ticket per handshake: a pharmacy's client resumes one connection at a time,
        // and each ticket costs a key derivation and an encryption.
        config.send_tls13_tickets = 1;
        Ok(Arc::new(config))
    }

    /// Rereads the client CAs, the CRL directory, the ticket keys and the server certificate,
    /// one reload at a time. Each part that fails keeps what was in force and is reported; the
    /// others apply (a broken server key never discards CRLs that loaded). `apply` receives the
    /// rustls configuration built from what is then in force, under the same lock, so that two
    /// reloads never swap their configurations out of order.
    pub fn reload(&self, config: &Config, apply: impl FnOnce(Arc<ServerConfig>)) -> Reloaded {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = Reloaded::default();
        match CaSet::load(&config.client_ca) {
            Ok(cas) => {
                if cas.fingerprints() != self.cas.load().fingerprints() {
                    out.summary.push_str(&format!(
                        "{} anchor(s) and {} intermediate(s); ",
                        cas.anchors.len(),
                        cas.intermediates.len()
                    ));
                    self.cas.store(Arc::new(cas));
                }
            }
            Err(e) => out.errors.push(format!("VD_CLIENT_CA: {e:#}")),
        }
        let cas = self.cas();
        let previous = self.crls();
        let mut set = match CrlSet::load_dir(&config.crl.dir, &cas, self.refresh) {
            Ok(set) => set,
            Err(e) => {
                out.errors.push(format!("VD_CRL_DIR: {e:#}"));
                CrlSet::restricted(&previous, &cas)
            }
        };
        set.keep_from(&previous, &cas);
        out.refused = set.refused.clone();
        out.summary.push_str(&format!(
            "{} CRL(s), {} revoked serial(s), {} file(s) refused",
            set.crls.len(),
            set.total_entries(),
            set.refused.len()
        ));
        self.crls.store(Arc::new(set));
        if config.ticket_key_file.is_some() {
            match ticketer(config) {
                Ok(t) => self.ticketer.store(Arc::new(t)),
                Err(e) => out.errors.push(format!("{e:#}")),
            }
        }
        match load_server_identity(config) {
            Ok(server) => self.server.store(Arc::new(server)),
            Err(e) => out.errors.push(format!("{e:#}")),
        }
        match self.server_config() {
            Ok(server) => apply(server),
            Err(e) => out.errors.push(format!("{e:#}")),
        }
        out
    }

    /// The identity and the verified path of a connection's client chain (leaf first), fixed at
    /// accept time. After a full handshake the path is the one the verifier just accepted; a
    /// resumed session whose path is not known (another instance's ticket, a new CA bundle) is
    /// verified again, at the current time, as a new handshake would be.
    pub(crate) fn identify(
        &self,
        chain: &[CertificateDer<'_>],
    ) -> (
        PeerIdentity,
        Option<Result<Arc<VerifiedChain>, &'static str>>,
    ) {
        let Some(described) = self.chains.get(chain) else {
            let cert = identity::describe_der(chain).unwrap_or(identity::ClientCertificate {
                subject: String::new(),
                issuer: String::new(),
                serial: String::new(),
                fingerprint: String::new(),
            });
            return (
                PeerIdentity::Refused {
                    reason: "certificat illisible",
                    cert: Arc::new(cert),
                },
                Some(Err("bad_encoding")),
            );
        };
        let cas = self.cas();
        let path = match described.verified(cas.generation) {
            Some(p) => Ok(p),
            None => self
                .paths
                .verify(&cas, &self.crls(), &described, chain, now())
                .map_err(|r| r.reason()),
        };
        (described.identity(), Some(path))
    }

    /// Whether a connection may still be served: its path checked against the CAs and CRLs in
    /// force now (revocation bites at once; sessions age out with their certificate).
    pub(crate) fn admit(&self, conn: &Connection) -> Result<(), &'static str> {
        match &conn.path {
            None => Ok(()),
            Some(Err(reason)) => Err(reason),
            Some(Ok(path)) => path
                .check(&self.cas(), &self.crls(), secs(now()), &self.paths.policy)
                .map_err(|r| r.reason()),
        }
    }
}
