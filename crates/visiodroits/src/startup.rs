//! Builds the application as a value, binds (port 0 allowed, the real port reported), serves,
//! reloads CRLs, and drains on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use tokio::task::JoinHandle;

use crate::audit::handshake::HandshakeAudit;
use crate::config::{Config, Secret};
use crate::exchange::head::ServerInfo;
use crate::exchange::tarification::encrypted::Decryptor;
use crate::exchange::tarification::proof::Signer;
use crate::exchange::Exchanges;
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::ops::{self, OpsState};
use crate::soap::XmlLimits;
use crate::store::{schema, Store};
use crate::tls::acceptor::CpsAcceptor;
use crate::tls::reload::Reloader;
use crate::tls::TlsContext;

/// SIGTERM, SIGINT and SIGHUP, caught from the moment this is made: made before the server says
/// it serves (or the demo that it is ready), so that a signal sent right then stops the server
/// gracefully instead of ending the process by the signal's default action.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// A running server.
pub struct Server {
    /// Where the SOAP endpoint listens (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub ops_addr: SocketAddr,
    pub tls: Arc<TlsContext>,
    pub metrics: Arc<Metrics>,
    handle: Handle<SocketAddr>,
    serve: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    reloader: Reloader,
    deadline: Duration,
}

/// Reloads on the period, and within seconds when the certificate, key, anchors or a CRL file
/// change on disk.
async fn watch_and_reload(reloader: Reloader, period: Duration) {
    let period = period.max(Duration::from_secs(1));
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2).min(period)).await;
        let due = last_full.elapsed() >= period;
        if !due && !reloader.files_changed() {
            continue;
        }
        last_full = tokio::time::Instant::now();
        // The period also downloads (when configured); a file change only reloads.
        let result = if due {
            reloader.refresh().await
        } else {
            let r = reloader.clone();
            tokio::task::spawn_blocking(move || r.reload())
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r)
        };
        if let Err(e) = result {
            tracing::error!(
                error = format!("{e:#}"),
                "reload failed; previous configuration kept"
            );
        }
    }
}

/// Chains committed audit rows shortly after commit, forever. Errors (database down) are logged
/// once per streak and retried.
async fn seal_audit(store: Store) {
    use crate::audit::chain::seal_pending;
    const BATCH: i64 = 2000;
    let mut failing = false;
    loop {
        let generation = store.generation();
        match seal_pending(&store, BATCH).await {
            Ok(n) => {
                failing = false;
                // A full batch means a backlog: go on at once. Otherwise wait, so that under load
                // a round seals a few hundred rows rather than the handful that arrived during the
                // previous round (rounds are seven round trips each).
                if n as i64 >= BATCH {
                    continue;
                }
            }
            Err(e) => {
                // Across a failover: the next round runs on the new primary.
                store.lost(&e, generation);
                if !failing {
                    tracing::error!(error = %e, "audit sealing failed; will retry");
                }
                failing = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads the trusted third party's certificate (DER) and, where configured, its key (checked
/// against the certificate).
fn load_trusted_third_party(
    config: &Config,
) -> anyhow::Result<(Option<Vec<u8>>, Option<Decryptor>)> {
    let Some(cert_path) = &config.trusted_third_party.cert else {
        return Ok((None, None));
    };
    let cert = read_pem_cert("VD_TTP_CERT", cert_path)?;
    let der = cert.to_der()?;
    let Some(key_path) = &config.trusted_third_party.key else {
        return Ok((Some(der), None));
    };
    let key = read_pem_key("VD_TTP_KEY", key_path)?;
    anyhow::ensure!(
        cert.public_key()?.public_eq(&key),
        "VD_TTP_KEY: the key does not match VD_TTP_CERT"
    );
    Ok((Some(der), Some(Decryptor::new(cert, key)?)))
}

/// Refuses a database whose migrations are behind or ahead of this binary. A database that cannot
/// be used now (down, starting, full) does not stop the start: the first exchange once it answers
/// checks its level (exchanges fail until then), and `/readyz` reports it.
async fn refuse_other_migrations(store: &Store) -> anyhow::Result<schema::Gate> {
    match schema::database_level(store).await {
        Ok(level) => schema::compare(level)
            .map(|_| schema::Gate::matched())
            .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}")),
        Err(e) if schema::not_reachable_now(&e) => {
            tracing::warn!(error = %e, "database unavailable at start: its migration level is checked once it answers");
            Ok(schema::Gate::unchecked())
        }
        Err(e) => Err(e).context("DATABASE_URL: cannot read the migration level"),
    }
}

/// Reads the operator's signing certificate and key (checked against each other).
fn load_signer(config: &Config) -> anyhow::Result<Signer> {
    let cert = read_pem_cert("VD_SIGNING_CERT", &config.signing.cert)?;
    let key = read_pem_key("VD_SIGNING_KEY", &config.signing.key)?;
    Signer::new(cert, key)
}

/// The PEM certificate of the variable `var`, at `path`.
fn read_pem_cert(var: &str, path: &std::path::Path) -> anyhow::Result<X509> {
    let pem =
        std::fs::read(path).with_context(|| format!("{var}: cannot read {}", path.display()))?;
    X509::from_pem(&pem).with_context(|| format!("{var}: not a PEM certificate"))
}

/// The PEM private key of the variable `var`, at `path` (its bytes never printed).
fn read_pem_key(var: &str, path: &std::path::Path) -> anyhow::Result<PKey<Private>> {
    let pem = Secret::new(
        std::fs::read(path).with_context(|| format!("{var}: cannot read {}", path.display()))?,
    );
    PKey::private_key_from_pem(pem.expose())
        .map_err(|_| anyhow::anyhow!("{var}: not a PEM private key"))
}

/// Reads the pseudonymisation key (at least 32 bytes).
pub(crate) fn load_pseudonymisation_key(config: &Config) -> anyhow::Result<Secret<Vec<u8>>> {
    let path = &config.pseudonymisation_key_file;
    let key = std::fs::read(path).with_context(|| {
        format!(
            "VD_PSEUDONYMISATION_KEY_FILE: cannot read {}",
            path.display()
        )
    })?;
    anyhow::ensure!(
        key.len() >= 32,
        "VD_PSEUDONYMISATION_KEY_FILE: the key must hold at least 32 bytes"
    );
    Ok(Secret::new(key))
}

/// Checks everything `serve` would load, without serving (`check-config`): the files and keys,
/// then the database — reachable, at this binary's migration level, and the roles the server's
/// login role must act as.
pub async fn check(config: &Config) -> anyhow::Result<String> {
    let (tls, refused) = TlsContext::load(config)?;
    tls.server_config()?;
    load_trusted_third_party(config)?;
    load_signer(config)?;
    load_pseudonymisation_key(config)?;
    let tokens = crate::token::Tokens::load(&config.tokens)?;
    let store = Store::connect_lazy(
        &config.database_url,
        config.db_pool_size,
        config.db_acquire_timeout,
        config.db_statement_timeout,
        config.db_logins,
    )?;
    let (problems, warnings) = schema::roles(&store)
        .await
        .context("DATABASE_URL: cannot reach the database")?;
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    let level = schema::database_level(&store)
        .await
        .context("DATABASE_URL: cannot read the migration level")?;
    let level = schema::compare(level).map_err(|e| anyhow::anyhow!("{e}"))?;
    let crls = tls.crls();
    let cas = tls.cas();
    let mut report = format!(
        "configuration valid: {} anchor(s), {} intermediate(s), {} CRL(s); profiles {}\n",
        cas.anchors.len(),
        cas.intermediates.len(),
        crls.crls.len(),
        config
            .profiles
            .rules
            .iter()
            .map(|r| r.profile.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let acts = match store.logins() {
        crate::config::DbLogins::PerPool => crate::store::SERVER_ROLES
            .iter()
            .map(|r| format!("{} as {}", store.pool(*r).user(), r.name()))
            .collect::<Vec<_>>()
            .join(", "),
        crate::config::DbLogins::Shared => format!(
            "{} as {}",
            store.pools()[0].user(),
            crate::store::SERVER_ROLES
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    report.push_str(&format!(
        "database: reachable, migrations at {level} (this binary's), logins {acts}\n"
    ));
    let (token_lines, token_warnings) = tokens.report().await;
    for l in token_lines {
        report.push_str(&format!("{l}\n"));
    }
    for w in warnings.into_iter().chain(token_warnings) {
        report.push_str(&format!("warning: {w}\n"));
    }
    for r in refused {
        report.push_str(&format!("warning: CRL refused: {r}\n"));
    }
    Ok(report)
}

impl Server {
    /// Loads everything, binds both listeners and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let config = Arc::new(config);
        let (tls, refused) = TlsContext::load(&config)?;
        for r in &refused {
            tracing::warn!(file = %r, "CRL refused at start");
        }
        let tls = Arc::new(tls);
        let rustls = RustlsConfig::from_config(tls.server_config()?);
        let (ttp_cert_der, decryptor) = load_trusted_third_party(&config)?;
        let signer = load_signer(&config)?;
        let pseudonymisation_key = load_pseudonymisation_key(&config)?;
        let tokens = Arc::new(crate::token::Tokens::load(&config.tokens)?);
        let store = Store::connect_lazy(
            &config.database_url,
            config.db_pool_size,
            config.db_acquire_timeout,
            config.db_statement_timeout,
            config.db_logins,
        )?;
        let schema = refuse_other_migrations(&store).await?;
        let metrics = Arc::new(Metrics::default());
        let exchanges = Arc::new(Exchanges {
            store: store.clone(),
            server: ServerInfo {
                instance_id: config.instance_id.clone(),
            },
            ttp_cert_der,
            decryptor,
            signer,
            schema,
            owner_code: config.owner_code.clone(),
            instance_code: config.instance_code,
            rights_client_cert: config.rights_client_cert,
            structure_check: config.structure_check,
            dossier_ttl: config.dossier_ttl,
            pseudonymisation_key,
            tokens,
        });

        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("VD_LISTEN: cannot listen on {}", config.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let ops_listener = tokio::net::TcpListener::bind(config.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "VD_METRICS_LISTEN: cannot listen on {}",
                    config.metrics_listen
                )
            })?;
        let ops_addr = ops_listener.local_addr()?;

        let app = http::router(HttpState {
            exchanges,
            tls: tls.clone(),
            metrics: metrics.clone(),
            limits: config.limits.clone(),
            xml: XmlLimits {
                max_payload_len: config.limits.body_bytes,
                ..XmlLimits::default()
            },
        });
        let handle = Handle::new();
        let handshake_audit = Arc::new(HandshakeAudit::new(
            store.clone(),
            config.instance_id.clone(),
        ));
        let acceptor = CpsAcceptor::new(
            RustlsAcceptor::new(rustls.clone()),
            tls.clone(),
            &config,
            metrics.clone(),
            handshake_audit.clone(),
        );
        let mut server = axum_server::from_tcp(listener)?
            .acceptor(acceptor)
            .handle(handle.clone());
        server
            .http_builder()
            .http2()
            .max_concurrent_streams(100)
            .max_header_list_size(64 * 1024);
        let serve = tokio::spawn(server.serve(app.into_make_service()));

        let sealer = tokio::spawn(seal_audit(store.clone()));
        let mut reloader = Reloader::new(config.clone(), tls.clone(), rustls);
        reloader.audit = Some(handshake_audit);
        reloader.metrics = Some(metrics.clone());
        let ops_app = ops::router(OpsState {
            store,
            tls: tls.clone(),
            metrics: metrics.clone(),
            crl: config.crl.clone(),
            structure_check: config.structure_check,
            reloader: reloader.clone(),
            token: config.ops_token.clone(),
        });
        let ops_task = tokio::spawn(async move {
            let app = ops_app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(ops_listener, app).await {
                tracing::error!(error = %e, "operations listener stopped");
            }
        });

        let periodic = tokio::spawn(watch_and_reload(reloader.clone(), config.crl.refresh));
        if config.crl.allow_missing {
            tracing::warn!("degraded mode: VD_CRL_ALLOW_MISSING=true, certificates whose issuer has no CRL are accepted");
        }
        if config.crl.allow_stale {
            tracing::warn!("degraded mode: VD_CRL_ALLOW_STALE=true, certificates whose issuer's CRL is past nextUpdate are accepted");
        }
        tracing::info!(%addr, %ops_addr, instance = %config.instance_id, "visiodroits serving");
        Ok(Server {
            addr,
            ops_addr,
            tls,
            metrics,
            handle,
            serve,
            background: vec![ops_task, periodic, sealer],
            reloader,
            deadline: config.limits.shutdown_deadline,
        })
    }

    /// Reloads the CRL directory and the server certificate now (SIGHUP, tests).
    pub async fn reload_crls(&self) -> anyhow::Result<()> {
        let r = self.reloader.clone();
        tokio::task::spawn_blocking(move || r.reload())
            .await?
            .map(|_| ())
    }

    /// Serves until SIGTERM or SIGINT, reloading CRLs on SIGHUP, then drains; `signals` were
    /// installed before [`Server::start`].
    pub async fn run_until_signal(self, signals: Signals) -> anyhow::Result<()> {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = signals;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading CRLs");
                    if let Err(e) = self.reload_crls().await {
                        tracing::error!(error = format!("{e:#}"), "CRL reload failed; previous CRLs kept");
                    }
                }
            }
        }
        self.shutdown().await
    }

    /// Stops accepting, lets in-flight exchanges finish within the deadline, then returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!(
            deadline_s = self.deadline.as_secs(),
            "shutting down: draining connections"
        );
        self.handle.graceful_shutdown(Some(self.deadline));
        let result = self.serve.await;
        for task in self.background {
            task.abort();
        }
        result??;
        tracing::info!("stopped");
        Ok(())
    }
}
