//! Database faults (spec/operations.md): while PostgreSQL is down, requests get 0999 in bounded
//! time and /readyz says so; when it returns, the server recovers by itself.

use std::time::{Duration, Instant};

use visiodroits::config::{Config, Secret};
use visiodroits::soap::SoapVersion;
use visiodroits::startup::Server;
use visiodroits_devkit::pgcluster::{Cluster, SUPERUSER};

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
    crate::helpers::prepare_database(&admin_url, "vd_fault_app")
        .await
        .close()
        .await;

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
        let mut conn = visiodroits_client::SoapConnection::connect(
            server.addr,
            "localhost",
            tls_for(Some("valid"), visiodroits_client::Versions::Both),
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

/// The pool gives a connection back as soon as its transaction ends: an exchange refused after its
/// transaction began leaves it rolled back (no transaction left open, the connection kept), and a
/// connection killed while idle is replaced without an exchange failing.
#[tokio::test]
async fn a_refused_exchange_keeps_its_connection_and_a_killed_one_is_replaced() {
    let app = crate::helpers::TestApp::spawn_with(|v| {
        v.insert("VD_DB_POOL_SIZE".into(), "1".into());
    })
    .await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    // The rights pool's connections (with per-pool logins, the other pools have their own).
    let login = match crate::helpers::shared().per_pool_logins() {
        true => visiodroits::store::Role::Rights.login(crate::helpers::LOGIN),
        false => String::new(),
    };
    let backend = || async {
        sqlx::query_as::<_, (i32, String)>(
            "SELECT pid, state FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'visiodroits'
                AND ($1 = '' OR usename = $1)",
        )
        .bind(&login)
        .fetch_all(&app.db)
        .await
        .unwrap()
    };
    // Settled: the one connection idle, outside any transaction.
    let settled = || async {
        for _ in 0..100 {
            let rows = backend().await;
            if rows.len() == 1 && rows[0].1 == "idle" {
                return rows[0].0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the pool's connection did not settle: {:?}",
            backend().await
        );
    };

    assert_eq!(ask(&mut conn, None).await, "0000");
    let first = settled().await;
    // Unknown AMC: refused after its transaction began.
    assert_ne!(ask(&mut conn, Some("99999999")).await, "0000");
    assert_eq!(
        settled().await,
        first,
        "the refused exchange's connection is kept"
    );
    assert_eq!(ask(&mut conn, None).await, "0000");
    assert_eq!(settled().await, first);

    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(first)
        .execute(&app.db)
        .await
        .unwrap();
    for _ in 0..100 {
        if backend().await.iter().all(|(pid, _)| *pid != first) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ask(&mut conn, None).await,
        "0000",
        "no exchange fails for a dead connection"
    );
    assert_ne!(settled().await, first);
    app.server.shutdown().await.unwrap();
}

async fn ask(conn: &mut visiodroits_client::SoapConnection, amc: Option<&str>) -> String {
    let request = services_request(SoapVersion::V12, &new_id(), amc);
    code(&conn.soap(SoapVersion::V12, request).await.unwrap())
}

/// A server whose pools have one connection each and `timeout` (a VD_DB_…_MS variable) at 1 s.
async fn one_connection(timeout: &str) -> crate::helpers::TestApp {
    crate::helpers::TestApp::spawn_with(|v| {
        v.insert("VD_DB_POOL_SIZE".into(), "1".into());
        v.insert(timeout.into(), "1000".into());
    })
    .await
}

/// An open transaction that holds an exclusive lock on the AMC table, which services and rights
/// requests read.
async fn lock_amc(app: &crate::helpers::TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE identite.amc IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// With every pooled connection busy, a request waits at most VD_DB_ACQUIRE_TIMEOUT_MS and gets
/// 0999; the busy one completes, and the pool serves again.
#[tokio::test]
async fn a_request_finding_the_pool_busy_gets_0999_in_bounded_time() {
    // The pool's one connection, once it is taken by `first`, waits on this lock.
    let app = one_connection("VD_DB_ACQUIRE_TIMEOUT_MS").await;
    let lock = lock_amc(&app).await;
    let mut first_conn = app.connect(Some("valid")).await.unwrap();
    let first = tokio::spawn(async move { ask(&mut first_conn, None).await });
    // `first` holds the connection once its query waits on the lock.
    crate::helpers::waiting_on_locks(&app.db, 1).await;
    let mut second_conn = app.connect(Some("valid")).await.unwrap();
    let started = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(10), ask(&mut second_conn, None))
        .await
        .expect("the waiting request is answered, not held until the lock goes");
    assert_eq!(second, "0999");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "bounded by the acquire timeout: {waited:?}"
    );
    lock.commit().await.unwrap();
    assert_eq!(first.await.unwrap(), "0000");
    assert_eq!(ask(&mut second_conn, None).await, "0000");
    app.server.shutdown().await.unwrap();
}

/// A statement held past VD_DB_STATEMENT_TIMEOUT_MS (here by a lock an operator's session keeps)
/// is cancelled by PostgreSQL: the request gets 0999 once, not after the lock goes nor after a
/// second wait on a fresh connection, its failure is audited, and the pool's one connection
/// serves the next request. A services request (whose first statement is `BEGIN`) and a rights
/// request (whose first statement is its look-up, in autocommit) take different paths there.
#[tokio::test]
async fn a_request_held_by_a_lock_gets_0999_once_its_statement_times_out() {
    let app = one_connection("VD_DB_STATEMENT_TIMEOUT_MS").await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    // Each pool's connection opened and idle, as on a server in service.
    assert_eq!(ask(&mut conn, None).await, "0000");
    assert_eq!(ask_rights(&mut conn).await, "0000");
    let backends = || async {
        sqlx::query_scalar::<_, Vec<i32>>(
            "SELECT coalesce(array_agg(pid ORDER BY pid), '{}') FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'visiodroits'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    let before = backends().await;

    let lock = lock_amc(&app).await;
    let mut ids = Vec::new();
    for request in [
        services_request as fn(SoapVersion, &str, Option<&str>) -> String,
        rights_request,
    ] {
        let id = new_id();
        let started = Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            conn.soap(SoapVersion::V12, request(SoapVersion::V12, &id, None)),
        )
        .await
        .expect("answered once the statement times out, not when the lock goes")
        .unwrap();
        let waited = started.elapsed();
        assert_eq!((reply.status.as_u16(), code(&reply)), (500, "0999".into()));
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_millis(1900),
            "one statement timeout, not two: {waited:?}"
        );
        ids.push(id);
    }
    for id in &ids {
        let mut audited = None;
        for _ in 0..100 {
            audited = sqlx::query_scalar::<_, String>(
                "SELECT code FROM audit.journal WHERE id_requete = $1::uuid",
            )
            .bind(id)
            .fetch_optional(&app.db)
            .await
            .unwrap();
            if audited.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(audited.as_deref(), Some("0999"));
    }
    lock.rollback().await.unwrap();
    assert_eq!(ask(&mut conn, None).await, "0000");
    assert_eq!(ask_rights(&mut conn).await, "0000");
    // None was dropped (the audit writer may have opened its first, for the failure rows).
    let after = backends().await;
    assert!(
        before.iter().all(|pid| after.contains(pid)),
        "the same connections serve on: {before:?} then {after:?}"
    );
    app.server.shutdown().await.unwrap();
}

async fn ask_rights(conn: &mut visiodroits_client::SoapConnection) -> String {
    let request = rights_request(SoapVersion::V12, &new_id(), None);
    code(&conn.soap(SoapVersion::V12, request).await.unwrap())
}

/// A rights request for a beneficiary of the test data, in the shape of [`services_request`].
fn rights_request(version: SoapVersion, id: &str, _: Option<&str>) -> String {
    crate::rights::Rights {
        nir: "1790312345678".into(),
        key: "04".into(),
        birth: "19790301".into(),
        ..crate::rights::Rights::default()
    }
    .xml(version, id)
}
