//! The test harness: one private PostgreSQL cluster and one dev PKI per test binary, a fresh
//! database per test (copied from a migrated template), and the real server on port 0.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;
use visiodroits::config::{env_var, Config, Secret};
use visiodroits::soap::SoapVersion;
use visiodroits::startup::Server;
use visiodroits_client::{ClientIdentity, Reply, SoapConnection, Versions};
use visiodroits_devkit::pgcluster::{Cluster, SUPERUSER};

/// The repository's root (the test binary belongs to `crates/visiodroits`).
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A binary of another crate of the workspace, built beside this test binary by `scripts/test`
/// (`cargo build --workspace --bins`, then the tests).
pub(crate) fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        bin.exists(),
        "{} is not built: run the suite with scripts/test (it builds the workspace's binaries first)",
        bin.display()
    );
    bin
}

/// Builds a connection URL for `(user, database)`; `None` is the superuser.
type UrlFn = Box<dyn Fn(Option<&str>, &str) -> String + Send + Sync>;

/// What every test of this binary shares.
pub(crate) struct Shared {
    pub(crate) base: PathBuf,
    pub(crate) pki: PathBuf,
    pseudo_key: PathBuf,
    /// URL for `(user, database)`.
    url: UrlFn,
    template: String,
    _cluster: Option<Cluster>,
}

/// The login role the test servers connect as (private cluster only).
pub(crate) const LOGIN: &str = "vd_test_app";

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Everything the servers of this test binary logged (they share the process).
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The real `visiodroits` binary with `args` and only `env` (and no `.env` file where it runs).
pub(crate) fn visiodroits(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_visiodroits"));
    cmd.args(args).env_clear().current_dir(&shared().base);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

/// Reads until the server closes; how long that took (panics after `limit`).
pub(crate) async fn closed_within(
    stream: &mut (impl tokio::io::AsyncReadExt + Unpin),
    limit: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("not closed within {limit:?}"),
        }
    }
}

/// The logs captured so far, at debug level for the server and sqlx.
pub(crate) fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().expect("log buffer")).into_owned()
}

pub(crate) fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,visiodroits=debug,sqlx=debug")
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
        // Setup is async (sqlx) but runs once, outside any test's runtime.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(init())
        })
        .join()
        .expect("test setup panicked")
        .unwrap_or_else(|e| panic!("test setup failed: {e:#}"))
    })
}

async fn init() -> anyhow::Result<Shared> {
    let pid = std::process::id();
    // Short path: the cluster's Unix socket lives below it.
    let base = PathBuf::from(format!("/tmp/vd-test-{pid}"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let pki = base.join("pki");
    visiodroits_devkit::pki::generate(&pki)?;
    let pseudo_key = base.join("pseudonymisation.key");
    std::fs::write(&pseudo_key, "0123456789abcdef0123456789abcdef-test-key")?;

    let (url, cluster): (UrlFn, Option<Cluster>) = match env_var("VD_TEST_DATABASE_URL") {
        Some(admin) => {
            // A superuser URL of an existing cluster: tests create their databases there.
            let (prefix, query) = match admin.split_once('?') {
                Some((p, q)) => (p.to_string(), format!("?{q}")),
                None => (admin.clone(), String::new()),
            };
            let root = prefix[..prefix.rfind('/').unwrap_or(prefix.len())].to_string();
            (
                Box::new(move |_user, db| format!("{root}/{db}{query}")),
                None,
            )
        }
        None => {
            let pg = base.join("pg");
            let cluster = Cluster::start(&pg)?;
            cluster.remove_when_process_ends(pid, &base)?;
            let socket = cluster.socket_dir();
            (
                Box::new(move |user, db| {
                    format!(
                        "postgres://{}@localhost/{db}?host={}",
                        user.unwrap_or(SUPERUSER),
                        socket.display()
                    )
                }),
                Some(cluster),
            )
        }
    };

    let template = format!("vd_tpl_{pid}");
    let admin = pool(&url(None, "postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {template}"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {template}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let tpl = pool(&url(None, &template)).await?;
    visiodroits::store::MIGRATOR.run(&tpl).await?;
    if cluster.is_some() {
        visiodroits::store::provision_login_role(&tpl, LOGIN).await?;
    }
    load_demo_amcs(&tpl).await?;
    // The fixtures go through the importer, like operators' files.
    let fixtures = crate::helpers::repo().join("tests/fixtures/droits.csv");
    let summary = visiodroits::cli::import::run(&tpl, &fixtures, true, false).await?;
    anyhow::ensure!(
        summary.rejected == 0,
        "fixtures rejected: {:?}",
        summary.errors
    );
    // The professional directory: the sample extract shipped in data/.
    load_sample_directory(&tpl).await;
    sqlx::query("UPDATE identite.amc_service SET actif = false WHERE numero_amc = '55555555' AND service = 'DROITS'")
        .execute(&tpl)
        .await?;
    tpl.close().await;
    Ok(Shared {
        base,
        pki,
        pseudo_key,
        url,
        template,
        _cluster: cluster,
    })
}

async fn pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .connect_with(PgConnectOptions::from_str(url)?)
        .await?)
}

impl Shared {
    /// A fresh database copied from the migrated template; returns its name.
    pub(crate) async fn fresh_database(&self) -> String {
        let name = format!("t_{}", Uuid::new_v4().simple());
        let admin = pool(&(self.url)(None, "postgres"))
            .await
            .expect("admin connection");
        let sql = format!("CREATE DATABASE {name} TEMPLATE {}", self.template);
        let mut attempt = 0;
        loop {
            match sqlx::query(&sql).execute(&admin).await {
                Ok(_) => break,
                // Two copies of one template at the same instant can collide; try again.
                Err(e) if attempt < 20 => {
                    attempt += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => panic!("cannot create a test database: {e}"),
            }
        }
        admin.close().await;
        name
    }

    /// The servers' `DATABASE_URL`: its user is the prefix of the pools' login roles (on an
    /// external cluster, its superuser, shared by every pool).
    pub(crate) fn app_url(&self, db: &str) -> String {
        let user = self._cluster.as_ref().map(|_| LOGIN);
        (self.url)(user, db)
    }

    /// A URL logging in as `user` (private cluster only: its roles need no password).
    pub(crate) fn url_as(&self, user: &str, db: &str) -> String {
        (self.url)(Some(user), db)
    }

    /// A URL logging in as the pool of `role` does (on an external cluster, its superuser).
    pub(crate) fn pool_url(&self, db: &str, role: visiodroits::store::Role) -> String {
        match &self._cluster {
            Some(_) => (self.url)(Some(&role.login(LOGIN)), db),
            None => (self.url)(None, db),
        }
    }

    /// Whether the servers run on the private cluster, with a login role per pool.
    pub(crate) fn per_pool_logins(&self) -> bool {
        self._cluster.is_some()
    }

    /// A PostgreSQL client program (`pgbench`, `psql`): the private cluster's, or from `PATH`.
    pub(crate) fn pg_tool(&self, name: &str) -> PathBuf {
        match &self._cluster {
            Some(c) => c.bin_dir().join(name),
            None => PathBuf::from(name),
        }
    }

    pub(crate) fn admin_url(&self, db: &str) -> String {
        (self.url)(None, db)
    }

    pub(crate) fn pki_path(&self, rel: &str) -> PathBuf {
        self.pki.join(rel)
    }

    /// A server configuration for this test binary's PKI and `db`.
    pub(crate) fn config_vars(&self, db: &str) -> HashMap<String, String> {
        let p = |rel: &str| self.pki.join(rel).display().to_string();
        [
            ("VD_LISTEN", "127.0.0.1:0".to_string()),
            ("VD_METRICS_LISTEN", "127.0.0.1:0".to_string()),
            ("VD_TLS_CERT", p("server/server.pem")),
            ("VD_TLS_KEY", p("server/server.key")),
            ("VD_CLIENT_CA", p("trust.pem")),
            ("VD_CRL_DIR", p("crl")),
            ("VD_TTP_CERT", p("ttp/ttp.pem")),
            ("VD_TTP_KEY", p("ttp/ttp.key")),
            ("VD_SIGNING_CERT", p("signing/signing.pem")),
            ("VD_SIGNING_KEY", p("signing/signing.key")),
            (
                "VD_PSEUDONYMISATION_KEY_FILE",
                self.pseudo_key.display().to_string(),
            ),
            ("DATABASE_URL", self.app_url(db)),
            ("VD_LOG_FORMAT", "text".to_string()),
            ("VD_INSTANCE_ID", "test".to_string()),
            ("VD_SHUTDOWN_DEADLINE_SECS", "5".to_string()),
            (
                "VD_DB_LOGINS",
                if self.per_pool_logins() {
                    "per-pool"
                } else {
                    "shared"
                }
                .to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// A running server on its own database.
pub(crate) struct TestApp {
    pub(crate) server: Server,
    /// Superuser pool on the test's database (to arrange and to inspect).
    pub(crate) db: PgPool,
    pub(crate) db_name: String,
}

impl TestApp {
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with `VD_DB_LOGINS=shared`: one login role, a member of the four server roles but
    /// inheriting none of them, so that a statement not under `SET LOCAL ROLE` is refused.
    /// `None` on an external cluster, whose servers run as its superuser.
    pub(crate) async fn with_shared_login() -> Option<Self> {
        let s = shared();
        if !s.per_pool_logins() {
            return None;
        }
        let db_name = s.fresh_database().await;
        // Named after the database (the roles test logs in as it).
        let login = format!("{db_name}_partage");
        let admin = pool(&s.admin_url(&db_name)).await.expect("admin pool");
        sqlx::query(&format!("CREATE ROLE {login} LOGIN NOINHERIT"))
            .execute(&admin)
            .await
            .unwrap();
        for role in visiodroits::store::SERVER_ROLES {
            sqlx::query(&format!("GRANT {} TO {login}", role.name()))
                .execute(&admin)
                .await
                .unwrap();
        }
        let mut vars = s.config_vars(&db_name);
        vars.insert("VD_DB_LOGINS".into(), "shared".into());
        vars.insert("DATABASE_URL".into(), s.url_as(&login, &db_name));
        let config = Config::from_map(&vars).expect("test configuration");
        let server = Server::start(config).await.expect("server starts");
        Some(TestApp {
            server,
            db: admin,
            db_name,
        })
    }

    /// Spawns with configuration variables adjusted by `tweak`.
    pub(crate) async fn spawn_with(tweak: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let shared = shared();
        let db_name = shared.fresh_database().await;
        let mut vars = shared.config_vars(&db_name);
        tweak(&mut vars);
        let config = Config::from_map(&vars).expect("test configuration");
        let server = Server::start(config).await.expect("server starts");
        let db = pool(&shared.admin_url(&db_name)).await.expect("admin pool");
        TestApp {
            server,
            db,
            db_name,
        }
    }

    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// A TLS client configuration presenting the dev client certificate `cert` (or none).
    pub(crate) fn tls(&self, cert: Option<&str>, versions: Versions) -> Arc<rustls::ClientConfig> {
        tls_for(cert, versions)
    }

    /// Connects with the dev client certificate `cert` (TLS 1.2 or 1.3, as negotiated).
    pub(crate) async fn connect(&self, cert: Option<&str>) -> anyhow::Result<SoapConnection> {
        self.connect_with(cert, Versions::Both).await
    }

    pub(crate) async fn connect_with(
        &self,
        cert: Option<&str>,
        versions: Versions,
    ) -> anyhow::Result<SoapConnection> {
        SoapConnection::connect(self.addr(), "localhost", self.tls(cert, versions)).await
    }

    /// One ServicesOuverts with the valid dev certificate on a fresh connection (no resumption):
    /// the response code, or the TLS/HTTP failure.
    pub(crate) async fn connect_and_ask(&self) -> anyhow::Result<String> {
        self.ask_fresh(tls_for(Some("valid"), Versions::Both)).await
    }

    /// One ServicesOuverts on a fresh connection made with `config`, resumption disabled: the
    /// response code, or the TLS/HTTP failure.
    pub(crate) async fn ask_fresh(
        &self,
        config: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<String> {
        let mut config = rustls::ClientConfig::clone(&config);
        config.resumption = rustls::client::Resumption::disabled();
        let mut conn = SoapConnection::connect(self.addr(), "localhost", Arc::new(config)).await?;
        Ok(code(&services_on(&mut conn).await?))
    }

    /// GET on the operations listener.
    pub(crate) async fn ops_get(&self, path: &str) -> (u16, String) {
        ops_request(self.server.ops_addr, "GET", path, None).await
    }
}

/// `METHOD path` on the operations listener at `addr`, with an optional bearer token: the
/// status and the body.
pub(crate) async fn ops_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("ops connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("ops write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("ops read");
    let status = out[9..12].parse().expect("status");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Copies the re-keyed intermediate's CRL into a test's own CRL directory: the tests that vary
/// the root's and the intermediate's CRLs keep the third CA of the bundle covered.
pub(crate) fn copy_rekeyed_crl(dir: &Path) {
    let name = "intermediate-rekeyed.crl.pem";
    std::fs::copy(shared().pki_path(&format!("crl/{name}")), dir.join(name)).unwrap();
}

/// Loads the sample Annuaire Santé extract of data/ into the database of `pool` (an owner).
pub(crate) async fn load_sample_directory(pool: &PgPool) {
    let directory = crate::helpers::repo().join("data/PS_LibreAcces_Personne_activite_exemple.txt");
    let loaded = visiodroits::cli::annuaire::run(pool, &directory, false)
        .await
        .expect("the sample directory loads");
    assert_eq!(loaded.rejected, 0, "{:?}", loaded.errors);
}

/// A client TLS configuration for the dev PKI.
pub(crate) fn tls_for(cert: Option<&str>, versions: Versions) -> Arc<rustls::ClientConfig> {
    let s = shared();
    let identity = cert.map(|name| {
        ClientIdentity::from_pem_files(
            &s.pki_path(&format!("clients/{name}.pem")),
            &s.pki_path(&format!("clients/{name}.key")),
        )
        .expect("dev client certificate")
    });
    visiodroits_client::tls_config(&s.pki_path("ca/root.pem"), identity, versions)
        .expect("client TLS config")
}

/// One ServicesOuverts (SOAP 1.2) on an open connection.
pub(crate) async fn services_on(conn: &mut SoapConnection) -> anyhow::Result<Reply> {
    services_in(conn, SoapVersion::V12).await
}

/// Migrates the database of `admin_url` (a superuser's), provisions the login role `login`, and
/// loads the demo AMCs and the sample directory: what a server needs to answer. The admin pool.
pub(crate) async fn prepare_database(admin_url: &Secret<String>, login: &str) -> PgPool {
    visiodroits::cli::migrate::run(admin_url, Some(login))
        .await
        .unwrap();
    let admin = visiodroits::cli::migrate::admin_pool(admin_url)
        .await
        .unwrap();
    load_demo_amcs(&admin).await.unwrap();
    load_sample_directory(&admin).await;
    admin
}

/// The demo's AMCs and their services, in one transaction.
async fn load_demo_amcs(pool: &PgPool) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for a in visiodroits::cli::demo::demo_amcs() {
        visiodroits::store::amc::upsert(&mut tx, &a).await?;
    }
    tx.commit().await
}

/// `ServicesOuverts` in `version` on `conn`.
pub(crate) async fn services_in(
    conn: &mut SoapConnection,
    version: SoapVersion,
) -> anyhow::Result<Reply> {
    conn.soap(version, services_request(version, &new_id(), None))
        .await
}

/// A `demande_services` envelope.
pub(crate) fn services_request(
    version: SoapVersion,
    request_id: &str,
    amc: Option<&str>,
) -> String {
    let amc = amc
        .map(|a| format!("<vd:numero_amc>{a}</vd:numero_amc>"))
        .unwrap_or_default();
    envelope(
        version,
        &format!(
            "<vd:demande_services><vd:entete><vd:id_logiciel>TEST-LGO</vd:id_logiciel><vd:version_logiciel>1.0</vd:version_logiciel><vd:id_requete>{request_id}</vd:id_requete></vd:entete>{amc}</vd:demande_services>"
        ),
    )
}

/// Wraps a body element in an envelope of `version`.
pub(crate) fn envelope(version: SoapVersion, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{}" xmlns:vd="urn:visiodroits:v1"><soap:Body>{body}</soap:Body></soap:Envelope>"#,
        version.namespace()
    )
}

/// The text of the first `<vd:NAME>` of a document.
pub(crate) fn first(body: &str, name: &str) -> Option<String> {
    let open = format!("<vd:{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</vd:{name}>"))? + start;
    Some(body[start..end].to_string())
}

/// Every `<vd:NAME>` text of a document.
pub(crate) fn all(body: &str, name: &str) -> Vec<String> {
    let open = format!("<vd:{name}>");
    let close = format!("</vd:{name}>");
    body.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// The response code of a reply (normal response or Fault detail).
pub(crate) fn code(reply: &Reply) -> String {
    first(&reply.body, "code").unwrap_or_else(|| panic!("no code in {}", reply.body))
}

/// Asserts that a response validates against `wsdl/visiodroits.xsd` inside its SOAP envelope.
pub(crate) fn assert_valid(reply: &Reply, version: SoapVersion) {
    if let Some(errors) = schema_errors(&reply.body, version) {
        panic!(
            "response does not validate against the schema:\n{errors}\n{}",
            reply.body
        );
    }
}

/// What xmllint says of `xml` against the envelope schema of `version` (which imports ours), or
/// `None` when it validates.
pub(crate) fn schema_errors(xml: &str, version: SoapVersion) -> Option<String> {
    let schema = crate::helpers::repo().join(match version {
        SoapVersion::V12 => "tests/schema/envelope12.xsd",
        SoapVersion::V11 => "tests/schema/envelope11.xsd",
    });
    let file = shared().base.join(format!("resp-{}.xml", Uuid::new_v4()));
    std::fs::write(&file, xml).unwrap();
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint runs (apt-get install libxml2-utils)");
    let _ = std::fs::remove_file(&file);
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

pub(crate) fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// How many PECs carry accreditation number `acc`, and how many 0000 audit rows name it.
pub(crate) async fn stored_pec(db: &PgPool, acc: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM dispensation.tarification WHERE numero_accreditation = $1),
                (SELECT count(*) FROM audit.journal WHERE numero_accreditation = $1 AND code = '0000')",
    )
    .bind(acc)
    .fetch_one(db)
    .await
    .unwrap()
}

/// Waits (at most 5 s) until `n` of the server's connections to the database of `db` wait on a
/// lock; returns how many do.
pub(crate) async fn waiting_on_locks(db: &PgPool, n: i64) -> i64 {
    let mut waiting = 0;
    for _ in 0..250 {
        waiting = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'visiodroits'
                AND wait_event_type = 'Lock'",
        )
        .fetch_one(db)
        .await
        .unwrap();
        if waiting >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    waiting
}

/// Waits until the sealer has chained every audit row of `app` (at most 10 s).
pub(crate) async fn wait_sealed(app: &TestApp) {
    for _ in 0..100 {
        let v = visiodroits::audit::chain::verify(&app.db).await.unwrap();
        if v.unsealed == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("audit rows were not sealed within 10 s");
}

/// The real `visiodroits serve` binary in its own process (to measure its memory, to kill it).
pub(crate) struct ServerProcess {
    pub(crate) child: std::process::Child,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) ops_addr: std::net::SocketAddr,
    pub(crate) db_name: String,
}

impl ServerProcess {
    /// Starts `serve` on a fresh database with the test configuration adjusted by `tweak`.
    pub(crate) async fn spawn(tweak: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let shared = shared();
        let db_name = shared.fresh_database().await;
        Self::spawn_on(&db_name, tweak)
    }

    /// Starts `serve` on an existing test database.
    pub(crate) fn spawn_on(
        db_name: &str,
        tweak: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        use std::io::BufRead;
        let mut vars = shared().config_vars(db_name);
        vars.insert("VD_LOG_FORMAT".into(), "json".into());
        tweak(&mut vars);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_visiodroits"))
            .arg("serve")
            .env_clear()
            .envs(&vars)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let (addr, ops_addr) = loop {
            let line = lines
                .next()
                .expect("the server logs before it serves")
                .expect("readable logs");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "visiodroits serving" {
                    break (
                        v["addr"].as_str().unwrap().parse().unwrap(),
                        v["ops_addr"].as_str().unwrap().parse().unwrap(),
                    );
                }
            }
        };
        // Keep draining the logs so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProcess {
            child,
            addr,
            ops_addr,
            db_name: db_name.to_string(),
        }
    }

    /// (current, peak) resident memory of the server process, KiB.
    pub(crate) fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub(crate) async fn connect(&self, cert: Option<&str>) -> anyhow::Result<SoapConnection> {
        SoapConnection::connect(self.addr, "localhost", tls_for(cert, Versions::Both)).await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
