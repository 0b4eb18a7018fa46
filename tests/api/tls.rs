//! TLS and client certificates over a real socket, with the dev PKI (spec/security.md).

use std::path::Path;

use visiodroits::soap::SoapVersion;
use visiodroits_client::Versions;

use crate::helpers::{assert_valid, code, new_id, services_in, services_request, shared, TestApp};

/// Does one ServicesOuverts with `cert`; `Err` when the TLS layer refused.
async fn try_services(
    app: &TestApp,
    cert: Option<&str>,
    versions: Versions,
) -> anyhow::Result<String> {
    let mut conn = app.connect_with(cert, versions).await?;
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await?;
    Ok(code(&reply))
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_accepted_with_a_valid_cps_certificate() {
    let app = TestApp::spawn().await;
    for (versions, expected) in [
        (Versions::Tls12, rustls::ProtocolVersion::TLSv1_2),
        (Versions::Tls13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut conn = app.connect_with(Some("valid"), versions).await.unwrap();
        assert_eq!(conn.tls_version, Some(expected));
        let reply = conn
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(code(&reply), "0000", "{expected:?}: {}", reply.body);
    }
}

#[tokio::test]
async fn handshake_is_refused_for_bad_client_certificates() {
    let app = TestApp::spawn().await;
    for cert in ["revoked", "expired", "not-yet-valid", "unknown-ca"] {
        for versions in [Versions::Tls12, Versions::Tls13] {
            let result = try_services(&app, Some(cert), versions).await;
            assert!(
                result.is_err(),
                "{cert} over {versions:?} must be refused, got {result:?}"
            );
        }
    }
    // The same server still serves a valid certificate.
    assert_eq!(
        try_services(&app, Some("valid"), Versions::Both)
            .await
            .unwrap(),
        "0000"
    );
    let (_, metrics) = app.ops_get("/metrics").await;
    for reason in ["revoked", "expired", "not_yet_valid", "unknown_issuer"] {
        assert!(
            metrics.contains(&format!(
                "vd_tls_handshakes_refused_total{{reason=\"{reason}\"}}"
            )),
            "refusal reason {reason} must be counted:\n{metrics}"
        );
    }
}

/// A CRL directory holding the root's CRL and, optionally, a variant of the intermediate's.
fn crl_dir(name: &str, intermediate: Option<&str>) -> String {
    let s = shared();
    let dir = s.base.join(format!("crl-{name}-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(s.pki_path("crl/root.crl.pem"), dir.join("root.crl.pem")).unwrap();
    crate::helpers::copy_rekeyed_crl(&dir);
    if let Some(rel) = intermediate {
        std::fs::copy(
            s.pki_path(rel),
            dir.join(Path::new(rel).file_name().unwrap()),
        )
        .unwrap();
    }
    dir.display().to_string()
}

#[tokio::test]
async fn issuer_whose_crl_is_past_next_update_is_refused() {
    let dir = crl_dir("stale", Some("crl-variants/intermediate-expired.crl.pem"));
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), dir);
    })
    .await;
    for versions in [Versions::Tls12, Versions::Tls13] {
        assert!(
            try_services(&app, Some("valid"), versions).await.is_err(),
            "{versions:?}"
        );
    }
    let (status, body) = app.ops_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("past nextUpdate"), "{body}");
}

#[tokio::test]
async fn stale_crl_is_accepted_only_in_the_visible_degraded_mode() {
    let dir = crl_dir(
        "stale-allowed",
        Some("crl-variants/intermediate-expired.crl.pem"),
    );
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), dir);
        v.insert("VD_CRL_ALLOW_STALE".into(), "true".into());
    })
    .await;
    assert_eq!(
        try_services(&app, Some("valid"), Versions::Both)
            .await
            .unwrap(),
        "0000"
    );
    let (status, body) = app.ops_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("degraded: VD_CRL_ALLOW_STALE"), "{body}");
    let (_, metrics) = app.ops_get("/metrics").await;
    assert!(
        metrics.contains("vd_crl_degraded{mode=\"allow_stale\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn issuer_without_crl_is_refused() {
    let dir = crl_dir("missing", None);
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), dir);
    })
    .await;
    for versions in [Versions::Tls12, Versions::Tls13] {
        assert!(
            try_services(&app, Some("valid"), versions).await.is_err(),
            "{versions:?}"
        );
    }
    let (status, body) = app.ops_get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("crl: none for"), "{body}");
}

#[tokio::test]
async fn a_crl_signed_by_another_key_is_refused_and_does_not_break_the_issuer() {
    // The intermediate's CRL re-signed by the unknown root under the intermediate's name would
    // make every handshake fail; it must be refused at load, leaving the issuer without CRL.
    let s = shared();
    let dir = s.base.join(format!("crl-forged-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(s.pki_path("crl/root.crl.pem"), dir.join("root.crl.pem")).unwrap();
    crate::helpers::copy_rekeyed_crl(&dir);
    std::fs::copy(
        s.pki_path("crl/intermediate.crl.pem"),
        dir.join("intermediate.crl.pem"),
    )
    .unwrap();
    let forged = visiodroits_devkit::pki::issue_crl(
        &std::fs::read_to_string(s.pki_path("ca/intermediate.pem")).unwrap(),
        &std::fs::read_to_string(s.pki_path("ca/unknown-root.key")).unwrap(),
        &[],
        time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        time::OffsetDateTime::now_utc() + time::Duration::days(30),
        2,
    )
    .unwrap();
    std::fs::write(dir.join("zz-forged.crl.pem"), forged).unwrap();
    let (tls, refused) = visiodroits::tls::TlsContext::load(
        &visiodroits::config::Config::from_map(&{
            let mut v = s.config_vars("unused");
            v.insert("VD_CRL_DIR".into(), dir.display().to_string());
            v
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("zz-forged"), "{refused:?}");
    assert_eq!(tls.crls().crls.len(), 3, "the genuine CRLs stay in force");
}

#[tokio::test]
async fn tls_1_1_is_refused() {
    let app = TestApp::spawn().await;
    let addr = app.addr();
    let result = tokio::task::spawn_blocking(move || {
        use openssl::ssl::{SslConnector, SslMethod, SslVersion};
        let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
        b.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
        b.set_max_proto_version(Some(SslVersion::TLS1_1)).unwrap();
        b.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
        b.set_verify(openssl::ssl::SslVerifyMode::NONE);
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        b.build().connect("localhost", tcp).map(|_| ())
    })
    .await
    .unwrap();
    assert!(result.is_err(), "a TLS 1.1 handshake must fail");
}

#[tokio::test]
async fn certificate_outside_the_cn_ou_policy_gets_8003() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("bad-ou")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(code(&reply), "8003");
    assert!(
        reply.body.contains("<env:Value>vd:Acces</env:Value>"),
        "{}",
        reply.body
    );
    assert_valid(&reply, SoapVersion::V12);
    // SOAP 1.1: every Fault at HTTP 500 (WS-I R1126), a plain `Client` faultcode, the code in
    // the detail: where JAX-WS, WCF and PHP SoapClient read it.
    let reply = services_in(&mut conn, SoapVersion::V11).await.unwrap();
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(code(&reply), "8003");
    assert!(
        reply.body.contains("<faultcode>env:Client</faultcode>"),
        "{}",
        reply.body
    );
    assert_valid(&reply, SoapVersion::V11);
}

#[tokio::test]
async fn services_can_be_called_without_a_client_certificate() {
    let app = TestApp::spawn().await;
    assert_eq!(
        try_services(&app, None, Versions::Both).await.unwrap(),
        "0000"
    );
}

#[tokio::test]
async fn pkcs12_identity_of_the_dev_pki_is_usable() {
    let app = TestApp::spawn().await;
    let s = shared();
    let id = visiodroits_client::ClientIdentity::from_pkcs12(
        &s.pki_path("clients/valid.p12"),
        visiodroits_devkit::pki::P12_PASSWORD,
    )
    .unwrap();
    let config =
        visiodroits_client::tls_config(&s.pki_path("ca/root.pem"), Some(id), Versions::Both)
            .unwrap();
    let mut conn = visiodroits_client::SoapConnection::connect(app.addr(), "localhost", config)
        .await
        .unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
}
