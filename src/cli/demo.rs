//! `demo`: the README's first command. A private PostgreSQL cluster, the dev PKI and demo data
//! under `./var`, then the server on 127.0.0.1:8443 with ready-to-paste commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::config::{Config, Secret};
use crate::pgcluster::{Cluster, SUPERUSER};
use crate::startup::Server;
use crate::store::amc::{self, Amc, Contact, Service};

/// The login role the demo server connects as.
pub const LOGIN_ROLE: &str = "visiodroits";
/// The demo database.
pub const DATABASE: &str = "visiodroits";

/// The demo beneficiaries and their rights (CSV import format).
pub const DEMO_RIGHTS: &[u8] = include_bytes!("../../data/demo-droits.csv");

/// The demo AMCs.
pub fn demo_amcs() -> Vec<Amc> {
    vec![
        Amc {
            number: "12345678".into(),
            name: "MUTUELLE DEMO".into(),
            services: vec![
                (Service::Rights, true),
                (Service::Tarification, true),
                (Service::Cancellation, true),
            ],
            contact: Contact {
                name: Some("Support tiers payant".into()),
                email: Some("tiers-payant@mutuelle-demo.invalid".into()),
                phone: Some("0100000000".into()),
            },
        },
        Amc {
            number: "987654321".into(),
            name: "PREVOYANCE EXEMPLE".into(),
            services: vec![
                (Service::Rights, true),
                (Service::Tarification, false),
                (Service::Cancellation, false),
            ],
            contact: Contact {
                name: None,
                email: Some("contact@prevoyance-exemple.invalid".into()),
                phone: None,
            },
        },
    ]
}

/// Everything the demo prepared.
pub struct Prepared {
    pub cluster: Cluster,
    pub config: Config,
    pub pki: PathBuf,
}

/// Prepares `dir` (cluster, PKI, keys, database, demo data) and returns the server configuration.
pub async fn prepare(dir: &Path, overrides: HashMap<String, String>) -> anyhow::Result<Prepared> {
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    std::fs::create_dir_all(&dir)?;
    let pki = dir.join("pki");
    if !pki.join("trust.pem").exists() {
        crate::pki::generate(&pki).context("cannot create the dev PKI")?;
        println!("dev PKI created in {}", pki.display());
    }
    let key_file = dir.join("pseudonymisation.key");
    if !key_file.exists() {
        write_private(&key_file, hex::encode(random_bytes::<32>()).as_bytes())?;
    }

    let base = dir.join("pg");
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&base)).await??;
    let admin =
        super::migrate::admin_pool(&Secret::new(cluster.url(SUPERUSER, "postgres"))).await?;
    super::migrate::create_database(&admin, DATABASE).await?;
    admin.close().await;
    let admin_url = Secret::new(cluster.url(SUPERUSER, DATABASE));
    super::migrate::run(&admin_url, Some(LOGIN_ROLE)).await?;
    let admin = super::migrate::admin_pool(&admin_url).await?;
    let mut tx = admin.begin().await?;
    for a in demo_amcs() {
        amc::upsert(&mut tx, &a).await?;
    }
    tx.commit().await?;
    // The demo data set goes through the same importer as operators' files.
    super::import::run_reader(
        &admin,
        Box::new(std::io::Cursor::new(DEMO_RIGHTS)),
        super::import::Format::Csv,
        true,
        false,
    )
    .await
    .context("demo data set")?;
    admin.close().await;

    let p = |rel: &str| pki.join(rel).display().to_string();
    let defaults: HashMap<String, String> = [
        ("VD_TLS_CERT", p("server/server.pem")),
        ("VD_TLS_KEY", p("server/server.key")),
        ("VD_CLIENT_CA", p("trust.pem")),
        ("VD_CRL_DIR", p("crl")),
        ("VD_TTP_CERT", p("ttp/ttp.pem")),
        ("VD_TTP_KEY", p("ttp/ttp.key")),
        (
            "VD_PSEUDONYMISATION_KEY_FILE",
            key_file.display().to_string(),
        ),
        ("DATABASE_URL", cluster.url(LOGIN_ROLE, DATABASE)),
        ("VD_LOG_FORMAT", "text".to_string()),
        ("VD_INSTANCE_ID", "demo".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_env_over(defaults, overrides)?;
    Ok(Prepared {
        cluster,
        config,
        pki,
    })
}

/// Runs the demo until Ctrl-C, then stops the server and the cluster.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let prepared = prepare(dir, HashMap::new()).await?;
    crate::telemetry::init(prepared.config.log_format, &prepared.config.log_filter);
    let server = Server::start(prepared.config.clone()).await?;
    println!(
        "{}",
        instructions(&prepared.pki, server.addr, server.ops_addr)
    );
    println!(
        "ready in {:.1} s — Ctrl-C stops the server and the database",
        started.elapsed().as_secs_f64()
    );
    let result = server.run_until_signal().await;
    let cluster = prepared.cluster;
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    result
}

/// The ready-to-paste commands printed by the demo.
pub fn instructions(pki: &Path, addr: std::net::SocketAddr, ops: std::net::SocketAddr) -> String {
    let url = format!("https://localhost:{}/visiodroits", addr.port());
    let cert = |name: &str| pki.join("clients").join(name).display().to_string();
    let ca = pki.join("ca/root.pem").display().to_string();
    let request = services_request(&uuid::Uuid::new_v4().to_string());
    let rights = rights_request(
        &uuid::Uuid::new_v4().to_string(),
        &chrono::Utc::now().date_naive().to_string(),
    );
    let curl = |body: &str| {
        format!(
            "curl --cacert {ca} --cert {pem} --key {key} \\\n  -H 'Content-Type: application/soap+xml; charset=utf-8' \\\n  --data-binary '{body}' \\\n  {url}\n",
            pem = cert("valid.pem"),
            key = cert("valid.key"),
        )
    };
    format!(
        "\nVisiodroits demo\n\
         ================\n\
         Endpoint : {url}\n\
         WSDL     : {url}?wsdl\n\
         Health   : http://{ops}/readyz   Metrics: http://{ops}/metrics\n\
         SoapUI   : client certificate {p12} (PKCS#12, password {pw}); trust {ca}\n\n\
         ServicesOuverts with the pharmacist's CPS certificate:\n\n{services}\n\
         DemandeDroits for the demo beneficiary PAUL MARTIN (NIR 1850578006084, key 91, born 19850512):\n\n{rights}",
        p12 = cert("valid.p12"),
        pw = crate::pki::P12_PASSWORD,
        services = curl(&request),
        rights = curl(&rights),
    )
}

/// A `ServicesOuverts` request (demo and tests).
pub fn services_request(request_id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:vd="urn:visiodroits:v1"><soap:Body><vd:demande_services><vd:entete><vd:id_logiciel>DEMO-CURL</vd:id_logiciel><vd:version_logiciel>1.0</vd:version_logiciel><vd:id_requete>{request_id}</vd:id_requete></vd:entete></vd:demande_services></soap:Body></soap:Envelope>"#
    )
}

/// A `DemandeDroits` for the demo beneficiary, by the dev pharmacist.
pub fn rights_request(request_id: &str, date: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:vd="urn:visiodroits:v1"><soap:Body><vd:demande_droits><vd:entete><vd:id_logiciel>DEMO-CURL</vd:id_logiciel><vd:version_logiciel>1.0</vd:version_logiciel><vd:id_requete>{request_id}</vd:id_requete></vd:entete><vd:ps><vd:identifiant_ps>8{rpps}</vd:identifiant_ps><vd:numero_structure>{finess}</vd:numero_structure></vd:ps><vd:beneficiaire><vd:nir>1850578006084</vd:nir><vd:cle_nir>91</vd:cle_nir><vd:date_naissance>19850512</vd:date_naissance><vd:rang_gemellaire>1</vd:rang_gemellaire></vd:beneficiaire><vd:amc><vd:numero_amc>12345678</vd:numero_amc></vd:amc><vd:date_reference>{date}</vd:date_reference><vd:domaines><vd:domaine>PHAR</vd:domaine></vd:domaines></vd:demande_droits></soap:Body></soap:Envelope>"#,
        rpps = crate::pki::DEV_RPPS,
        finess = crate::pki::DEV_FINESS,
    )
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    openssl::rand::rand_bytes(&mut b).expect("the OS random source is available");
    b
}

fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(content)?;
    Ok(())
}
