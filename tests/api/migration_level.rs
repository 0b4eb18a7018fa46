//! The database's migration level against the binary's: `serve` refuses a database behind or
//! ahead of it, naming both; `/readyz` says so when it changes under a running server;
//! `check-config` connects, checks the level and the roles of the server's login role, and exits
//! with the status of what it found.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::helpers::{shared, visiodroits, TestApp};

/// The level this binary embeds.
fn binary_level() -> i64 {
    visiodroits::store::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap()
}

async fn admin(db: &str) -> PgPool {
    sqlx::PgPool::connect(&shared().admin_url(db))
        .await
        .unwrap()
}

/// Takes the last migration back off `db`, as if the binary were one migration ahead of it.
async fn one_behind(db: &PgPool) {
    sqlx::query("DROP FUNCTION public.vd_migration_level()")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(binary_level())
        .execute(db)
        .await
        .unwrap();
}

/// Records a migration this binary does not know, as a newer binary would have.
async fn one_ahead(db: &PgPool) -> i64 {
    let newer = binary_level() + 1;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, 'from a newer binary', true, '\\x00', 0)",
    )
    .bind(newer)
    .execute(db)
    .await
    .unwrap();
    newer
}

fn config(db: &str) -> HashMap<String, String> {
    shared().config_vars(db)
}

async fn start_error(db: &str) -> String {
    let config = visiodroits::config::Config::from_map(&config(db)).unwrap();
    let err = visiodroits::startup::Server::start(config)
        .await
        .err()
        .expect("the server refuses to start");
    format!("{err:#}")
}

#[tokio::test]
async fn serve_refuses_a_database_behind_or_ahead_naming_both_levels() {
    let binary = binary_level().to_string();

    let behind = shared().fresh_database().await;
    one_behind(&admin(&behind).await).await;
    let err = start_error(&behind).await;
    assert!(
        err.contains("DATABASE_URL") && err.contains("behind"),
        "{err}"
    );
    assert!(
        err.contains(&binary) && err.contains("visiodroits migrate"),
        "{err}"
    );

    let ahead = shared().fresh_database().await;
    let newer = one_ahead(&admin(&ahead).await).await;
    let err = start_error(&ahead).await;
    assert!(err.contains("ahead"), "{err}");
    assert!(
        err.contains(&newer.to_string()) && err.contains(&binary),
        "{err}"
    );
}

#[tokio::test]
async fn readyz_names_a_level_that_changed_under_a_running_server() {
    let app = TestApp::spawn().await;
    assert_eq!(app.ops_get("/readyz").await.0, 200);
    let newer = one_ahead(&app.db).await;
    let (status, body) = app.ops_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(&format!("the database is at {newer}")),
        "{body}"
    );
}

#[tokio::test]
async fn check_config_connects_and_checks_the_level_and_the_roles() {
    let run = |db: &str| {
        let vars = config(db);
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = visiodroits(&["check-config"], &env);
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let db = shared().fresh_database().await;
    let (code, out, err) = run(&db);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("migrations at {} (this binary's)", binary_level())),
        "{out}"
    );
    for role in [
        "vd_droits",
        "vd_tarif",
        "vd_audit_writer",
        "vd_audit_sealer",
    ] {
        assert!(
            out.contains(&format!("as {role}")) || out.contains(&format!(", {role}")),
            "{out}"
        );
    }

    // Behind: a problem found (1), named.
    let behind = shared().fresh_database().await;
    one_behind(&admin(&behind).await).await;
    let (code, _, err) = run(&behind);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("behind"), "{err}");

    // Unreachable: could not run (3).
    let mut vars = config(&db);
    vars.insert(
        "DATABASE_URL".into(),
        "postgres://nobody@localhost/none?host=/nonexistent-socket-dir".into(),
    );
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = visiodroits(&["check-config"], &env);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A pool's login role that cannot act as vd_tarif (private cluster only: elsewhere the tests
    // log in as a superuser, which check-config reports as a warning).
    if crate::helpers::shared().per_pool_logins() {
        // Roles are cluster-wide: login roles of our own, so that other tests keep theirs.
        let own = format!("vd_cc_{}", std::process::id());
        let pool = admin(&db).await;
        visiodroits::store::provision_login_role(&pool, &own)
            .await
            .unwrap();
        sqlx::query(&format!("REVOKE vd_tarif FROM {own}_tarif"))
            .execute(&pool)
            .await
            .unwrap();
        let mut vars = config(&db);
        let login = format!("{}@", crate::helpers::LOGIN);
        let url = vars["DATABASE_URL"].replacen(&login, &format!("{own}@"), 1);
        vars.insert("DATABASE_URL".into(), url);
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = visiodroits(&["check-config"], &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "the login role {own}_tarif cannot act as vd_tarif"
            )),
            "{err}"
        );
        // A pool's login role that could take another pool's role is reported too.
        sqlx::query(&format!("GRANT vd_tarif, vd_droits TO {own}_tarif"))
            .execute(&pool)
            .await
            .unwrap();
        let out = visiodroits(&["check-config"], &env);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!(
                "warning: the login role {own}_tarif is a member of vd_droits, vd_tarif"
            )),
            "{text}"
        );
    }
}
