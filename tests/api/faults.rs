//! Database faults (spec/operations.md): while PostgreSQL is down, requests get 0999 in bounded
//! time and /readyz says so; when it returns, the server recovers by itself.

use std::time::{Duration, Instant};

use visiodroits::config::{Config, Secret};
use visiodroits::pgcluster::{Cluster, SUPERUSER};
use visiodroits::soap::SoapVersion;
use visiodroits::startup::Server;

use crate::helpers::{code, new_id, services_request, shared, tls_for};

#[tokio::test]
async fn the_server_survives_a_database_restart() {
    let s = shared();
    let base = s.base.join("pgf");
    let b = base.clone();
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&b))
        .await
        .unwrap()
        .unwrap();
    cluster
        .remove_when_process_ends(std::process::id(), &base)
        .unwrap();
    let admin_url = Secret::new(cluster.url(SUPERUSER, "postgres"));
    visiodroits::cli::migrate::run(&admin_url, Some("vd_fault_app"))
        .await
        .unwrap();
    let admin = visiodroits::cli::migrate::admin_pool(&admin_url)
        .await
        .unwrap();
    let mut tx = admin.begin().await.unwrap();
    for a in visiodroits::cli::demo::demo_amcs() {
        visiodroits::store::amc::upsert(&mut tx, &a).await.unwrap();
    }
    tx.commit().await.unwrap();
    admin.close().await;

    let mut vars = s.config_vars("unused");
    vars.insert(
        "DATABASE_URL".into(),
        cluster.url("vd_fault_app", "postgres"),
    );
    vars.insert("VD_DB_ACQUIRE_TIMEOUT_MS".into(), "1000".into());
    let server = Server::start(Config::from_map(&vars).unwrap())
        .await
        .unwrap();
    let ask = || async {
        let mut conn = visiodroits::client::SoapConnection::connect(
            server.addr,
            "localhost",
            tls_for(Some("valid"), visiodroits::client::Versions::Both),
        )
        .await
        .unwrap();
        let reply = conn
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        (reply.status.as_u16(), code(&reply))
    };
    let ready = || async {
        let mut stream = tokio::net::TcpStream::connect(server.ops_addr)
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    };
    assert_eq!(ask().await, (200, "0000".into()));

    let c = Cluster::start(&base).unwrap();
    tokio::task::spawn_blocking(move || c.stop())
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    assert_eq!(ask().await, (500, "0999".into()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    let r = ready().await;
    assert!(
        r.starts_with("HTTP/1.1 503") && r.contains("database: unreachable"),
        "{r}"
    );

    let b = base.clone();
    tokio::task::spawn_blocking(move || Cluster::start(&b))
        .await
        .unwrap()
        .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if ask().await == (200, "0000".into()) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the server recovered by itself");
    assert!(ready().await.starts_with("HTTP/1.1 200"));
    server.shutdown().await.unwrap();
    cluster.stop().unwrap();
}
