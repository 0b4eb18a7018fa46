//! The SOAP envelope: versions, Faults, limits (spec/exchanges.md, spec/security.md).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use visiodroits::soap::SoapVersion;

use crate::helpers::{
    assert_valid, code, envelope, first, new_id, services_in, services_request, TestApp,
};

#[tokio::test]
async fn soap_1_1_and_1_2_are_answered_in_their_own_version() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let id = new_id();
        let reply = conn
            .soap(version, services_request(version, &id, None))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{version:?}");
        assert_eq!(
            reply.headers["content-type"].to_str().unwrap(),
            version.content_type(),
            "{version:?}"
        );
        assert!(
            reply
                .body
                .contains(&format!("xmlns:env=\"{}\"", version.namespace())),
            "{}",
            reply.body
        );
        assert_eq!(
            first(&reply.body, "id_requete").as_deref(),
            Some(id.as_str())
        );
        assert_valid(&reply, version);
    }
}

/// A server whose database cannot be reached: whatever these requests get, they got it without
/// the database (which would have answered 0999).
async fn app_without_database() -> TestApp {
    TestApp::spawn_with(|v| {
        v.insert(
            "DATABASE_URL".into(),
            "postgres://nobody@localhost/none?host=/nonexistent-socket-dir".into(),
        );
        v.insert("VD_DB_ACQUIRE_TIMEOUT_MS".into(), "2000".into());
    })
    .await
}

#[tokio::test]
async fn hostile_or_broken_requests_get_their_fault_quickly_and_without_the_database() {
    let app = app_without_database().await;
    let v = SoapVersion::V12;
    let big = "x".repeat(1024 * 1024 + 1);
    let cases: Vec<(&str, String, u16)> = vec![
        ("malformed XML", "<soap:Envelope><unclosed>".into(), 400),
        (
            "DOCTYPE",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE lol [<!ENTITY lol \"lol\">]>{}",
                services_request(v, &new_id(), None)
                    .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            ),
            400,
        ),
        (
            "unknown operation",
            envelope(v, "<vd:demande_inconnue/>"),
            400,
        ),
        (
            "right name in a wrong namespace",
            envelope(v, "<x:demande_services xmlns:x=\"urn:other\"/>"),
            400,
        ),
        ("oversized body", big, 413),
        ("not an envelope", "<demande_services/>".into(), 400),
        (
            "two body elements",
            envelope(v, "<vd:demande_services/><vd:demande_services/>"),
            400,
        ),
    ];
    let mut conn = app.connect(Some("valid")).await.unwrap();
    for (what, body, status) in cases {
        let started = Instant::now();
        let reply = conn
            .soap(v, body)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what} took {:?}",
            started.elapsed()
        );
        assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.body);
        assert_eq!(code(&reply), "6000", "{what}");
        assert!(
            reply.body.contains("<env:Value>env:Sender</env:Value>"),
            "{what}: {}",
            reply.body
        );
        assert_valid(&reply, v);
        if conn.is_closed() {
            conn = app.connect(Some("valid")).await.unwrap();
        }
    }
    // And the database really is unreachable: an exchange that needs it gets 0999.
    let reply = conn
        .soap(v, services_request(v, &new_id(), None))
        .await
        .unwrap();
    assert_eq!(reply.status, 500);
    assert_eq!(code(&reply), "0999");
    assert!(reply.body.contains("<env:Value>env:Receiver</env:Value>"));
    assert!(
        !reply.body.to_lowercase().contains("socket"),
        "no internal detail: {}",
        reply.body
    );
    assert_valid(&reply, v);
}

#[tokio::test]
async fn soap_1_1_faults_are_http_500_where_soap_1_2_says_400() {
    let app = app_without_database().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let cases = [
        ("malformed XML", "<soap:Envelope><unclosed>".to_string()),
        (
            "unknown operation",
            envelope(SoapVersion::V11, "<vd:demande_inconnue/>"),
        ),
    ];
    for (what, body) in cases {
        let reply = conn.soap(SoapVersion::V11, body).await.unwrap();
        assert_eq!(reply.status, 500, "{what}: {}", reply.body);
        assert_eq!(code(&reply), "6000", "{what}");
        assert!(
            reply.body.contains("<faultcode>env:Client</faultcode>"),
            "{what}: {}",
            reply.body
        );
        assert_valid(&reply, SoapVersion::V11);
    }
    // Refused before the body is read: the HTTP status says why, in either version.
    let reply = conn
        .soap(SoapVersion::V11, "x".repeat(1024 * 1024 + 1))
        .await
        .unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(code(&reply), "6000");
    assert_valid(&reply, SoapVersion::V11);
    // The technical error (no database here) is 500 in both.
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = services_in(&mut conn, SoapVersion::V11).await.unwrap();
    assert_eq!(reply.status, 500);
    assert_eq!(code(&reply), "0999");
    assert!(
        reply.body.contains("<faultcode>env:Server</faultcode>"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn content_type_decides_the_version_and_must_agree_with_the_envelope() {
    let app = app_without_database().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    // A SOAP 1.2 envelope sent as text/xml (SOAP 1.1), and the other way round: VersionMismatch,
    // HTTP 500 in both bindings, in the Content-Type's version.
    for (binding, envelope_version, faultcode) in [
        (
            SoapVersion::V11,
            SoapVersion::V12,
            "<faultcode>env:VersionMismatch</faultcode>",
        ),
        (
            SoapVersion::V12,
            SoapVersion::V11,
            "<env:Value>env:VersionMismatch</env:Value>",
        ),
    ] {
        let body = services_request(envelope_version, &new_id(), None);
        let reply = conn.soap(binding, body).await.unwrap();
        assert_eq!(reply.status, 500, "{binding:?}");
        assert_eq!(code(&reply), "6000");
        assert!(reply.body.contains(faultcode), "{}", reply.body);
        assert_valid(&reply, binding);
    }
    // Unknown media type.
    let req = http::Request::post("/visiodroits")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let reply = conn.send(req).await.unwrap();
    assert_eq!(reply.status, 415);
    assert_eq!(code(&reply), "6000");
    // An action that disagrees with the body.
    let req = http::Request::post("/visiodroits")
        .header(
            "content-type",
            "application/soap+xml; charset=utf-8; action=\"urn:visiodroits:v1:DldTar\"",
        )
        .body(Full::new(Bytes::from(services_request(
            SoapVersion::V12,
            &new_id(),
            None,
        ))))
        .unwrap();
    let reply = conn.send(req).await.unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("action"), "{}", reply.body);
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let app = app_without_database().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let mut body = services_request(SoapVersion::V12, &new_id(), None).into_bytes();
    let at = body.len() - 40;
    body[at] = 0xff;
    let reply = conn.soap(SoapVersion::V12, body).await.unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(code(&reply), "6000");
    assert!(reply.body.contains("UTF-8"), "{}", reply.body);
}

#[tokio::test]
async fn one_connection_carries_many_exchanges() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    for _ in 0..300 {
        let reply = conn
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(code(&reply), "0000");
    }
    assert!(!conn.is_closed());
    let (_, metrics) = app.ops_get("/metrics").await;
    assert!(
        metrics.contains("vd_tls_handshakes_total{kind=\"full\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vd_exchanges_total{operation=\"ServicesOuverts\",code=\"0000\"} 300\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http2_is_served_over_alpn() {
    use http_body_util::BodyExt;
    let app = TestApp::spawn().await;
    let mut config = rustls::ClientConfig::clone(&crate::helpers::tls_for(
        Some("valid"),
        visiodroits_client::Versions::Both,
    ));
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::post(format!(
            "https://localhost:{}/visiodroits",
            app.addr().port()
        ))
        .header("content-type", SoapVersion::V12.content_type())
        .body(Full::new(Bytes::from(services_request(
            SoapVersion::V12,
            &new_id(),
            None,
        ))))
        .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("<vd:code>0000</vd:code>"));
    }
    // HTTP/2 carries no Host header: the WSDL's address comes from `:authority`.
    let authority = format!("localhost:{}", app.addr().port());
    let req = http::Request::get(format!("https://{authority}/visiodroits?wsdl"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let wsdl = String::from_utf8_lossy(&body);
    assert!(
        wsdl.contains(&format!("location=\"https://{authority}/visiodroits\"")),
        "{wsdl}"
    );
}
