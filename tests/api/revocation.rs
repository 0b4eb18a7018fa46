//! Connection reuse and revocation (spec/security.md): sessions resume, and a revocation bites at
//! once — on open keep-alive connections and on resumed sessions alike.

use visiodroits::soap::SoapVersion;
use visiodroits_client::{SoapConnection, Versions};

use crate::helpers::{code, new_id, services_request, shared, tls_for, TestApp};

async fn services(conn: &mut SoapConnection) -> anyhow::Result<String> {
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await?;
    Ok(code(&reply))
}

#[tokio::test]
async fn sessions_resume_with_tls_1_2_and_1_3() {
    let app = TestApp::spawn().await;
    for versions in [Versions::Tls12, Versions::Tls13] {
        let config = tls_for(Some("valid"), versions);
        let mut first = SoapConnection::connect(app.addr(), "localhost", config.clone())
            .await
            .unwrap();
        assert!(!first.resumed);
        assert_eq!(services(&mut first).await.unwrap(), "0000");
        let mut second = SoapConnection::connect(app.addr(), "localhost", config)
            .await
            .unwrap();
        assert!(second.resumed, "{versions:?}: the second handshake resumes");
        assert_eq!(services(&mut second).await.unwrap(), "0000", "{versions:?}");
    }
    let (_, metrics) = app.ops_get("/metrics").await;
    assert!(
        metrics.contains("vd_tls_handshakes_total{kind=\"resumed\"} 2"),
        "{metrics}"
    );
}

/// Writes into `dir` the CRLs of the dev PKI, the intermediate's now also revoking `valid`.
fn revoke_valid(dir: &std::path::Path) {
    let s = shared();
    let pem = std::fs::read(s.pki_path("clients/valid.pem")).unwrap();
    let valid = openssl::x509::X509::from_pem(&pem).unwrap();
    let revoked_pem = std::fs::read(s.pki_path("clients/revoked.pem")).unwrap();
    let revoked = openssl::x509::X509::from_pem(&revoked_pem).unwrap();
    let serials: Vec<Vec<u8>> = [valid, revoked]
        .iter()
        .map(|c| c.serial_number().to_bn().unwrap().to_vec())
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let crl = visiodroits_devkit::pki::issue_crl(
        &std::fs::read_to_string(s.pki_path("ca/intermediate.pem")).unwrap(),
        &std::fs::read_to_string(s.pki_path("ca/intermediate.key")).unwrap(),
        &serials,
        now - time::Duration::minutes(1),
        now + time::Duration::days(7),
        2,
    )
    .unwrap();
    std::fs::write(dir.join("intermediate.crl.pem"), crl).unwrap();
}

#[tokio::test]
async fn a_revocation_bites_open_connections_and_resumed_sessions() {
    let s = shared();
    let dir = s.base.join(format!("crl-revocation-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "root.crl.pem",
        "intermediate.crl.pem",
        "intermediate-rekeyed.crl.pem",
    ] {
        std::fs::copy(s.pki_path(&format!("crl/{f}")), dir.join(f)).unwrap();
    }
    let crl_dir = dir.display().to_string();
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), crl_dir);
    })
    .await;
    let tls12 = tls_for(Some("valid"), Versions::Tls12);
    let tls13 = tls_for(Some("valid"), Versions::Tls13);
    let mut open12 = SoapConnection::connect(app.addr(), "localhost", tls12.clone())
        .await
        .unwrap();
    let mut open13 = SoapConnection::connect(app.addr(), "localhost", tls13.clone())
        .await
        .unwrap();
    assert_eq!(services(&mut open12).await.unwrap(), "0000");
    assert_eq!(services(&mut open13).await.unwrap(), "0000");

    revoke_valid(&dir);
    app.server.reload_crls().await.unwrap();

    // The open connections: refused with 8003 on their next request, then closed.
    for conn in [&mut open12, &mut open13] {
        let reply = conn
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(
            (reply.status.as_u16(), code(&reply).as_str()),
            (400, "8003")
        );
        assert!(
            services(conn).await.is_err(),
            "the connection is closed after the refusal"
        );
    }
    // The saved sessions resume (rustls restores the certificate without re-verifying it), but
    // are not served.
    for config in [tls12, tls13] {
        let mut resumed = SoapConnection::connect(app.addr(), "localhost", config)
            .await
            .unwrap();
        assert!(resumed.resumed, "a resumption, not a full handshake");
        let reply = resumed
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(
            (reply.status.as_u16(), code(&reply).as_str()),
            (400, "8003")
        );
    }
    // A fresh handshake with the revoked certificate fails.
    let fresh = rustls::ClientConfig::clone(&tls_for(Some("valid"), Versions::Both));
    let mut fresh = fresh;
    fresh.resumption = rustls::client::Resumption::disabled();
    let result = async {
        let mut c =
            SoapConnection::connect(app.addr(), "localhost", std::sync::Arc::new(fresh)).await?;
        services(&mut c).await
    }
    .await;
    assert!(result.is_err(), "{result:?}");
    // Other certificates are unaffected.
    let mut other = app.connect(Some("other-structure")).await.unwrap();
    assert_eq!(services(&mut other).await.unwrap(), "0000");
}
