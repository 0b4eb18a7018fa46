//! TLS to PostgreSQL (spec/operations.md): the server and the admin commands reach a database that
//! accepts TLS only, authenticated with `sslmode=verify-full`, with a client certificate when the
//! database asks for one; a wrong CA, no TLS or no client certificate is refused.

use visiodroits::config::{Config, Secret};
use visiodroits::startup::Server;
use visiodroits_devkit::pgcluster::{Cluster, SUPERUSER};

use crate::helpers::{code, services_on, shared, tls_for};

/// A TCP URL to `cluster` with TLS parameters: `sslmode`, the CA, and a client certificate.
fn url(cluster: &Cluster, user: &str, mode: &str, ca: &str, client: Option<&str>) -> String {
    let s = shared();
    let mut url = format!(
        "{}?sslmode={mode}&sslrootcert={}",
        cluster.tcp_url(user, "postgres").unwrap(),
        s.pki_path(ca).display()
    );
    if let Some(name) = client {
        url.push_str(&format!(
            "&sslcert={}&sslkey={}",
            s.pki_path(&format!("clients/{name}.pem")).display(),
            s.pki_path(&format!("clients/{name}.key")).display()
        ));
    }
    url
}

#[tokio::test]
async fn the_server_and_the_admin_commands_reach_a_tls_only_database() {
    let s = shared();
    let base = s.base.join("pgtls");
    let b = base.clone();
    let mut cluster = tokio::task::spawn_blocking(move || Cluster::start(&b))
        .await
        .unwrap()
        .unwrap();
    cluster
        .remove_when_process_ends(std::process::id(), &base)
        .unwrap();
    // The dev server certificate (localhost, 127.0.0.1, under the dev root) serves PostgreSQL
    // too; client certificates must chain to the dev CAs.
    cluster
        .serve_tls(
            &s.pki_path("server/server.pem"),
            &s.pki_path("server/server.key"),
            Some(&s.pki_path("trust.pem")),
        )
        .unwrap();

    // The admin commands: migrate and provision over TLS, verified, with a client certificate.
    let admin = Secret::new(url(
        &cluster,
        SUPERUSER,
        "verify-full",
        "ca/root.pem",
        Some("valid"),
    ));
    let pool = crate::helpers::prepare_database(&admin, "vd_tls_app").await;

    // What is refused, each with an error that says why.
    for (what, refused, words) in [
        (
            "no TLS",
            url(&cluster, SUPERUSER, "disable", "ca/root.pem", Some("valid")),
            "no encryption",
        ),
        (
            "a CA that did not issue the database's certificate",
            url(
                &cluster,
                SUPERUSER,
                "verify-full",
                "ca/unknown-root.pem",
                Some("valid"),
            ),
            "certificate",
        ),
        (
            "no client certificate",
            url(&cluster, SUPERUSER, "verify-full", "ca/root.pem", None),
            "certificate",
        ),
    ] {
        let err = visiodroits::cli::migrate::admin_pool(&Secret::new(refused))
            .await
            .expect_err(what);
        let text = format!("{err:#}");
        assert!(text.contains(words), "{what}: {text}");
    }

    let logs = crate::helpers::captured_logs();
    assert!(
        logs.contains("the database server is not authenticated"),
        "sslmode=disable over TCP is said in the log"
    );

    // The server: every exchange over its TLS connections.
    let mut vars = s.config_vars("unused");
    vars.insert(
        "DATABASE_URL".into(),
        url(
            &cluster,
            "vd_tls_app",
            "verify-full",
            "ca/root.pem",
            Some("valid"),
        ),
    );
    let server = Server::start(Config::from_map(&vars).unwrap())
        .await
        .unwrap();
    let mut conn = visiodroits_client::SoapConnection::connect(
        server.addr,
        "localhost",
        tls_for(Some("valid"), visiodroits_client::Versions::Both),
    )
    .await
    .unwrap();
    let reply = services_on(&mut conn).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let (connections, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl)
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
          WHERE a.usename LIKE 'vd\\_tls\\_app\\_%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(connections >= 1);
    assert_eq!(encrypted, connections);
    server.shutdown().await.unwrap();
    pool.close().await;
    let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
}
