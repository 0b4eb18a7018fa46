//! Certificate edge cases (spec/security.md "Client certificates"): each refused, and the refusal
//! audited with its reason and the certificate's identity.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509Name, X509};
use rustls_pki_types::pem::PemObject;
use visiodroits::soap::SoapVersion;
use visiodroits_client::{ClientIdentity, SoapConnection, Versions};

use crate::helpers::{code, new_id, services_request, shared, wait_sealed, TestApp};

fn load(rel: &str) -> (X509, PKey<Private>) {
    let s = shared();
    let cert = X509::from_pem(&std::fs::read(s.pki_path(&format!("{rel}.pem"))).unwrap()).unwrap();
    let key =
        PKey::private_key_from_pem(&std::fs::read(s.pki_path(&format!("{rel}.key"))).unwrap())
            .unwrap();
    (cert, key)
}

fn ec_key() -> PKey<Private> {
    PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap()
}

struct Leaf<'a> {
    cn: &'a str,
    ou: &'a str,
    key: PKey<Private>,
    client_auth: bool,
    ca: bool,
    digest: MessageDigest,
}

fn issue(leaf: Leaf<'_>, issuer: &X509, issuer_key: &PKey<Private>) -> X509 {
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("C", "FR").unwrap();
    name.append_entry_by_text("OU", leaf.ou).unwrap();
    name.append_entry_by_text("CN", leaf.cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial
        .rand(120, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.subject_name()).unwrap();
    b.set_pubkey(&leaf.key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    if leaf.ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
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
    } else {
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
        let mut eku = ExtendedKeyUsage::new();
        if leaf.client_auth {
            eku.client_auth();
        } else {
            eku.server_auth();
        }
        b.append_extension(eku.build().unwrap()).unwrap();
    }
    b.sign(issuer_key, leaf.digest).unwrap();
    b.build()
}

fn leaf(cn: &str, ou: &str) -> Leaf<'static> {
    Leaf {
        cn: Box::leak(cn.to_string().into_boxed_str()),
        ou: Box::leak(ou.to_string().into_boxed_str()),
        key: ec_key(),
        client_auth: true,
        ca: false,
        digest: MessageDigest::sha256(),
    }
}

/// Connects presenting `chain` (leaf first) with `key`; the response code or the failure.
async fn present(app: &TestApp, chain: &[&X509], key: &PKey<Private>) -> anyhow::Result<String> {
    let certs = chain
        .iter()
        .map(|c| rustls_pki_types::CertificateDer::from(c.to_der().unwrap()))
        .collect();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_slice(&key.private_key_to_pem_pkcs8().unwrap())
            .unwrap();
    let config = visiodroits_client::tls_config(
        &shared().pki_path("ca/root.pem"),
        Some(ClientIdentity { chain: certs, key }),
        Versions::Tls12,
    )?;
    let mut conn = SoapConnection::connect(app.addr(), "localhost", config).await?;
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await?;
    Ok(code(&reply))
}

/// Like [`present`], with an OpenSSL client (which accepts keys rustls refuses to use).
async fn present_with_openssl(
    app: &TestApp,
    chain: &[&X509],
    key: &PKey<Private>,
) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let addr = app.addr();
    let chain: Vec<X509> = chain.iter().map(|c| (*c).clone()).collect();
    let key = key.clone();
    let body = services_request(SoapVersion::V12, &new_id(), None);
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        use openssl::ssl::{SslConnector, SslMethod, SslVersion};
        let mut b = SslConnector::builder(SslMethod::tls())?;
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_cipher_list("DEFAULT:@SECLEVEL=0")?;
        b.set_ca_file(shared().pki_path("ca/root.pem"))?;
        b.set_certificate(&chain[0])?;
        for c in &chain[1..] {
            b.add_extra_chain_cert(c.clone())?;
        }
        b.set_private_key(&key)?;
        let tcp = std::net::TcpStream::connect(addr)?;
        let mut tls = b.build().connect("localhost", tcp)?;
        write!(
            tls,
            "POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut out = String::new();
        tls.read_to_string(&mut out)?;
        out.split("<vd:code>")
            .nth(1)
            .map(|c| c[..4].to_string())
            .ok_or_else(|| anyhow::anyhow!("no answer"))
    })
    .await?
}

const PS: &str = "810001234565";
const OU: &str = "1750000001";

#[tokio::test]
async fn certificate_edge_cases_are_refused_and_audited_with_their_reason() {
    let app = TestApp::spawn().await;
    let (inter, inter_key) = load("ca/intermediate");

    let no_client_auth = Leaf {
        client_auth: false,
        ..leaf(PS, OU)
    };
    let k1 = no_client_auth.key.clone();
    let no_client_auth = issue(no_client_auth, &inter, &inter_key);
    assert!(
        present(&app, &[&no_client_auth, &inter], &k1)
            .await
            .is_err(),
        "no clientAuth usage"
    );

    assert!(
        present(&app, &[&inter], &inter_key).await.is_err(),
        "a CA certificate as client"
    );

    // A sub-CA under the intermediate (whose path length is 0), then a leaf under it.
    let sub = Leaf {
        ca: true,
        ..leaf("AC SOUS-DELEGUEE DEV", "IGC-SANTE DEV")
    };
    let sub_key = sub.key.clone();
    let sub = issue(sub, &inter, &inter_key);
    let deep = leaf(PS, OU);
    let k2 = deep.key.clone();
    let deep = issue(deep, &sub, &sub_key);
    assert!(
        present(&app, &[&deep, &sub, &inter], &k2).await.is_err(),
        "chain longer than allowed"
    );

    let rsa1024 = Leaf {
        key: PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap(),
        ..leaf(PS, OU)
    };
    let k3 = rsa1024.key.clone();
    let rsa1024 = issue(rsa1024, &inter, &inter_key);
    // rustls will not even load a 1024-bit key as a client: an OpenSSL client presents it.
    assert!(
        present_with_openssl(&app, &[&rsa1024, &inter], &k3)
            .await
            .is_err(),
        "RSA-1024"
    );

    let sha1 = Leaf {
        digest: MessageDigest::sha1(),
        ..leaf(PS, OU)
    };
    let k4 = sha1.key.clone();
    let sha1 = issue(sha1, &inter, &inter_key);
    assert!(
        present(&app, &[&sha1, &inter], &k4).await.is_err(),
        "SHA-1 signature"
    );

    // Valid chains whose subject no profile recognises: 8003 at the first request.
    let bad_cn = leaf("12345", OU);
    let k5 = bad_cn.key.clone();
    let bad_cn = issue(bad_cn, &inter, &inter_key);
    assert_eq!(
        present(&app, &[&bad_cn, &inter], &k5).await.unwrap(),
        "8003",
        "CN outside the policy"
    );
    let bad_ou = leaf(PS, "3123456789");
    let k6 = bad_ou.key.clone();
    let bad_ou = issue(bad_ou, &inter, &inter_key);
    assert_eq!(
        present(&app, &[&bad_ou, &inter], &k6).await.unwrap(),
        "8003",
        "OU outside the policy"
    );
    let bad_luhn = leaf("810001234566", OU);
    let k7 = bad_luhn.key.clone();
    let bad_luhn = issue(bad_luhn, &inter, &inter_key);
    assert_eq!(
        present(&app, &[&bad_luhn, &inter], &k7).await.unwrap(),
        "8003",
        "RPPS with a wrong Luhn digit"
    );

    // The audit names each refusal (handshakes are audited off the connection's path).
    let mut rows: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for _ in 0..100 {
        rows = sqlx::query_as("SELECT operation, motif, cert_sujet FROM audit.journal ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
        if rows.len() >= 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let handshakes: Vec<&(String, Option<String>, Option<String>)> =
        rows.iter().filter(|r| r.0 == "handshake").collect();
    assert_eq!(handshakes.len(), 5, "{rows:?}");
    for (_, motif, subject) in &handshakes {
        assert!(motif.is_some(), "{rows:?}");
        assert!(
            subject.as_deref().is_some_and(|s| s.contains("CN=")),
            "the refused certificate is named: {rows:?}"
        );
    }
    let motifs: Vec<&str> = handshakes.iter().filter_map(|r| r.1.as_deref()).collect();
    assert!(motifs.contains(&"invalid_purpose"), "{motifs:?}");
    let mut policy: Vec<Option<&str>> = rows
        .iter()
        .filter(|r| r.0 == "envelope")
        .map(|r| r.1.as_deref())
        .collect();
    policy.sort();
    assert_eq!(
        policy,
        vec![
            Some("CN hors politique"),
            Some("OU hors politique"),
            Some("RPPS invalide (clé de Luhn)")
        ]
    );
    wait_sealed(&app).await;
}

#[tokio::test]
async fn a_missing_intermediate_is_refused() {
    // Anchors without the intermediate, and a client that sends its leaf alone.
    let s = shared();
    let anchors = s.base.join(format!("anchors-{}.pem", new_id()));
    std::fs::copy(s.pki_path("ca/root.pem"), &anchors).unwrap();
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CLIENT_CA".into(), anchors.display().to_string());
    })
    .await;
    let (valid, key) = load("clients/valid");
    assert!(present(&app, &[&valid], &key).await.is_err());
    // Presenting the intermediate does not help: its CRL cannot be trusted (its issuer is not a
    // configured CA), so the chain fails closed.
    let (inter, _) = load("ca/intermediate");
    assert!(present(&app, &[&valid, &inter], &key).await.is_err());
}

#[tokio::test]
async fn a_crl_for_an_issuer_that_is_not_configured_is_refused() {
    let s = shared();
    let dir = s.base.join(format!("crl-foreign-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "root.crl.pem",
        "intermediate.crl.pem",
        "intermediate-rekeyed.crl.pem",
    ] {
        std::fs::copy(s.pki_path(&format!("crl/{f}")), dir.join(f)).unwrap();
    }
    let (unknown, unknown_key) = load("ca/unknown-root");
    let now = time::OffsetDateTime::now_utc();
    let foreign = visiodroits_devkit::pki::issue_crl(
        &String::from_utf8(unknown.to_pem().unwrap()).unwrap(),
        &String::from_utf8(unknown_key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        &[],
        now,
        now + time::Duration::days(1),
        1,
    )
    .unwrap();
    std::fs::write(dir.join("foreign.crl.pem"), foreign).unwrap();
    let mut vars = s.config_vars("unused");
    vars.insert("VD_CRL_DIR".into(), dir.display().to_string());
    let (tls, refused) =
        visiodroits::tls::TlsContext::load(&visiodroits::config::Config::from_map(&vars).unwrap())
            .unwrap();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].contains("is not a configured CA"), "{refused:?}");
    assert_eq!(tls.crls().crls.len(), 3);
}

#[tokio::test]
async fn refused_handshakes_are_audited_at_a_bounded_rate() {
    let app = TestApp::spawn().await;
    for _ in 0..60 {
        let _ = app
            .connect_with(Some("revoked"), Versions::Tls12)
            .await
            .map(|_| ());
        let mut c = match app.connect_with(Some("revoked"), Versions::Tls13).await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let _ = c
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await;
    }
    let mut audited = 0i64;
    for _ in 0..100 {
        audited =
            sqlx::query_scalar("SELECT count(*) FROM audit.journal WHERE operation = 'handshake'")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if audited >= 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(audited, 20, "20 per peer and minute");
    let (serial, motif): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT cert_serie, motif FROM audit.journal WHERE operation = 'handshake' LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(motif.as_deref(), Some("revoked"));
    assert!(serial.is_some());
    let (_, metrics) = app.ops_get("/metrics").await;
    assert!(
        metrics.contains("vd_tls_handshakes_refused_total{reason=\"revoked\"} 120"),
        "{metrics}"
    );
}
