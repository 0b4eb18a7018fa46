//! Durability under a crash and graceful shutdown (spec/operations.md; spec/data.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use visiodroits::soap::SoapVersion;

use crate::helpers::{code, first, new_id, shared, ServerProcess};
use crate::rights::Rights;
use crate::tarification::{prescription, tarification, LINES};

async fn dossier_on(server: &ServerProcess) -> String {
    let req = Rights {
        nir: "1790312345678".into(),
        key: "04".into(),
        birth: "19790301".into(),
        ..Rights::default()
    };
    let mut conn = server.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(SoapVersion::V12, req.xml(SoapVersion::V12, &new_id()))
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    first(&reply.body, "numero_dossier").unwrap()
}

#[tokio::test]
async fn a_sigkill_during_pecs_loses_no_answered_pec_and_retries_commit_exactly_once() {
    let mut server = ServerProcess::spawn(|_| {}).await;
    let d = dossier_on(&server).await;
    // Requests: (id_requete, body), one PEC per prescription, PH7 lines only (no ceiling).
    let requests: Vec<(String, String)> = (1..=400u32)
        .map(|p| {
            let id = new_id();
            let body = tarification(&id, &d, "PEC", &prescription(p, &LINES[..1], ""));
            (id, body)
        })
        .collect();
    let answered: Arc<Mutex<Vec<(usize, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut conn = server.connect(Some("valid")).await.unwrap();
        let (requests, answered, next) = (requests.clone(), answered.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= requests.len() {
                    return;
                }
                match conn.soap(SoapVersion::V12, requests[i].1.clone()).await {
                    Ok(reply) => {
                        assert_eq!(code(&reply), "0000", "{}", reply.body);
                        let acc = first(&reply.body, "numero_accreditation").unwrap();
                        answered.lock().unwrap().push((i, acc));
                    }
                    Err(_) => return, // the server died under this request
                }
            }
        }));
    }
    // Kill the server in the middle of the stream.
    while answered.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() < requests.len(),
        "the kill interrupted the stream"
    );

    let server = ServerProcess::spawn_on(&server.db_name.clone(), |_| {});
    let db = sqlx::PgPool::connect(&shared().admin_url(&server.db_name))
        .await
        .unwrap();
    // Every accreditation a client received exists, with its audit row.
    for (_, acc) in &answered {
        let (pec, audited) = crate::helpers::stored_pec(&db, acc).await;
        assert_eq!((pec, audited), (1, 1), "{acc}");
    }
    // Retrying every request with its id_requete: exactly one PEC each, answered ones unchanged.
    let mut conn = server.connect(Some("valid")).await.unwrap();
    for (i, (_, body)) in requests.iter().enumerate() {
        let reply = conn.soap(SoapVersion::V12, body.clone()).await.unwrap();
        assert_eq!(code(&reply), "0000", "{}", reply.body);
        if let Some((_, acc)) = answered.iter().find(|(j, _)| *j == i) {
            assert_eq!(
                first(&reply.body, "numero_accreditation").as_ref(),
                Some(acc)
            );
        }
    }
    let (pecs, prescriptions): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT id_prescription) FROM dispensation.tarification WHERE mode = 'PEC'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((pecs, prescriptions), (400, 400));
}

/// Sends SIGTERM to the server process, as a supervisor stopping it does.
fn sigterm(server: &ServerProcess) {
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// A SIGTERM sent the moment the server says it serves (as a supervisor restarting it at once
/// may) is a graceful stop, not the end of the process by the signal.
#[tokio::test]
async fn a_sigterm_right_after_serving_stops_the_server_cleanly() {
    let mut server = ServerProcess::spawn(|_| {}).await;
    sigterm(&server);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_pec_complete() {
    let mut server = ServerProcess::spawn(|_| {}).await;
    let d = dossier_on(&server).await;
    let db = sqlx::PgPool::connect(&shared().admin_url(&server.db_name))
        .await
        .unwrap();
    // Hold the dossier's rows so that the next PEC waits inside its transaction.
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("SELECT * FROM dispensation.dossier FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut conn = server.connect(Some("valid")).await.unwrap();
    let body = tarification(&new_id(), &d, "PEC", &prescription(1, LINES, ""));
    let in_flight = tokio::spawn(async move { conn.soap(SoapVersion::V12, body).await });
    // Wait until the PEC is blocked in the database, then ask the server to stop.
    crate::helpers::waiting_on_locks(&db, 1).await;
    sigterm(&server);
    // No new connection is accepted while draining (the listener closes within moments).
    let mut refused = false;
    for _ in 0..100 {
        if server.connect(Some("valid")).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "stopped accepting");
    blocker.rollback().await.unwrap();
    let reply = in_flight.await.unwrap().unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert!(first(&reply.body, "numero_accreditation").is_some());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
}

/// A transaction whose `BEGIN` was cut short after it was sent (the exchange's future dropped, as
/// when its client goes away) leaves no pooled connection inside that transaction: later
/// autocommit work on the pool would otherwise run in it, uncommitted, holding its locks.
#[tokio::test]
async fn a_begin_cut_short_leaves_no_pooled_connection_inside_a_transaction() {
    use sqlx::Executor;
    use visiodroits::store::hosts::Hosts;
    use visiodroits::store::pool::Pool;
    use visiodroits::store::Role;

    let app = crate::helpers::TestApp::spawn().await;
    let url = shared().pool_url(&app.db_name, Role::Tarification);
    let hosts = Arc::new(Hosts::parse(&url, |o| o).unwrap());
    let pool = Pool::new(hosts, None, 1, Duration::from_secs(5));
    let (mut tx, ()) = pool
        .read_with(None, |mut c| async move {
            let r = c.execute("SELECT 1").await.map(|_| ());
            (c, r)
        })
        .await
        .unwrap();
    // A slow statement cut short, then the BEGIN queued behind it: sent, and not yet answered
    // when it is cut short in turn.
    let slow = tokio::time::timeout(Duration::ZERO, tx.execute("SELECT pg_sleep(0.3)")).await;
    assert!(slow.is_err());
    assert!(tokio::time::timeout(Duration::ZERO, tx.begin())
        .await
        .is_err());
    drop(tx);

    // This pool's connections only: the test server's audit sealer, on the same database, is
    // idle in its own transaction between its statements at each tick.
    let in_transaction = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND application_name <> 'visiodroits'
                AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    // Past the slow statement and the BEGIN, the connection is gone rather than idle inside it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        in_transaction().await,
        0,
        "a pooled connection stayed in a transaction"
    );
    assert_eq!(
        pool.open(),
        0,
        "the cut connection is closed and counted out"
    );
    // The pool serves on a fresh connection.
    let (tx, one) = pool
        .read_with(None, |mut c| async move {
            let r = sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&mut c)
                .await;
            (c, r)
        })
        .await
        .unwrap();
    assert_eq!((one, pool.open()), (1, 1));
    drop(tx);
}
