//! The audit chain: sealed after commit, verified by `audit verify`, tampering named.

use visiodroits::soap::SoapVersion;

use crate::helpers::{code, new_id, services_request, shared, wait_sealed, TestApp};
use crate::rights::{ask, Rights};

#[tokio::test]
async fn the_chain_verifies_then_names_the_row_a_superuser_edited() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    for _ in 0..3 {
        let reply = conn
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(code(&reply), "0000");
    }
    assert_eq!(
        code(&ask(&app, Some("valid"), &Rights::default()).await),
        "0000"
    );
    assert_eq!(code(&ask(&app, None, &Rights::default()).await), "8002");
    wait_sealed(&app).await;

    let url = visiodroits::config::Secret::new(shared().admin_url(&app.db_name));
    let report = visiodroits::cli::audit::verify(&url).await.unwrap();
    assert!(
        report.contains("audit chain intact: 5 sealed row(s), 0 row(s) not yet sealed"),
        "{report}"
    );

    // Every row carries who and what, the refusal too.
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT j.operation, j.code, j.cert_serie, j.numero_structure FROM audit.sceau s
           JOIN audit.journal j ON j.id = s.journal_id ORDER BY s.position",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[3].0, "DemandeDroits");
    assert!(
        rows[3].2.is_some() && rows[3].3.as_deref() == Some(visiodroits_devkit::pki::DEV_FINESS)
    );
    assert_eq!((rows[4].1.as_str(), rows[4].2.as_deref()), ("8002", None));

    // A superuser bypasses the triggers and edits the third row.
    let (position, id): (i64, i64) =
        sqlx::query_as("SELECT position, journal_id FROM audit.sceau WHERE position = 3")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE audit.journal SET code = '6001' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let err = visiodroits::cli::audit::verify(&url)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("position {position} (audit.journal id {id})")),
        "{err}"
    );
}

#[tokio::test]
async fn envelope_refusals_and_policy_refusals_are_audited() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn.soap(SoapVersion::V12, "<not-soap/>").await.unwrap();
    assert_eq!(code(&reply), "6000");
    let mut conn = app.connect(Some("bad-ou")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "8003");
    // Refusals are audited off the response path: wait for both rows.
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.journal")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if n >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    wait_sealed(&app).await;
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT operation, code, motif FROM audit.journal ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        rows.len(),
        2,
        "{rows:?}\n{}",
        crate::helpers::captured_logs()
            .lines()
            .filter(|l| l.contains("audit"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        rows.iter()
            .any(|r| r.1 == "6000"
                && r.2.as_deref() == Some("le document n'est pas une enveloppe SOAP")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.1 == "8003" && r.2.as_deref() == Some("OU hors politique")),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_row_that_commits_after_later_rows_were_sealed_is_sealed_too() {
    let app = TestApp::spawn().await;
    // A transaction takes an audit id, then stays open while later exchanges commit and are
    // sealed above it.
    let mut late = app.db.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO audit.journal (instance, operation, code, duree_ms) VALUES ('late', 'ServicesOuverts', '0000', 1)",
    )
    .execute(&mut *late)
    .await
    .unwrap();
    let mut conn = app.connect(Some("valid")).await.unwrap();
    for _ in 0..3 {
        let body = services_request(SoapVersion::V12, &new_id(), None);
        assert_eq!(
            code(&conn.soap(SoapVersion::V12, body).await.unwrap()),
            "0000"
        );
    }
    for _ in 0..50 {
        let sealed: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.sceau")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if sealed == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    late.commit().await.unwrap();
    // The periodic sweep finds it below the highest sealed row.
    wait_sealed(&app).await;
    let last: String = sqlx::query_scalar(
        "SELECT j.instance FROM audit.sceau s JOIN audit.journal j ON j.id = s.journal_id
          ORDER BY s.position DESC LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(last, "late");
    let url = visiodroits::config::Secret::new(shared().admin_url(&app.db_name));
    let report = visiodroits::cli::audit::verify(&url).await.unwrap();
    assert!(
        report.contains("4 sealed row(s), 0 row(s) not yet sealed"),
        "{report}"
    );
}
