//! A PostgreSQL failover ridden through without a restart: a real primary and its streaming
//! standby (`pg_basebackup`, synchronous replication), the primary stopped as a crash would stop
//! it, the standby promoted, under a steady load of rights exchanges and PECs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use visiodroits::config::{Config, Secret};
use visiodroits::soap::SoapVersion;
use visiodroits::startup::Server;
use visiodroits_client::{SoapConnection, Versions};
use visiodroits_devkit::pgcluster::{Cluster, SUPERUSER};

use crate::helpers::{code, first, new_id, ops_request, prepare_database, shared, tls_for, LOGIN};
use crate::rights::Rights;
use crate::tarification::{prescription, tarification, LINES};

const DB: &str = "vd";

/// A primary with a synchronous streaming standby, both private clusters, the database migrated
/// and loaded with the fixtures on the primary.
struct Pair {
    primary: Cluster,
    standby: Cluster,
}

impl Pair {
    async fn start() -> Pair {
        let dir: PathBuf = shared().base.join(format!(
            "ha-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let primary = tokio::task::block_in_place(|| Cluster::start(&dir.join("p"))).unwrap();
        let admin = PgPool::connect(&primary.url(SUPERUSER, "postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {DB}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = Secret::new(primary.url(SUPERUSER, DB));
        let pool = prepare_database(&url, LOGIN).await;
        let fixtures = crate::helpers::repo().join("tests/fixtures/droits.csv");
        visiodroits::cli::import::run(&pool, &fixtures, true, false)
            .await
            .unwrap();
        pool.close().await;
        let standby =
            tokio::task::block_in_place(|| Cluster::standby_of(&primary, &dir.join("s"))).unwrap();
        primary.require_synchronous_standby().unwrap();
        // Until the standby streams as synchronous, commits would wait or not be protected.
        let admin = PgPool::connect(&primary.url(SUPERUSER, "postgres"))
            .await
            .unwrap();
        for _ in 0..200 {
            let sync: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
            )
            .fetch_one(&admin)
            .await
            .unwrap();
            if sync == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        admin.close().await;
        Pair { primary, standby }
    }

    /// The server's `DATABASE_URL` over both sockets, in this order.
    fn url(&self, first: &Cluster, second: &Cluster) -> String {
        format!(
            "postgres://{LOGIN}@localhost/{DB}?host={},{}&target_session_attrs=read-write",
            first.socket_dir().display(),
            second.socket_dir().display()
        )
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.standby.stop_immediately();
        let _ = self.primary.stop_immediately();
    }
}

async fn serve(database_url: String, settings: &[(&str, &str)]) -> Server {
    let mut vars: HashMap<String, String> = shared().config_vars(DB);
    vars.insert("DATABASE_URL".into(), database_url);
    vars.insert("VD_DB_POOL_SIZE".into(), "8".into());
    for (k, v) in settings {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_map(&vars).expect("test configuration");
    Server::start(config).await.expect("server starts")
}

async fn connect(server: &Server) -> SoapConnection {
    SoapConnection::connect(
        server.addr,
        "localhost",
        tls_for(Some("valid"), Versions::Both),
    )
    .await
    .unwrap()
}

/// The server says it is ready on `host`'s cluster, after `failovers` moves.
async fn assert_on(server: &Server, host: &Cluster, failovers: u64) {
    let label = host.socket_dir().display().to_string();
    let (status, ready) = ops_request(server.ops_addr, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready.contains(&format!("database: host {label}")),
        "{ready}"
    );
    let (_, metrics) = ops_request(server.ops_addr, "GET", "/metrics", None).await;
    assert!(
        metrics.contains(&format!("vd_db_failovers_total {failovers}")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("vd_db_host{{host=\"{label}\"}} 1")),
        "{metrics}"
    );
}

fn rights_request() -> String {
    Rights {
        nir: "1790312345678".into(),
        key: "04".into(),
        birth: "19790301".into(),
        ..Rights::default()
    }
    .xml(SoapVersion::V12, &new_id())
}

/// One answer of the load: which request (PEC index, or `None` for a rights exchange), its code,
/// its accreditation number, and when it came.
#[derive(Debug, Clone)]
struct Answer {
    pec: Option<usize>,
    code: String,
    accreditation: Option<String>,
    at: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_under_load_loses_and_doubles_no_pec_and_the_chain_holds() {
    // The default acquire timeout (5 s) outlasts the switch: exchanges wait for the new primary,
    // and those cut short by the crash run once more there.
    let failures = failover_under_load(&[]).await;
    assert_eq!(
        failures, 0,
        "a failover within the acquire timeout costs no exchange"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exchanges_failed_during_a_failover_get_their_answer_when_sent_again() {
    // An acquire timeout shorter than the switch: exchanges meanwhile fail with 0999, and their
    // retries with the same id_requete must come out exactly once.
    let failures = failover_under_load(&[("VD_DB_ACQUIRE_TIMEOUT_MS", "300")]).await;
    // (The not-ready check during the switch lasts past the acquire timeout.)
    assert!(failures > 0, "the switch outlasted the acquire timeout");
}

/// The load, the primary stopped and the standby promoted under it, then every check; the
/// number of 0999 answers.
async fn failover_under_load(settings: &[(&str, &str)]) -> usize {
    let short = !settings.is_empty();
    let pair = Pair::start().await;
    let server = serve(pair.url(&pair.primary, &pair.standby), settings).await;
    // A second instance on the same pair: its sealer competes for the chain.
    let other = serve(pair.url(&pair.primary, &pair.standby), settings).await;
    let mut conn = connect(&server).await;
    let reply = conn.soap(SoapVersion::V12, rights_request()).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let dossier = first(&reply.body, "numero_dossier").unwrap();
    assert_on(&server, &pair.primary, 0).await;

    // The load: four clients, each a rights exchange then a PEC of its own prescription, until
    // every PEC was sent once.
    let pecs: Vec<(String, String)> = (1..=240u32)
        .map(|p| {
            let id = new_id();
            let body = tarification(&id, &dossier, "PEC", &prescription(p, &LINES[..1], ""));
            (id, body)
        })
        .collect();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut conn = connect(&server).await;
        let (pecs, answers, next) = (pecs.clone(), answers.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= pecs.len() {
                    return;
                }
                for pec in [None, Some(i)] {
                    let body = match pec {
                        None => rights_request(),
                        Some(i) => pecs[i].1.clone(),
                    };
                    let reply = conn.soap(SoapVersion::V12, body).await.unwrap();
                    let code = code(&reply);
                    assert!(
                        code == "0000" || code == "0999",
                        "only successes and technical failures: {}",
                        reply.body
                    );
                    answers.lock().unwrap().push(Answer {
                        pec,
                        accreditation: first(&reply.body, "numero_accreditation"),
                        code,
                        at: Instant::now(),
                    });
                }
            }
        }));
    }
    // The primary fails in the middle of the load; the standby is promoted a little later.
    while answers.lock().unwrap().len() < 120 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = Instant::now();
    tokio::task::block_in_place(|| pair.primary.stop_immediately()).unwrap();
    if short {
        // Not ready while no host takes writes (the check waits for the acquire timeout).
        let (status, ready) = ops_request(server.ops_addr, "GET", "/readyz", None).await;
        assert_eq!(status, 503, "{ready}");
        assert!(
            ready.contains("database: no host gives a writable session among"),
            "{ready}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| pair.standby.promote()).unwrap();
    let promoted = Instant::now();
    for c in clients {
        c.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();

    let first_ok = answers
        .iter()
        .filter(|a| a.code == "0000" && a.at > promoted)
        .map(|a| a.at - promoted)
        .min()
        .expect("answers after the promotion");
    let failures = answers.iter().filter(|a| a.code == "0999").count();
    let during = answers
        .iter()
        .filter(|a| a.code == "0999" && a.at > stopped)
        .count();
    eprintln!(
        "failover: primary stopped, promoted {:?} later; first 0000 {first_ok:?} after the \
         promotion; 0999 answers: {failures} ({during} after the stop) of {}",
        promoted - stopped,
        answers.len()
    );
    assert!(first_ok < Duration::from_secs(10), "{first_ok:?}");

    assert_on(&server, &pair.standby, 1).await;

    // Every PEC answered 0000 is on the new primary, once, with its audit row.
    let db = PgPool::connect(&pair.standby.url(SUPERUSER, DB))
        .await
        .unwrap();
    for a in answers
        .iter()
        .filter(|a| a.pec.is_some() && a.code == "0000")
    {
        let acc = a.accreditation.as_ref().expect("a PEC's accreditation");
        let (pec, audited) = crate::helpers::stored_pec(&db, acc).await;
        assert_eq!(pec, 1, "{acc}");
        assert!(audited >= 1, "{acc}");
    }
    // Each PEC sent again with its id_requete: its stored answer, or (after a 0999) its first
    // commitment; one PEC per prescription in the end.
    let mut conn = connect(&server).await;
    for (i, (_, body)) in pecs.iter().enumerate() {
        let reply = conn.soap(SoapVersion::V12, body.clone()).await.unwrap();
        assert_eq!(code(&reply), "0000", "{}", reply.body);
        let answered = answers
            .iter()
            .find(|a| a.pec == Some(i) && a.code == "0000");
        if let Some(a) = answered {
            assert_eq!(
                first(&reply.body, "numero_accreditation"),
                a.accreditation,
                "PEC {i}"
            );
        }
    }
    let (pecs_stored, prescriptions, numbers): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT id_prescription), count(DISTINCT numero_accreditation)
           FROM dispensation.tarification WHERE mode = 'PEC'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((pecs_stored, prescriptions, numbers), (240, 240, 240));

    // The chain: rows of the old primary and of the new one, sealed in order, verified.
    let mut verified = None;
    for _ in 0..100 {
        let v = visiodroits::audit::chain::verify(&db).await.unwrap();
        if v.unsealed == 0 {
            verified = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.journal WHERE motif = 'database_lost_retried'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    eprintln!("failover: {retried} exchanges ran a second time after losing the database");
    let v = verified.expect("every audit row sealed within 10 s");
    assert_eq!(v.broken, None);
    assert!(v.sealed as usize > answers.len(), "{v:?}");
    // The admin command, given both hosts (the first one down): it finds the one that answers.
    let url = format!(
        "postgres://{SUPERUSER}@localhost/{DB}?host={},{}",
        pair.primary.socket_dir().display(),
        pair.standby.socket_dir().display()
    );
    let out = crate::helpers::visiodroits(&["audit", "verify"], &[("DATABASE_URL", &url)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, ready) = ops_request(other.ops_addr, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "the second instance followed too: {ready}");
    other.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_first_host_is_a_standby_uses_the_primary() {
    let pair = Pair::start().await;
    let server = serve(pair.url(&pair.standby, &pair.primary), &[]).await;
    let mut conn = connect(&server).await;
    let reply = conn.soap(SoapVersion::V12, rights_request()).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_on(&server, &pair.primary, 0).await;

    // A read-only admin command may prefer the standby; one that writes asks for a primary.
    let url = |attrs: &str| {
        format!(
            "postgres://{SUPERUSER}@localhost/{DB}?host={},{}&target_session_attrs={attrs}",
            pair.standby.socket_dir().display(),
            pair.primary.socket_dir().display()
        )
    };
    let out = crate::helpers::visiodroits(
        &["audit", "verify"],
        &[("DATABASE_URL", &url("prefer-standby"))],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crate::helpers::visiodroits(&["migrate"], &[("DATABASE_URL", &url("primary"))]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crate::helpers::visiodroits(&["migrate"], &[("DATABASE_URL", &url("standby"))]);
    assert!(!out.status.success(), "migrations cannot run on a standby");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_host_turned_read_only_are_left_for_the_writable_one() {
    let pair = Pair::start().await;
    let server = serve(pair.url(&pair.primary, &pair.standby), &[]).await;
    // Several connections open and idle on the primary.
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(connect(&server).await);
    }
    let round = |conns: &mut Vec<SoapConnection>| {
        let mut tasks = Vec::new();
        for mut conn in conns.drain(..) {
            tasks.push(tokio::spawn(async move {
                let reply = conn.soap(SoapVersion::V12, rights_request()).await.unwrap();
                (conn, code(&reply), reply.body)
            }));
        }
        tasks
    };
    for t in round(&mut conns) {
        let (conn, code, body) = t.await.unwrap();
        assert_eq!(code, "0000", "{body}");
        conns.push(conn);
    }
    // The primary stops taking writes, and the standby becomes a primary of its own.
    let admin = PgPool::connect(&pair.primary.url(SUPERUSER, "postgres"))
        .await
        .unwrap();
    for sql in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "ALTER SYSTEM SET synchronous_standby_names = ''",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::query(sql).execute(&admin).await.unwrap();
    }
    admin.close().await;
    tokio::task::block_in_place(|| pair.standby.promote()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each exchange's write is refused (25006) on its old connection; it runs again on the host
    // that takes writes, and the other old connections are not used again.
    for t in round(&mut conns) {
        let (conn, code, body) = t.await.unwrap();
        assert_eq!(code, "0000", "{body}");
        conns.push(conn);
    }
    assert_on(&server, &pair.standby, 1).await;
    let db = PgPool::connect(&pair.standby.url(SUPERUSER, DB))
        .await
        .unwrap();
    let dossiers: i64 = sqlx::query_scalar("SELECT count(*) FROM dispensation.dossier")
        .fetch_one(&db)
        .await
        .unwrap();
    // Both rounds' dossiers: the first replicated, the second written there.
    assert_eq!(dossiers, 8);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_that_no_longer_answers_is_left_for_a_fresh_one() {
    // A host cut off without a reset (powered off, a partition) leaves connections that never
    // answer: played here by stopping their backends (SIGSTOP), the sockets left open.
    let app = crate::helpers::TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn.soap(SoapVersion::V12, rights_request()).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
            AND application_name = 'visiodroits' AND state = 'idle'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(!pids.is_empty(), "the server keeps an idle connection");
    let signal = |sig: &str| {
        for pid in &pids {
            let status = std::process::Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    };
    signal("-STOP");
    let started = Instant::now();
    let reply = conn.soap(SoapVersion::V12, rights_request()).await;
    let took = started.elapsed();
    signal("-CONT");
    let reply = reply.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    // Within the acquire timeout (5 s): the silent connection was given up on, not waited for.
    assert!(took < Duration::from_secs(5), "{took:?}");
}
