//! Health, readiness and metrics on the operations listener; graceful shutdown.

use visiodroits::soap::SoapVersion;

use crate::helpers::{code, new_id, services_request, TestApp};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(app.ops_get("/healthz").await.0, 200);
    let (status, body) = app.ops_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    let (_, metrics) = app.ops_get("/metrics").await;
    for needle in [
        "vd_exchanges_total{operation=\"ServicesOuverts\",code=\"0000\"} 1",
        "vd_exchange_seconds_count{operation=\"ServicesOuverts\"} 1",
        "vd_connections_open 1",
        "vd_crl_entries{issuer=\"C=FR,O=ASIP-SANTE DEV,OU=IGC-SANTE DEV,CN=AC IGC-SANTE DEV PERSONNES\"} 1",
        "vd_db_pool_connections{state=\"open\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
}

#[tokio::test]
async fn readiness_reports_an_unreachable_database() {
    let app = TestApp::spawn_with(|v| {
        v.insert(
            "DATABASE_URL".into(),
            "postgres://nobody@localhost/none?host=/nonexistent-socket-dir".into(),
        );
    })
    .await;
    let (status, body) = app.ops_get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("database: unreachable"), "{body}");
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_and_returns() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    let addr = app.addr();
    tokio::time::timeout(std::time::Duration::from_secs(10), app.server.shutdown())
        .await
        .expect("drains well within its deadline")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
