//! The trust layer against the real PKI's shapes (spec/security.md, revision 2): key usages
//! refused at the handshake, revocation decided on the verified path (a re-keyed intermediate of
//! the same name, two same-name CAs each with its own CRL), delta CRLs completing their base,
//! reloads that apply what loaded, and sessions that age out with their certificate. Each refusal
//! has its positive control on the same server.

use std::sync::Arc;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
};
use openssl::x509::{X509Name, X509};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use visiodroits_client::{ClientIdentity, SoapConnection, Versions};

use crate::helpers::{code, new_id, services_on, shared, tls_for, TestApp};

pub(crate) fn load(rel: &str) -> (X509, PKey<Private>) {
    let s = shared();
    let cert = X509::from_pem(&std::fs::read(s.pki_path(&format!("{rel}.pem"))).unwrap()).unwrap();
    let key =
        PKey::private_key_from_pem(&std::fs::read(s.pki_path(&format!("{rel}.key"))).unwrap())
            .unwrap();
    (cert, key)
}

pub(crate) fn pem(x: &X509) -> String {
    String::from_utf8(x.to_pem().unwrap()).unwrap()
}

pub(crate) fn key_pem(k: &PKey<Private>) -> String {
    String::from_utf8(k.private_key_to_pem_pkcs8().unwrap()).unwrap()
}

pub(crate) fn serial_of(x: &X509) -> Vec<u8> {
    x.serial_number().to_bn().unwrap().to_vec()
}

pub(crate) fn ec_key() -> PKey<Private> {
    PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap()
}

/// A certificate for `subject`, issued by `issuer`, valid from now for `seconds`: a CA when
/// `ca`, else a client authentication card.
pub(crate) fn issue(
    subject: &openssl::x509::X509NameRef,
    issuer: (&X509, &PKey<Private>),
    ca: bool,
    seconds: i64,
) -> (X509, PKey<Private>) {
    let key = ec_key();
    (issue_for(subject, &key, issuer, ca, seconds), key)
}

/// Like [`issue`], for an existing key (a cross-certificate).
pub(crate) fn issue_for(
    subject: &openssl::x509::X509NameRef,
    key: &PKey<Private>,
    issuer: (&X509, &PKey<Private>),
    ca: bool,
    seconds: i64,
) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(120, MsbOption::ONE, false).unwrap();
    b.set_serial_number(Asn1Integer::from_bn(&serial).unwrap().as_ref())
        .unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(issuer.0.subject_name()).unwrap();
    b.set_pubkey(key).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    b.set_not_before(Asn1Time::from_unix(now - 60).unwrap().as_ref())
        .unwrap();
    b.set_not_after(Asn1Time::from_unix(now + seconds).unwrap().as_ref())
        .unwrap();
    if ca {
        b.append_extension(
            BasicConstraints::new()
                .critical()
                .ca()
                .pathlen(0)
                .build()
                .unwrap(),
        )
        .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        // No SubjectKeyIdentifier: the CRLs issued with rcgen name the key by another method,
        // and a CRL whose AuthorityKeyIdentifier differs from its CA's SKI is not that CA's.
    } else {
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
            .unwrap();
    }
    if issuer.0.subject_key_id().is_some() {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(issuer.0), None))
            .unwrap();
        b.append_extension(aki).unwrap();
    }
    b.sign(issuer.1, MessageDigest::sha256()).unwrap();
    b.build()
}

/// A CPS-shaped card's subject (no OU): `C=FR, CN=8…`.
pub(crate) fn card_name(cn: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_text("C", "FR").unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

pub(crate) fn identity(chain: &[&X509], key: &PKey<Private>) -> ClientIdentity {
    ClientIdentity {
        chain: chain
            .iter()
            .map(|c| CertificateDer::from(c.to_der().unwrap()))
            .collect(),
        key: PrivateKeyDer::try_from(key.private_key_to_pkcs8().unwrap()).unwrap(),
    }
}

pub(crate) fn config_for(
    identity: ClientIdentity,
    versions: Versions,
) -> Arc<rustls::ClientConfig> {
    visiodroits_client::tls_config(&shared().pki_path("ca/root.pem"), Some(identity), versions)
        .unwrap()
}

/// A directory holding copies of the dev PKI's CRLs, for a test to change.
fn crl_dir(label: &str) -> std::path::PathBuf {
    let s = shared();
    let dir = s.base.join(format!("crl-{label}-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in visiodroits::tls::crl::crl_files(&s.pki_path("crl")).unwrap() {
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    dir
}

#[tokio::test]
async fn cards_without_client_authentication_usages_and_leaves_of_a_revoked_rekeyed_ca_are_refused_at_the_handshake(
) {
    let app = TestApp::spawn().await;
    for versions in [Versions::Tls12, Versions::Tls13] {
        for (card, why) in [
            ("noeku", "no ExtendedKeyUsage"),
            (
                "signature-only",
                "a signature certificate (nonRepudiation only)",
            ),
            (
                "rekeyed-revoked",
                "its intermediate has the real one's name but the root revoked it",
            ),
        ] {
            let result = app.ask_fresh(tls_for(Some(card), versions)).await;
            assert!(
                result.is_err(),
                "{card} ({why}) over {versions:?}: {result:?}"
            );
        }
        // The same server serves the real CPS card, and a card of the real intermediate.
        for card in ["cps", "valid"] {
            assert_eq!(
                app.ask_fresh(tls_for(Some(card), versions)).await.unwrap(),
                "0000",
                "{card} over {versions:?}"
            );
        }
    }
    let (_, metrics) = app.ops_get("/metrics").await;
    for reason in ["no_extended_key_usage", "no_digital_signature", "revoked"] {
        assert!(
            metrics.contains(&format!(
                "vd_tls_handshakes_refused_total{{reason=\"{reason}\"}} 2"
            )),
            "{reason} counted once per TLS version:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn two_cas_with_one_name_each_have_their_crl() {
    let s = shared();
    let (root, root_key) = load("ca/root");
    let (inter, _) = load("ca/intermediate");
    // A second intermediate under the very name of the dev one, with its own key.
    let (twin, twin_key) = issue(inter.subject_name(), (&root, &root_key), true, 86_400);
    let (kept, kept_key) = issue(
        &card_name("810001234672"),
        (&twin, &twin_key),
        false,
        86_400,
    );
    let (gone, gone_key) = issue(
        &card_name("810001234680"),
        (&twin, &twin_key),
        false,
        86_400,
    );
    let trust = s.base.join(format!("trust-twins-{}.pem", new_id()));
    std::fs::write(
        &trust,
        format!(
            "{}{}",
            std::fs::read_to_string(s.pki_path("trust.pem")).unwrap(),
            pem(&twin)
        ),
    )
    .unwrap();
    let dir = crl_dir("twins");
    let now = time::OffsetDateTime::now_utc();
    let twin_crl = visiodroits_devkit::pki::issue_crl(
        &pem(&twin),
        &key_pem(&twin_key),
        &[serial_of(&gone)],
        now - time::Duration::minutes(1),
        now + time::Duration::days(1),
        1,
    )
    .unwrap();
    std::fs::write(dir.join("twin.crl.pem"), twin_crl).unwrap();
    let (trust_s, dir_s) = (trust.display().to_string(), dir.display().to_string());
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CLIENT_CA".into(), trust_s);
        v.insert("VD_CRL_DIR".into(), dir_s);
    })
    .await;
    for versions in [Versions::Tls12, Versions::Tls13] {
        let refused = app
            .ask_fresh(config_for(identity(&[&gone, &twin], &gone_key), versions))
            .await;
        assert!(
            refused.is_err(),
            "revoked on the twin's CRL, {versions:?}: {refused:?}"
        );
        // The card sends its leaf alone: the path is found among the configured intermediates.
        assert_eq!(
            app.ask_fresh(config_for(identity(&[&kept], &kept_key), versions))
                .await
                .unwrap(),
            "0000",
            "a card of the twin that no CRL lists, {versions:?}"
        );
        assert_eq!(
            app.ask_fresh(tls_for(Some("valid"), versions))
                .await
                .unwrap(),
            "0000",
            "a card of the dev intermediate, {versions:?}"
        );
    }
    assert!(
        app.ask_fresh(tls_for(Some("revoked"), Versions::Both))
            .await
            .is_err(),
        "the dev intermediate's own CRL stays in force beside the twin's"
    );
}

#[tokio::test]
async fn a_delta_crl_completes_its_base_without_dropping_its_revocations() {
    let (inter, inter_key) = load("ca/intermediate");
    let cert = |name: &str| {
        X509::from_pem(&std::fs::read(shared().pki_path(&format!("clients/{name}.pem"))).unwrap())
            .unwrap()
    };
    let dir = crl_dir("delta");
    let now = time::OffsetDateTime::now_utc();
    // Base 5 revokes `other-structure` and holds `org`; delta 6 revokes `cpe`, releases `org`.
    let base = visiodroits_devkit::pki::issue_crl(
        &pem(&inter),
        &key_pem(&inter_key),
        &[serial_of(&cert("other-structure")), serial_of(&cert("org"))],
        now - time::Duration::hours(1),
        now + time::Duration::days(7),
        5,
    )
    .unwrap();
    std::fs::write(dir.join("intermediate.crl.pem"), base).unwrap();
    let delta = visiodroits_devkit::pki::issue_delta_crl(
        &pem(&inter),
        &key_pem(&inter_key),
        &[serial_of(&cert("cpe"))],
        &[serial_of(&cert("org"))],
        5,
        6,
        now - time::Duration::minutes(5),
        now + time::Duration::days(1),
    )
    .unwrap();
    std::fs::write(dir.join("intermediate-delta.crl.pem"), delta).unwrap();
    let dir_s = dir.display().to_string();
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), dir_s);
    })
    .await;
    for versions in [Versions::Tls12, Versions::Tls13] {
        let at = |card: &'static str| app.ask_fresh(tls_for(Some(card), versions));
        assert!(at("other-structure").await.is_err(), "revoked by the base");
        assert!(at("cpe").await.is_err(), "revoked by the delta");
        assert_eq!(at("org").await.unwrap(), "0000", "released by the delta");
        assert_eq!(at("valid").await.unwrap(), "0000", "listed by neither");
    }
    let report = visiodroits::cli::crl::status(
        &visiodroits::config::Config::from_map(&{
            let mut v = shared().config_vars("unused");
            v.insert("VD_CRL_DIR".into(), dir.display().to_string());
            v
        })
        .unwrap(),
    )
    .unwrap();
    assert!(report.contains("delta of 05"), "{report}");
}

#[tokio::test]
async fn a_reload_whose_server_key_is_broken_still_applies_the_new_crls() {
    let s = shared();
    let own = s.base.join(format!("server-{}", new_id()));
    std::fs::create_dir_all(&own).unwrap();
    for f in ["server.pem", "server.key"] {
        std::fs::copy(s.pki_path(&format!("server/{f}")), own.join(f)).unwrap();
    }
    let dir = crl_dir("broken-key");
    let (own_s, dir_s) = (own.clone(), dir.display().to_string());
    let app = TestApp::spawn_with(|v| {
        v.insert(
            "VD_TLS_CERT".into(),
            own_s.join("server.pem").display().to_string(),
        );
        v.insert(
            "VD_TLS_KEY".into(),
            own_s.join("server.key").display().to_string(),
        );
        v.insert("VD_CRL_DIR".into(), dir_s);
    })
    .await;
    let mut open = app.connect(Some("valid")).await.unwrap();
    let reply = services_on(&mut open).await.unwrap();
    assert_eq!(code(&reply), "0000");

    // A new CRL revokes `valid`, and the same reload finds a server key that does not parse.
    let (inter, inter_key) = load("ca/intermediate");
    let (valid, _) = load("clients/valid");
    let (revoked, _) = load("clients/revoked");
    let now = time::OffsetDateTime::now_utc();
    let crl = visiodroits_devkit::pki::issue_crl(
        &pem(&inter),
        &key_pem(&inter_key),
        &[serial_of(&valid), serial_of(&revoked)],
        now - time::Duration::minutes(1),
        now + time::Duration::days(7),
        2,
    )
    .unwrap();
    std::fs::write(dir.join("intermediate.crl.pem"), crl).unwrap();
    std::fs::write(
        own.join("server.key"),
        "-----BEGIN PRIVATE KEY-----\nbroken\n",
    )
    .unwrap();
    let err = app.server.reload_crls().await.unwrap_err();
    assert!(format!("{err:#}").contains("VD_TLS_KEY"), "{err:#}");

    let reply = services_on(&mut open).await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), code(&reply).as_str()),
        (400, "8003"),
        "the open connection sees the new CRL"
    );
    assert!(
        app.ask_fresh(tls_for(Some("valid"), Versions::Both))
            .await
            .is_err(),
        "new handshakes too"
    );
    assert_eq!(
        app.ask_fresh(tls_for(Some("cps"), Versions::Both))
            .await
            .unwrap(),
        "0000",
        "served with the certificate and key that were in force"
    );
}

#[tokio::test]
async fn a_session_is_served_only_while_its_card_is_valid() {
    let app = TestApp::spawn().await;
    let (inter, inter_key) = load("ca/intermediate");
    let (card, key) = issue(&card_name("810001234565"), (&inter, &inter_key), false, 2);
    let expires = card.not_after().to_owned();
    let mut sessions = Vec::new();
    for versions in [Versions::Tls12, Versions::Tls13] {
        let config = config_for(identity(&[&card, &inter], &key), versions);
        let mut conn = SoapConnection::connect(app.addr(), "localhost", config.clone())
            .await
            .unwrap();
        let reply = services_on(&mut conn).await.unwrap();
        assert_eq!(code(&reply), "0000", "{versions:?}");
        sessions.push((versions, conn, config));
    }
    // The card's notAfter passes (a short-lived card: two seconds).
    while Asn1Time::days_from_now(0).unwrap() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for (versions, mut open, config) in sessions {
        let reply = services_on(&mut open).await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), code(&reply).as_str()),
            (400, "8003"),
            "the keep-alive connection, {versions:?}"
        );
        let mut resumed = SoapConnection::connect(app.addr(), "localhost", config)
            .await
            .unwrap();
        assert!(
            resumed.resumed,
            "{versions:?}: a resumption, not a full handshake"
        );
        let reply = services_on(&mut resumed).await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), code(&reply).as_str()),
            (400, "8003"),
            "the resumed session, {versions:?}"
        );
    }
    // Refusals are audited off the response path.
    let mut motifs: Vec<(Option<String>,)> = Vec::new();
    for _ in 0..50 {
        motifs = sqlx::query_as("SELECT motif FROM audit.journal WHERE code = '8003'")
            .fetch_all(&app.db)
            .await
            .unwrap();
        if motifs.len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(motifs, vec![(Some("expired".to_string()),); 4]);
}

#[tokio::test]
async fn removing_a_ca_from_the_bundle_takes_effect_on_reload() {
    let s = shared();
    let trust = s.base.join(format!("trust-removal-{}.pem", new_id()));
    std::fs::copy(s.pki_path("trust.pem"), &trust).unwrap();
    let trust_s = trust.display().to_string();
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CLIENT_CA".into(), trust_s);
    })
    .await;
    let mut open = app.connect(Some("valid")).await.unwrap();
    let reply = services_on(&mut open).await.unwrap();
    assert_eq!(code(&reply), "0000");
    // The bundle without the dev intermediate (the card sends it, but it is no longer trusted).
    let (root, _) = load("ca/root");
    let rekeyed = std::fs::read_to_string(s.pki_path("ca/intermediate-rekeyed.pem")).unwrap();
    std::fs::write(&trust, format!("{}{rekeyed}", pem(&root))).unwrap();
    app.server.reload_crls().await.unwrap();
    let reply = services_on(&mut open).await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), code(&reply).as_str()),
        (400, "8003"),
        "the open connection"
    );
    assert!(app
        .ask_fresh(tls_for(Some("valid"), Versions::Both))
        .await
        .is_err());
    // Put back, it is trusted again.
    std::fs::copy(s.pki_path("trust.pem"), &trust).unwrap();
    app.server.reload_crls().await.unwrap();
    assert_eq!(
        app.ask_fresh(tls_for(Some("valid"), Versions::Both))
            .await
            .unwrap(),
        "0000"
    );
}

#[tokio::test]
async fn a_crl_restricted_to_end_entity_certificates_does_not_cover_an_intermediate() {
    use rcgen::{
        CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint,
        CrlScope, Issuer, KeyIdMethod, KeyPair, SerialNumber,
    };
    let s = shared();
    let root = Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(s.pki_path("ca/root.pem")).unwrap(),
        KeyPair::from_pem(&std::fs::read_to_string(s.pki_path("ca/root.key")).unwrap()).unwrap(),
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let users_only = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(7u64),
        issuing_distribution_point: Some(CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec!["http://crl.igc-sante.invalid/racine-utilisateurs.crl".into()],
            },
            scope: Some(CrlScope::UserCertsOnly),
        }),
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&root)
    .unwrap()
    .pem()
    .unwrap();
    let dir = crl_dir("idp");
    std::fs::write(dir.join("root.crl.pem"), users_only).unwrap();
    let dir_s = dir.display().to_string();
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), dir_s);
    })
    .await;
    // The root's only CRL covers end-entity certificates of one distribution point: the
    // intermediate (a CA certificate, without that point) has no CRL covering it.
    assert!(app
        .ask_fresh(tls_for(Some("valid"), Versions::Both))
        .await
        .is_err());
    let report = visiodroits::cli::crl::status(
        &visiodroits::config::Config::from_map(&{
            let mut v = s.config_vars("unused");
            v.insert("VD_CRL_DIR".into(), dir.display().to_string());
            v
        })
        .unwrap(),
    )
    .unwrap();
    assert!(
        report.contains("base (end-entity certificates of http://crl.igc-sante.invalid/racine-utilisateurs.crl)"),
        "{report}"
    );
    // The complete CRL back: served.
    std::fs::copy(s.pki_path("crl/root.crl.pem"), dir.join("root.crl.pem")).unwrap();
    app.server.reload_crls().await.unwrap();
    assert_eq!(
        app.ask_fresh(tls_for(Some("valid"), Versions::Both))
            .await
            .unwrap(),
        "0000"
    );
}

#[tokio::test]
async fn a_presented_intermediate_never_stands_for_a_configured_one() {
    // The bundle holds an intermediate whose own root is not trusted; the client presents a
    // cross-certificate of that intermediate (same name, same key) under the trusted root, which
    // the root revoked. Only configured intermediates make paths, so the revoked one is not used
    // and the card has no path.
    let s = shared();
    let (root, root_key) = load("ca/root");
    let (outsider, outsider_key) = load("ca/unknown-root");
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("C", "FR").unwrap();
    name.append_entry_by_text("CN", "AC CROISEE DEV").unwrap();
    let name = name.build();
    let (inter, inter_key) = issue(&name, (&outsider, &outsider_key), true, 86_400);
    let cross = issue_for(&name, &inter_key, (&root, &root_key), true, 86_400);
    let (card, card_key) = issue(
        &card_name("810001234565"),
        (&inter, &inter_key),
        false,
        86_400,
    );
    let trust = s.base.join(format!("trust-cross-{}.pem", new_id()));
    std::fs::write(
        &trust,
        format!(
            "{}{}",
            std::fs::read_to_string(s.pki_path("trust.pem")).unwrap(),
            pem(&inter)
        ),
    )
    .unwrap();
    let dir = crl_dir("cross");
    let now = time::OffsetDateTime::now_utc();
    let fresh = (
        now - time::Duration::minutes(1),
        now + time::Duration::days(1),
    );
    let rekeyed =
        X509::from_pem(&std::fs::read(s.pki_path("ca/intermediate-rekeyed.pem")).unwrap()).unwrap();
    std::fs::write(
        dir.join("root.crl.pem"),
        visiodroits_devkit::pki::issue_crl(
            &pem(&root),
            &key_pem(&root_key),
            &[serial_of(&cross), serial_of(&rekeyed)],
            fresh.0,
            fresh.1,
            2,
        )
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("cross.crl.pem"),
        visiodroits_devkit::pki::issue_crl(
            &pem(&inter),
            &key_pem(&inter_key),
            &[],
            fresh.0,
            fresh.1,
            1,
        )
        .unwrap(),
    )
    .unwrap();
    let (trust_s, dir_s) = (trust.display().to_string(), dir.display().to_string());
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CLIENT_CA".into(), trust_s);
        v.insert("VD_CRL_DIR".into(), dir_s);
    })
    .await;
    for versions in [Versions::Tls12, Versions::Tls13] {
        let refused = app
            .ask_fresh(config_for(identity(&[&card, &cross], &card_key), versions))
            .await;
        assert!(refused.is_err(), "{versions:?}: {refused:?}");
        assert_eq!(
            app.ask_fresh(tls_for(Some("valid"), versions))
                .await
                .unwrap(),
            "0000",
            "{versions:?}"
        );
    }
}
