//! `demo`: the README's first command. A private PostgreSQL cluster, the dev PKI and demo data
//! under `./var`, then the server on 127.0.0.1:8443 with ready-to-paste commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::config::{Config, Secret};
use crate::startup::Server;
use crate::store::amc::{self, Amc, Contact, Service};
use visiodroits_devkit::pgcluster::{Cluster, SUPERUSER};
use visiodroits_devkit::psc::{client_secret, DevIssuer, CLIENT_ID};

/// The login role the demo server connects as.
pub(crate) const LOGIN_ROLE: &str = "visiodroits";
/// The demo database.
pub const DATABASE: &str = "visiodroits";

/// The demo beneficiaries and their rights (CSV import format).
pub(crate) const DEMO_RIGHTS: &[u8] = include_bytes!("../../../../data/demo-droits.csv");

/// The demo professional directory: the sample Annuaire Santé extract (the dev PKI's cards'
/// holders at the dev pharmacies).
pub(crate) const DEMO_DIRECTORY: &[u8] =
    include_bytes!("../../../../data/PS_LibreAcces_Personne_activite_exemple.txt");

/// The demo AMCs.
pub fn demo_amcs() -> Vec<Amc> {
    vec![
        Amc {
            number: "12345678".into(),
            name: "MUTUELLE DEMO".into(),
            services: vec![
                (Service::Rights, true),
                (Service::Tarification, true),
                (Service::EncryptedTarification, true),
                (Service::Cancellation, true),
                (Service::Consultation, true),
            ],
            contact: Contact {
                name: Some("Support tiers payant".into()),
                email: Some("tiers-payant@mutuelle-demo.invalid".into()),
                phone: Some("0100000000".into()),
            },
            grace_days: Some(3),
        },
        Amc {
            number: "987654321".into(),
            name: "PREVOYANCE EXEMPLE".into(),
            services: vec![
                (Service::Rights, true),
                (Service::Tarification, false),
                (Service::EncryptedTarification, false),
                (Service::Cancellation, false),
                (Service::Consultation, false),
            ],
            contact: Contact {
                name: None,
                email: Some("contact@prevoyance-exemple.invalid".into()),
                phone: None,
            },
            grace_days: None,
        },
    ]
}

/// Everything the demo prepared.
pub struct Prepared {
    /// The private cluster, unless DATABASE_URL named a database.
    pub cluster: Option<Cluster>,
    pub config: Config,
    pub pki: PathBuf,
    /// The stand-in Pro Santé Connect issuer the server accepts tokens from.
    pub issuer: DevIssuer,
}

/// Where the demo's stand-in Pro Santé Connect issuer listens by default.
pub const ISSUER_LISTEN: &str = "127.0.0.1:8444";

/// The client of the token exchange in the demo: the dev pharmacy's software (its ORG
/// certificate's subject).
const DEMO_TOKEN_CLIENT: &str =
    "logiciel-demo=C=FR,O=PHARMACIE DEV,OU=1750000001,CN=LOGICIEL OFFICINE DEV";

/// Prepares `dir` (cluster, PKI, keys, database, demo data), starts the stand-in PSC issuer on
/// `issuer_listen`, and returns the server configuration.
pub async fn prepare(
    dir: &Path,
    overrides: HashMap<String, String>,
    issuer_listen: std::net::SocketAddr,
) -> anyhow::Result<Prepared> {
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    std::fs::create_dir_all(&dir)?;
    let pki = dir.join("pki");
    // A PKI from before the real-shaped cards is made anew.
    if !pki.join("trust.pem").exists()
        || !pki.join("clients/cps.pem").exists()
        || !pki.join("signing/signing.pem").exists()
        || !pki.join("token/token.key").exists()
    {
        visiodroits_devkit::pki::generate(&pki).context("cannot create the dev PKI")?;
        println!("dev PKI created in {}", pki.display());
    }
    let key_file = dir.join("pseudonymisation.key");
    if !key_file.exists() {
        write_private(&key_file, hex::encode(random_bytes::<32>()).as_bytes())?;
    }
    let secret_file = dir.join("psc-client-secret");
    let secret = client_secret(&secret_file)?;
    let issuer = DevIssuer::start_with_pki(issuer_listen, &pki, &secret)
        .await
        .with_context(|| format!("the stand-in PSC issuer cannot listen on {issuer_listen}"))?;

    // DATABASE_URL (an owner connection) replaces the private cluster when set.
    let (cluster, admin_url, app_url) = match crate::config::database_url_from_env() {
        Ok(url) => (None, url.clone(), url),
        Err(_) => {
            let base = dir.join("pg");
            let cluster = tokio::task::spawn_blocking(move || {
                visiodroits_devkit::pgcluster::install_server_if_missing()?;
                Cluster::start(&base)
            })
            .await??;
            let admin =
                super::migrate::admin_pool(&Secret::new(cluster.url(SUPERUSER, "postgres")))
                    .await?;
            super::migrate::create_database(&admin, DATABASE).await?;
            admin.close().await;
            let admin_url = Secret::new(cluster.url(SUPERUSER, DATABASE));
            let app_url = Secret::new(cluster.url(LOGIN_ROLE, DATABASE));
            (Some(cluster), admin_url, app_url)
        }
    };
    super::migrate::run(&admin_url, cluster.as_ref().map(|_| LOGIN_ROLE)).await?;
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
        crate::rights_file::Format::Csv,
        true,
        false,
    )
    .await
    .context("demo data set")?;
    super::annuaire::run_reader(
        &admin,
        Box::new(std::io::Cursor::new(DEMO_DIRECTORY)),
        "PS_LibreAcces_Personne_activite_exemple.txt",
        false,
    )
    .await
    .context("demo directory")?;
    admin.close().await;

    let private_cluster = cluster.is_some();
    let p = |rel: &str| pki.join(rel).display().to_string();
    let defaults: HashMap<String, String> = [
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
            key_file.display().to_string(),
        ),
        ("DATABASE_URL", app_url.expose().clone()),
        // The private cluster has the demo's per-pool login roles; an owner's URL serves alone.
        (
            "VD_DB_LOGINS",
            if private_cluster {
                "per-pool"
            } else {
                "shared"
            }
            .to_string(),
        ),
        ("VD_LOG_FORMAT", "text".to_string()),
        ("VD_INSTANCE_ID", "demo".to_string()),
        ("VD_PSC_ISSUER", issuer.issuer.clone()),
        ("VD_PSC_AUDIENCE", CLIENT_ID.to_string()),
        ("VD_PSC_CA", p("ca/root.pem")),
        (
            "VD_PSC_INTROSPECTION_URL",
            format!("{}/protocol/openid-connect/token/introspect", issuer.issuer),
        ),
        ("VD_PSC_CLIENT_ID", CLIENT_ID.to_string()),
        (
            "VD_PSC_CLIENT_SECRET_FILE",
            secret_file.display().to_string(),
        ),
        ("VD_TOKEN_KEY", p("token/token.key")),
        ("VD_TOKEN_CLIENTS", DEMO_TOKEN_CLIENT.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut defaults = defaults;
    let listen = overrides
        .get("VD_LISTEN")
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8443".into());
    let port = listen.rsplit(':').next().unwrap_or("8443");
    defaults.insert(
        "VD_TOKEN_ISSUER".into(),
        format!("https://localhost:{port}"),
    );
    let config = Config::from_env_over(defaults, overrides)?;
    Ok(Prepared {
        cluster,
        config,
        pki,
        issuer,
    })
}

/// Runs the demo, its stand-in PSC issuer on `issuer_listen`, until Ctrl-C, then stops the
/// server and the cluster.
pub async fn run(dir: &Path, issuer_listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    let prepared = prepare(dir, HashMap::new(), issuer_listen).await?;
    crate::telemetry::init(prepared.config.log_format, &prepared.config.log_filter);
    let signals = crate::startup::Signals::install()?;
    let server = Server::start(prepared.config.clone()).await?;
    println!(
        "{}",
        instructions(
            &prepared.pki,
            server.addr,
            server.ops_addr,
            &prepared.issuer.issuer
        )
    );
    println!(
        "ready in {:.1} s — Ctrl-C stops the server and the database",
        started.elapsed().as_secs_f64()
    );
    let result = server.run_until_signal(signals).await;
    if let Some(cluster) = prepared.cluster {
        tokio::task::spawn_blocking(move || cluster.stop()).await??;
    }
    result
}

/// The ready-to-paste commands printed by the demo: a shell function `vd` posting a SOAP 1.2
/// envelope with the pharmacist's certificate, then one call per operation, each reusing what the
/// previous answered (dossier number, accreditation number).
const SCRIPT: &str = r#"vd() { curl -sS --cacert @CA@ --cert @PEM@ --key @KEY@ -H 'Content-Type: application/soap+xml; charset=utf-8' --data-binary "$1" @URL@; echo; }
new_id() { cat /proc/sys/kernel/random/uuid; }
ENV="<soap:Envelope xmlns:soap='http://www.w3.org/2003/05/soap-envelope' xmlns:vd='urn:visiodroits:v1'><soap:Body>"
END="</soap:Body></soap:Envelope>"
HEAD() { echo "<vd:entete><vd:id_logiciel>DEMO-CURL</vd:id_logiciel><vd:version_logiciel>1.0</vd:version_logiciel><vd:id_requete>$(new_id)</vd:id_requete></vd:entete>"; }
PS="<vd:ps><vd:identifiant_ps>@PS@</vd:identifiant_ps><vd:numero_structure>@FINESS@</vd:numero_structure></vd:ps>"
LINES="<vd:id_prescription>1</vd:id_prescription><vd:prescripteur>123456789</vd:prescripteur><vd:date_facturation>@DATE@</vd:date_facturation><vd:ligne><vd:id_ligne>1</vd:id_ligne><vd:code_prestation>PH7</vd:code_prestation><vd:date_execution>@DATE@</vd:date_execution><vd:quantite>2</vd:quantite><vd:prix_unitaire>10.00</vd:prix_unitaire><vd:montant_facture>20.00</vd:montant_facture><vd:base_remboursement>20.00</vd:base_remboursement><vd:taux_ro>65</vd:taux_ro><vd:montant_ro>13.00</vd:montant_ro></vd:ligne>"

# ServicesOuverts: the AMCs hosted here, their services, the encryption certificate
vd "$ENV<vd:demande_services>$(HEAD)</vd:demande_services>$END"

# DemandeDroits for the demo beneficiary PAUL MARTIN (NIR 1850578006084 key 91, born 19850512): keep the dossier number
R=$(vd "$ENV<vd:demande_droits>$(HEAD)$PS<vd:beneficiaire><vd:nir>1850578006084</vd:nir><vd:cle_nir>91</vd:cle_nir><vd:date_naissance>19850512</vd:date_naissance><vd:rang_gemellaire>1</vd:rang_gemellaire></vd:beneficiaire><vd:amc><vd:numero_amc>12345678</vd:numero_amc></vd:amc><vd:date_reference>@DATE@</vd:date_reference><vd:domaines><vd:domaine>PHAR</vd:domaine></vd:domaines></vd:demande_droits>$END"); echo "$R"
DOSSIER=$(echo "$R" | grep -o '<vd:numero_dossier>[^<]*' | cut -d'>' -f2); echo "dossier: $DOSSIER"

# DldTar DEVIS (a quote: binds nothing)
vd "$ENV<vd:demande_tarification>$(HEAD)$PS<vd:numero_dossier>$DOSSIER</vd:numero_dossier><vd:mode>DEVIS</vd:mode><vd:prescription>$LINES</vd:prescription></vd:demande_tarification>$END"

# DldTar PEC (binding): keep the accreditation number
R=$(vd "$ENV<vd:demande_tarification>$(HEAD)$PS<vd:numero_dossier>$DOSSIER</vd:numero_dossier><vd:mode>PEC</vd:mode><vd:prescription>$LINES</vd:prescription></vd:demande_tarification>$END"); echo "$R"
ACCREDITATION=$(echo "$R" | grep -o '<vd:numero_accreditation>[^<]*' | cut -d'>' -f2); echo "accreditation: $ACCREDITATION"

# The signed proof of that PEC, checked with openssl alone: it prints the commitment's text
echo "$R" | grep -o '<vd:preuve>[^<]*' | cut -d'>' -f2 | base64 -d | openssl cms -verify -inform DER -CAfile @CA@

# ConsultationAccreditation: its status and how each line's amount was computed
vd "$ENV<vd:demande_accreditation>$(HEAD)$PS<vd:numero_accreditation>$ACCREDITATION</vd:numero_accreditation></vd:demande_accreditation>$END"

# AnnulationTar of that PEC
vd "$ENV<vd:demande_annulation>$(HEAD)$PS<vd:numero_dossier>$DOSSIER</vd:numero_dossier><vd:numero_accreditation>$ACCREDITATION</vd:numero_accreditation><vd:id_prescription>1</vd:id_prescription></vd:demande_annulation>$END"

# Encrypted DEVIS: the prescription encrypted with openssl to the trusted third party's certificate
DATA=$(printf '%s' "<vd:prescription xmlns:vd='urn:visiodroits:v1'>$LINES</vd:prescription>" | openssl cms -encrypt -binary -outform DER -recip @TTP@ | base64 -w0)
vd "$ENV<vd:demande_tarification>$(HEAD)$PS<vd:numero_dossier>$DOSSIER</vd:numero_dossier><vd:mode>DEVIS</vd:mode><vd:prescription_chiffree><vd:donnees>$DATA</vd:donnees></vd:prescription_chiffree></vd:demande_tarification>$END"

# Pro Santé Connect (e-CPS): the software's ORG certificate, and the pharmacist's PSC token from
# the stand-in issuer, bound to that certificate (cnf.x5t#S256 = SHA-256 of the certificate)
X5T=$(openssl x509 -in @ORG_PEM@ -outform DER | openssl dgst -sha256 -binary | base64 -w0 | tr '+/' '-_' | tr -d '=')
PSC=$(curl -sS --fail --cacert @CA@ --data "ps_id=@PS_TOKEN@&x5t=$X5T" @ISSUER@/dev/mint)

# RFC 8693 token exchange: the PSC token goes no further than this; the server's own token (5 min) is bound to the ORG certificate
TOKEN=$(curl -sS --fail --cacert @CA@ --cert @ORG_PEM@ --key @ORG_KEY@ --data-urlencode grant_type=urn:ietf:params:oauth:grant-type:token-exchange --data-urlencode "subject_token=$PSC" --data-urlencode subject_token_type=urn:ietf:params:oauth:token-type:access_token @TOKEN_URL@ | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
vdt() { curl -sS --cacert @CA@ --cert @ORG_PEM@ --key @ORG_KEY@ -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/soap+xml; charset=utf-8' --data-binary "$1" @URL@; echo; }
PST="<vd:ps><vd:identifiant_ps>@PS_TOKEN@</vd:identifiant_ps><vd:numero_structure>@FINESS@</vd:numero_structure></vd:ps>"

# DemandeDroits and a DEVIS with the token: the pharmacist is the token's, the pharmacy the ORG certificate's (the message repeats it)
R=$(vdt "$ENV<vd:demande_droits>$(HEAD)$PST<vd:beneficiaire><vd:nir>1850578006084</vd:nir><vd:cle_nir>91</vd:cle_nir><vd:date_naissance>19850512</vd:date_naissance><vd:rang_gemellaire>1</vd:rang_gemellaire></vd:beneficiaire><vd:amc><vd:numero_amc>12345678</vd:numero_amc></vd:amc><vd:date_reference>@DATE@</vd:date_reference><vd:domaines><vd:domaine>PHAR</vd:domaine></vd:domaines></vd:demande_droits>$END"); echo "$R"
DOSSIER=$(echo "$R" | grep -o '<vd:numero_dossier>[^<]*' | cut -d'>' -f2)
vdt "$ENV<vd:demande_tarification>$(HEAD)$PST<vd:numero_dossier>$DOSSIER</vd:numero_dossier><vd:mode>DEVIS</vd:mode><vd:prescription>$LINES</vd:prescription></vd:demande_tarification>$END"
"#;

/// The text printed by the demo: endpoints, then [`SCRIPT`] filled in.
pub fn instructions(
    pki: &Path,
    addr: std::net::SocketAddr,
    ops: std::net::SocketAddr,
    issuer: &str,
) -> String {
    let url = format!("https://localhost:{}/visiodroits", addr.port());
    let cert = |name: &str| pki.join("clients").join(name).display().to_string();
    let ca = pki.join("ca/root.pem").display().to_string();
    let script = SCRIPT
        .replace("@CA@", &ca)
        .replace("@PEM@", &cert("cps.pem"))
        .replace("@KEY@", &cert("cps.key"))
        .replace("@URL@", &url)
        .replace("@TTP@", &pki.join("ttp/ttp.pem").display().to_string())
        .replace("@PS@", &format!("8{}", visiodroits_devkit::pki::CPS_RPPS))
        .replace("@ORG_PEM@", &cert("org.pem"))
        .replace("@ORG_KEY@", &cert("org.key"))
        .replace("@ISSUER@", issuer)
        .replace(
            "@TOKEN_URL@",
            &format!("https://localhost:{}/token", addr.port()),
        )
        .replace(
            "@PS_TOKEN@",
            &format!("8{}", visiodroits_devkit::pki::DEV_RPPS),
        )
        .replace("@FINESS@", visiodroits_devkit::pki::DEV_FINESS)
        .replace("@DATE@", &chrono::Utc::now().date_naive().to_string());
    format!(
        "\nVisiodroits demo\n\
         ================\n\
         Endpoint : {url}\n\
         WSDL     : {url}?wsdl\n\
         Health   : http://{ops}/readyz   Metrics: http://{ops}/metrics\n\
         SoapUI   : client certificate {p12} (PKCS#12, password {pw}); trust {ca}\n\n\
         PSC      : stand-in Pro Santé Connect issuer {issuer}\n\n\
         Paste these lines in a shell (bash): every operation with the pharmacist's CPS card\n\
         ({subject}: no OU; the card names the professional, the\n\
         message declares the pharmacy, and the demo's professional directory lists it there),\n\
         then the Pro Santé Connect way: the software's ORG certificate and a token.\n\
         ----8<----\n{script}----8<----\n",
        p12 = cert("cps.p12"),
        subject = "SN=PHARMACH0007512+CN=899700075122+GN=CAROLE,title=Pharmacien,C=FR",
        pw = visiodroits_devkit::pki::P12_PASSWORD,
    )
}

/// A `ServicesOuverts` request (demo and tests).
pub fn services_request(request_id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:vd="urn:visiodroits:v1"><soap:Body><vd:demande_services><vd:entete><vd:id_logiciel>DEMO-CURL</vd:id_logiciel><vd:version_logiciel>1.0</vd:version_logiciel><vd:id_requete>{request_id}</vd:id_requete></vd:entete></vd:demande_services></soap:Body></soap:Envelope>"#
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
