//! Health, readiness and metrics on the operations listener; graceful shutdown.

use visiodroits::soap::SoapVersion;

use crate::helpers::{code, new_id, services_request, shared, TestApp};

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
        "vd_crl_entries{issuer=\"C=FR,O=ASIP-SANTE DEV,OU=IGC-SANTE DEV,CN=AC IGC-SANTE DEV PERSONNES\",key=\"",
        "vd_db_pool_connections{pool=\"",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
}

#[tokio::test]
async fn each_exchange_logs_one_line_in_its_span() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let id = new_id();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &id, None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    let logs = crate::helpers::captured_logs();
    // Everything the exchange logs (its queries too) is in its span; one line closes it.
    let in_span: Vec<_> = logs.lines().filter(|l| l.contains(&id)).collect();
    assert!(in_span.iter().all(|l| l.contains(&format!(
        "exchange{{id_requete=\"{id}\" operation=\"ServicesOuverts\" instance=\"test\""
    ))));
    let lines: Vec<_> = in_span
        .iter()
        .filter(|l| l.ends_with(": exchange"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for the exchange: {in_span:?}");
    let line = lines[0];
    for field in [
        "code=\"0000\" duration_ms=".to_string(),
        format!("structure=\"{}\"}}", visiodroits_devkit::pki::DEV_FINESS),
    ] {
        assert!(line.contains(&field), "{field} in {line}");
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

#[tokio::test]
async fn crl_status_names_each_issuer_and_fails_when_one_would_be_refused() {
    let s = crate::helpers::shared();
    let config = visiodroits::config::Config::from_map(&s.config_vars("unused")).unwrap();
    let report = visiodroits::cli::crl::status(&config).unwrap();
    let fresh = |name: &str| {
        report
            .lines()
            .filter(|l| l.contains(&format!("CN={name} [key ")) && l.ends_with("]: fresh"))
            .count()
    };
    assert_eq!(fresh("AC RACINE IGC-SANTE DEV"), 1, "{report}");
    // The intermediate and its re-keyed successor: one name, two keys, each its own CRL.
    assert_eq!(fresh("AC IGC-SANTE DEV PERSONNES"), 2, "{report}");
    assert!(report.contains("base (all certificates)"), "{report}");
    assert!(report.contains("entries 1"), "{report}");

    let dir = s.base.join(format!("crl-status-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(s.pki_path("crl/root.crl.pem"), dir.join("root.crl.pem")).unwrap();
    crate::helpers::copy_rekeyed_crl(&dir);
    let mut vars = s.config_vars("unused");
    vars.insert("VD_CRL_DIR".into(), dir.display().to_string());
    let err = visiodroits::cli::crl::status(&visiodroits::config::Config::from_map(&vars).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.lines()
            .any(|l| l.contains("CN=AC IGC-SANTE DEV PERSONNES [key ")
                && l.ends_with("]: MISSING: certificates refused")),
        "{err}"
    );
}

/// A CRL directory of its own holding copies of the dev PKI's two CRLs.
fn dev_crl_dir(s: &crate::helpers::Shared, label: &str) -> std::path::PathBuf {
    let dir = s.base.join(format!("crl-{label}-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "root.crl.pem",
        "intermediate.crl.pem",
        "intermediate-rekeyed.crl.pem",
    ] {
        std::fs::copy(s.pki_path(&format!("crl/{name}")), dir.join(name)).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_crl_being_written_under_a_hidden_name_is_not_read() {
    let s = crate::helpers::shared();
    let dir = dev_crl_dir(s, "hidden");
    // What a reload would find while `pki big-crl` or the CRL fetcher writes: half a PEM file.
    let whole = std::fs::read(s.pki_path("crl/intermediate.crl.pem")).unwrap();
    std::fs::write(
        dir.join(".intermediate.crl.pem.tmp"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    let mut vars = s.config_vars("unused");
    vars.insert("VD_CRL_DIR".into(), dir.display().to_string());
    let config = visiodroits::config::Config::from_map(&vars).unwrap();
    let report = visiodroits::cli::crl::status(&config).unwrap();
    assert_eq!(
        report
            .lines()
            .filter(|l| l.contains("PERSONNES [key ") && l.ends_with(": fresh"))
            .count(),
        2,
        "{report}"
    );
    assert!(!report.contains("refused"), "{report}");

    // The writer's own path: the file lands whole under its name and nothing hidden is left.
    std::fs::remove_file(dir.join(".intermediate.crl.pem.tmp")).unwrap();
    std::fs::write(dir.join("intermediate.crl.pem"), b"previous").unwrap();
    visiodroits::tls::crl::write_atomically(&dir.join("intermediate.crl.pem"), &whole).unwrap();
    assert_eq!(
        std::fs::read(dir.join("intermediate.crl.pem")).unwrap(),
        whole
    );
    let hidden: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[tokio::test]
async fn crl_refresh_and_file_changes_reload_the_running_server() {
    let s = crate::helpers::shared();
    let dir = s.base.join(format!("crl-refresh-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(s.pki_path("crl/root.crl.pem"), dir.join("root.crl.pem")).unwrap();
    crate::helpers::copy_rekeyed_crl(&dir);
    let crl_dir = dir.display().to_string();
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), crl_dir);
    })
    .await;
    // No CRL for the intermediate: its certificates are refused.
    assert!(app.connect_and_ask().await.is_err());
    // The CRL arrives and `crl refresh` asks the server to reload.
    std::fs::copy(
        s.pki_path("crl/intermediate.crl.pem"),
        dir.join("intermediate.crl.pem"),
    )
    .unwrap();
    let mut vars = s.config_vars("unused");
    vars.insert("VD_METRICS_LISTEN".into(), app.server.ops_addr.to_string());
    vars.insert("VD_CRL_DIR".into(), dir.display().to_string());
    let out =
        visiodroits::cli::crl::refresh(&visiodroits::config::Config::from_map(&vars).unwrap())
            .await
            .unwrap();
    assert!(out.contains("reloaded: 3 CRL(s)"), "{out}");
    assert_eq!(app.connect_and_ask().await.unwrap(), "0000");
    // The CRL file goes away: the watcher notices within seconds, without a signal.
    std::fs::remove_file(dir.join("intermediate.crl.pem")).unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if app.connect_and_ask().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        refused,
        "the removed CRL was noticed: {}",
        crate::helpers::captured_logs()
            .lines()
            .filter(|l| l.contains("reload"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn purge_removes_old_pairings_and_tarification_data_and_is_audited() {
    let app = TestApp::spawn().await;
    let d = crate::tarification::dossier(
        &app,
        "valid",
        &crate::tarification::valid_ps(),
        visiodroits_devkit::pki::DEV_FINESS,
    )
    .await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            crate::tarification::tarification(
                &new_id(),
                &d,
                "PEC",
                &crate::tarification::prescription(1, crate::tarification::LINES, ""),
            ),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    let url = visiodroits::config::Secret::new(crate::helpers::shared().admin_url(&app.db_name));
    // Nothing is old enough yet.
    let report = visiodroits::cli::purge::run(&url, 90, 1095, true)
        .await
        .unwrap();
    assert!(
        report.contains("appariement 0, tarification 0, dossier 0"),
        "{report}"
    );
    // The dossier expired 100 days ago: its pairing goes, its tarification stays.
    sqlx::query("UPDATE dispensation.dossier SET expiration = now() - interval '100 days'")
        .execute(&app.db)
        .await
        .unwrap();
    let report = visiodroits::cli::purge::run(&url, 90, 1095, true)
        .await
        .unwrap();
    assert!(
        report.contains("would delete: appariement 1, tarification 0"),
        "{report}"
    );
    let report = visiodroits::cli::purge::run(&url, 90, 1095, false)
        .await
        .unwrap();
    assert!(
        report.contains("deleted: appariement 1, tarification 0, dossier 0"),
        "{report}"
    );
    // Years later, the tarification data and the dossier go too; the audit stays.
    sqlx::query("UPDATE dispensation.dossier SET expiration = now() - interval '1200 days'")
        .execute(&app.db)
        .await
        .unwrap();
    let report = visiodroits::cli::purge::run(&url, 90, 1095, false)
        .await
        .unwrap();
    assert!(
        report.contains("deleted: appariement 0, tarification 1, dossier 1"),
        "{report}"
    );
    let (pairings, tarifications, lines): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM identite.appariement), (SELECT count(*) FROM dispensation.tarification),
                (SELECT count(*) FROM dispensation.ligne)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((pairings, tarifications, lines), (0, 0, 0));
    let purges: Vec<String> =
        sqlx::query_scalar("SELECT motif FROM audit.journal WHERE operation = 'purge' ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        purges.len(),
        2,
        "each real purge is audited, dry runs are not"
    );
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.journal WHERE operation <> 'purge'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(kept >= 2, "audit rows are kept");
}

#[tokio::test]
async fn a_refused_or_older_crl_keeps_the_previous_one_and_is_audited() {
    let s = crate::helpers::shared();
    let dir = dev_crl_dir(s, "keep");
    let crl_dir = dir.display().to_string();
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), crl_dir);
    })
    .await;
    let read = |rel: &str| std::fs::read_to_string(s.pki_path(rel)).unwrap();
    let now = time::OffsetDateTime::now_utc();
    // The intermediate's CRL replaced by one signed with another key: refused, previous kept.
    let forged = visiodroits_devkit::pki::issue_crl(
        &read("ca/intermediate.pem"),
        &read("ca/unknown-root.key"),
        &[],
        now,
        now + time::Duration::days(5),
        9,
    )
    .unwrap();
    std::fs::write(dir.join("intermediate.crl.pem"), forged).unwrap();
    app.server.reload_crls().await.unwrap();
    assert_eq!(
        app.connect_and_ask().await.unwrap(),
        "0000",
        "still served with the previous CRL"
    );
    assert!(
        app.connect_with(Some("revoked"), visiodroits_client::Versions::Tls12)
            .await
            .is_err(),
        "the previous CRL still revokes"
    );
    // An older CRL (replayed download): previous kept.
    let older = visiodroits_devkit::pki::issue_crl(
        &read("ca/intermediate.pem"),
        &read("ca/intermediate.key"),
        &[],
        now - time::Duration::days(3),
        now + time::Duration::days(5),
        0,
    )
    .unwrap();
    std::fs::write(dir.join("intermediate.crl.pem"), older).unwrap();
    app.server.reload_crls().await.unwrap();
    assert!(
        app.connect_with(Some("revoked"), visiodroits_client::Versions::Tls12)
            .await
            .is_err(),
        "the newer CRL stays in force"
    );
    let mut motifs: Vec<String> = Vec::new();
    for _ in 0..100 {
        motifs = sqlx::query_scalar(
            "SELECT motif FROM audit.journal WHERE operation = 'crl' ORDER BY id",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        if motifs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(motifs.len(), 2, "{motifs:?}");
    assert!(
        motifs[0].contains("signature does not verify"),
        "{motifs:?}"
    );
    assert!(
        motifs[1].contains("older than the CRL in force"),
        "{motifs:?}"
    );
}

#[tokio::test]
async fn a_new_server_certificate_is_used_without_restart_and_open_connections_continue() {
    let s = crate::helpers::shared();
    let dir = s.base.join(format!("server-cert-{}", new_id()));
    std::fs::create_dir_all(dir.join("ca")).unwrap();
    for f in ["root.pem", "root.key"] {
        std::fs::copy(s.pki_path(&format!("ca/{f}")), dir.join("ca").join(f)).unwrap();
    }
    visiodroits_devkit::pki::renew_server(&dir).unwrap();
    let (cert, key) = (dir.join("server/server.pem"), dir.join("server/server.key"));
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_TLS_CERT".into(), c);
        v.insert("VD_TLS_KEY".into(), k);
    })
    .await;
    let mut old = app.connect(Some("valid")).await.unwrap();
    let first_cert = old.server_certificate.clone().unwrap();
    visiodroits_devkit::pki::renew_server(&dir).unwrap();
    // The file watcher notices the new files within seconds.
    let mut renewed = None;
    for _ in 0..50 {
        let mut config = rustls::ClientConfig::clone(&crate::helpers::tls_for(
            Some("valid"),
            visiodroits_client::Versions::Both,
        ));
        config.resumption = rustls::client::Resumption::disabled();
        let c = visiodroits_client::SoapConnection::connect(
            app.addr(),
            "localhost",
            std::sync::Arc::new(config),
        )
        .await
        .unwrap();
        if c.server_certificate.as_ref() != Some(&first_cert) {
            renewed = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut renewed = renewed.expect("new handshakes use the new certificate");
    let reply = renewed
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    // The connection opened before the rotation goes on.
    let reply = old
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
}

/// A tiny HTTP server answering every GET with the current `body`.
async fn crl_server(body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let body = body.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn crls_are_fetched_over_http_verified_and_a_bad_download_keeps_the_previous_one() {
    let s = crate::helpers::shared();
    let dir = s.base.join(format!("crl-fetch-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(s.pki_path("crl/root.crl.pem"), dir.join("root.crl.pem")).unwrap();
    crate::helpers::copy_rekeyed_crl(&dir);
    let served = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::read(s.pki_path("crl/intermediate.crl.pem")).unwrap(),
    ));
    let http = crl_server(served.clone()).await;
    let crl_dir = dir.display().to_string();
    let url = format!("http://{http}/intermediate.crl");
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_CRL_DIR".into(), crl_dir.clone());
        v.insert("VD_CRL_FETCH".into(), "true".into());
        v.insert("VD_CRL_URLS".into(), url.clone());
    })
    .await;
    assert!(
        app.connect_and_ask().await.is_err(),
        "no CRL for the intermediate yet"
    );
    let mut vars = s.config_vars("unused");
    vars.insert("VD_METRICS_LISTEN".into(), app.server.ops_addr.to_string());
    vars.insert("VD_CRL_DIR".into(), crl_dir);
    let config = visiodroits::config::Config::from_map(&vars).unwrap();
    let out = visiodroits::cli::crl::refresh(&config).await.unwrap();
    assert!(out.contains("fetched: 1 updated, 0 refused"), "{out}");
    assert_eq!(app.connect_and_ask().await.unwrap(), "0000");

    // A newer CRL signed with another key: refused, the fetched one stays.
    let read = |rel: &str| std::fs::read_to_string(s.pki_path(rel)).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let forged = visiodroits_devkit::pki::issue_crl(
        &read("ca/intermediate.pem"),
        &read("ca/unknown-root.key"),
        &[],
        now,
        now + time::Duration::days(5),
        9,
    )
    .unwrap();
    *served.lock().unwrap() = forged.into_bytes();
    let out = visiodroits::cli::crl::refresh(&config).await.unwrap();
    assert!(out.contains("fetched: 0 updated, 1 refused"), "{out}");
    assert_eq!(
        app.connect_and_ask().await.unwrap(),
        "0000",
        "the CRL in force is kept"
    );
    // The same CRL again: not newer, refused.
    *served.lock().unwrap() = std::fs::read(s.pki_path("crl/intermediate.crl.pem")).unwrap();
    let out = visiodroits::cli::crl::refresh(&config).await.unwrap();
    assert!(out.contains("fetched: 0 updated, 1 refused"), "{out}");

    let (_, metrics) = app.ops_get("/metrics").await;
    assert!(
        metrics.contains("vd_crl_fetch_total{result=\"updated\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vd_crl_fetch_total{result=\"refused\"} 2"),
        "{metrics}"
    );
    let mut motifs: Vec<String> = Vec::new();
    for _ in 0..100 {
        motifs = sqlx::query_scalar(
            "SELECT motif FROM audit.journal WHERE operation = 'crl' ORDER BY id",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        if motifs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        motifs
            .iter()
            .any(|m| m.contains("signature does not verify")),
        "{motifs:?}"
    );
    assert!(motifs.iter().any(|m| m.contains("not newer")), "{motifs:?}");
}

/// This machine's address on its network (not loopback): the local end of a route outside.
fn network_address() -> std::net::IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // No packet is sent: connecting a UDP socket only picks the route and its source address.
    probe
        .connect("192.0.2.1:9")
        .expect("a network route (the test needs an address other than loopback)");
    let ip = probe.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no address other than loopback: {ip}");
    ip
}

#[tokio::test]
async fn from_the_network_the_ops_listener_reads_for_anyone_and_acts_only_with_its_token() {
    let token = "0123456789abcdef0123456789abcdef-ops";
    let file = shared().base.join(format!("ops-token-{}", new_id()));
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let f = file.clone();
    let app = TestApp::spawn_with(move |v| {
        v.insert("VD_METRICS_LISTEN".into(), "0.0.0.0:0".into());
        v.insert("VD_OPS_TOKEN_FILE".into(), f.display().to_string());
    })
    .await;
    let remote = std::net::SocketAddr::new(network_address(), app.server.ops_addr.port());
    let local = std::net::SocketAddr::new([127, 0, 0, 1].into(), app.server.ops_addr.port());

    assert_eq!(
        crate::helpers::ops_request(remote, "GET", "/healthz", None)
            .await
            .0,
        200
    );
    assert_eq!(
        crate::helpers::ops_request(remote, "GET", "/metrics", None)
            .await
            .0,
        200
    );
    for bad in [
        None,
        Some("0123456789abcdef0123456789abcdef-opz"),
        Some("short"),
    ] {
        let (status, out) = crate::helpers::ops_request(remote, "POST", "/crl/refresh", bad).await;
        assert_eq!(status, 403, "{bad:?}: {out}");
        assert!(out.contains("VD_OPS_TOKEN_FILE"), "{out}");
    }
    let (status, out) =
        crate::helpers::ops_request(remote, "POST", "/crl/refresh", Some(token)).await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = crate::helpers::ops_request(local, "POST", "/crl/refresh", None).await;
    assert_eq!(status, 200, "{out}");
    assert!(
        !crate::helpers::captured_logs().contains(token),
        "the token is never logged"
    );
    let _ = std::fs::remove_file(file);
}
