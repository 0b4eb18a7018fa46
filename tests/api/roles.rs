//! Separation enforced by database roles (spec/data.md): every "may not" of the role table.

use std::time::Duration;

use sqlx::Connection;
use visiodroits::config::{DbLogins, Secret};
use visiodroits::store::{Role, Store, SERVER_ROLES};

use crate::helpers::{shared, TestApp};

/// Runs `sql` under `role` in a transaction that is rolled back; `Ok` when PostgreSQL allowed it.
/// A role the server acts as is reached the way its pool reaches it (a connection opened by the
/// server's own pool code, as that pool's login role, and nothing else); the admin commands'
/// roles by `SET LOCAL ROLE` from the owner.
async fn try_as(app: &TestApp, role: &str, sql: &str) -> Result<(), String> {
    let mut conn = match server_role(role) {
        Some(r) if shared().per_pool_logins() => pool_connection(app, r).await,
        _ => app.db.acquire().await.unwrap().detach(),
    };
    let mut tx = conn.begin().await.unwrap();
    if server_role(role).is_none() || !shared().per_pool_logins() {
        sqlx::query(&format!("SET LOCAL ROLE {role}"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let result = sqlx::query(sql)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(|e| code_of(&e));
    tx.rollback().await.unwrap();
    result
}

fn code_of(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string())
}

fn server_role(name: &str) -> Option<Role> {
    SERVER_ROLES.iter().copied().find(|r| r.name() == name)
}

/// A connection opened by the server's pool of `role`, on the test's database.
async fn pool_connection(app: &TestApp, role: Role) -> sqlx::PgConnection {
    let url = Secret::new(shared().app_url(&app.db_name));
    let store =
        Store::connect_lazy(&url, 1, Duration::from_secs(5), None, DbLogins::PerPool).unwrap();
    store.pool(role).open_unpooled().await.unwrap()
}

const DOSSIER: &str = "INSERT INTO dispensation.dossier (numero_dossier, numero_amc, structure, expiration, cle_plafond, regles)
    VALUES (gen_random_uuid(), '12345678', '750000001', now(), decode(repeat('00', 32), 'hex'), '{}')";
const PAIRING: &str =
    "INSERT INTO identite.appariement (numero_dossier, beneficiaire_id, contrat_id)
    SELECT gen_random_uuid(), g.beneficiaire_id, g.contrat_id FROM identite.garantie g LIMIT 1";
const AUDIT: &str = "INSERT INTO audit.journal (instance, operation, code, duree_ms) VALUES ('t', 'test', '0000', 0)";

/// A use of a token recorded for replay.
const JETON: &str = "SELECT audit.vd_jeton_vu('https://psc', 'jti-1', repeat('a', 64), now() + interval '1 minute', true)";

#[tokio::test]
async fn each_role_may_do_only_what_the_role_table_says() {
    let app = TestApp::spawn().await;
    // Something to update and delete.
    sqlx::query(AUDIT).execute(&app.db).await.unwrap();
    let cases: &[(&str, &str, bool)] = &[
        // vd_droits: read identite, insert the pairing row, insert the dossier row, insert audit.
        ("vd_droits", "SELECT * FROM identite.beneficiaire", true),
        ("vd_droits", PAIRING, true),
        ("vd_droits", DOSSIER, true),
        ("vd_droits", AUDIT, true),
        ("vd_droits", "SELECT * FROM identite.bareme", true),
        ("vd_droits", "UPDATE identite.bareme SET codes = codes", false),
        ("vd_droits", "SELECT * FROM identite.appariement", false),
        ("vd_droits", "SELECT * FROM dispensation.dossier", false),
        ("vd_droits", "UPDATE identite.beneficiaire SET nom = nom", false),
        ("vd_droits", "SELECT * FROM audit.journal", false),
        // vd_tarif: dispensation and audit insert; no access at all to identite.
        ("vd_tarif", "SELECT * FROM dispensation.dossier", true),
        ("vd_tarif", "UPDATE dispensation.dossier SET statut = statut", true),
        ("vd_tarif", AUDIT, true),
        ("vd_tarif", "SELECT * FROM identite.beneficiaire", false),
        ("vd_tarif", "SELECT * FROM identite.ouvrant_droit", false),
        ("vd_tarif", "SELECT * FROM identite.contrat", false),
        ("vd_tarif", "SELECT * FROM identite.garantie", false),
        ("vd_tarif", "SELECT * FROM identite.bareme", false),
        ("vd_tarif", "SELECT * FROM identite.appariement", false),
        ("vd_tarif", "SELECT * FROM identite.amc", false),
        ("vd_tarif", "SELECT * FROM audit.journal", false),
        // vd_audit_writer: insert into audit only.
        ("vd_audit_writer", AUDIT, true),
        ("vd_audit_writer", "UPDATE audit.journal SET code = '0000'", false),
        ("vd_audit_writer", "DELETE FROM audit.journal", false),
        ("vd_audit_writer", "SELECT * FROM audit.journal", false),
        ("vd_audit_writer", "SELECT * FROM identite.amc", false),
        ("vd_audit_writer", "SELECT * FROM dispensation.dossier", false),
        // vd_auditeur: read audit.
        ("vd_auditeur", "SELECT * FROM audit.journal", true),
        ("vd_auditeur", "SELECT * FROM audit.sceau", true),
        ("vd_auditeur", AUDIT, false),
        ("vd_auditeur", "SELECT * FROM identite.beneficiaire", false),
        ("vd_auditeur", "SELECT * FROM dispensation.dossier", false),
        // vd_tiers_confiance: the pairing table and dispensation — the only join of the two.
        ("vd_tiers_confiance", "SELECT * FROM identite.appariement", true),
        ("vd_tiers_confiance", "SELECT * FROM dispensation.dossier", true),
        ("vd_tiers_confiance", "SELECT a.*, d.* FROM identite.appariement a JOIN dispensation.dossier d USING (numero_dossier)", true),
        ("vd_tiers_confiance", DOSSIER, false),
        ("vd_tiers_confiance", "SELECT * FROM audit.journal", false),
        // The sealer: reads the journal, inserts seals, keeps its gap worklist, nothing else.
        ("vd_audit_sealer", "SELECT * FROM audit.journal", true),
        ("vd_audit_sealer", "DELETE FROM audit.lacune WHERE journal_id = 0", true),
        ("vd_audit_sealer", "DELETE FROM audit.sceau WHERE position = 0", false),
        ("vd_audit_writer", "INSERT INTO audit.lacune (journal_id) VALUES (0)", false),
        ("vd_auditeur", "DELETE FROM audit.lacune", false),
        ("vd_audit_sealer", AUDIT, false),
        ("vd_audit_sealer", "SELECT * FROM identite.beneficiaire", false),
        // Token replay: only the audit writer records a use, and only through its function.
        ("vd_audit_writer", JETON, true),
        ("vd_audit_writer", "SELECT * FROM audit.jeton_vu", false),
        ("vd_audit_writer", "DELETE FROM audit.jeton_vu", false),
        ("vd_droits", JETON, false),
        ("vd_tarif", JETON, false),
        ("vd_auditeur", JETON, false),
        ("vd_tarif", "SELECT * FROM audit.jeton_vu", false),
    ];
    for (role, sql, allowed) in cases {
        let result = try_as(&app, role, sql).await;
        if *allowed {
            assert!(result.is_ok(), "{role} must be allowed: {sql}: {result:?}");
        } else {
            assert_eq!(
                result,
                Err("42501".to_string()),
                "{role} must be refused: {sql}"
            );
        }
    }
}

#[tokio::test]
async fn audit_rows_refuse_update_and_delete_even_for_the_owner() {
    // A database without a server: no sealer holding locks on the audit tables meanwhile.
    let s = shared();
    let db_name = s.fresh_database().await;
    let db = sqlx::PgPool::connect(&s.admin_url(&db_name)).await.unwrap();
    sqlx::query(AUDIT).execute(&db).await.unwrap();
    for sql in [
        "UPDATE audit.journal SET code = '9999'",
        "DELETE FROM audit.journal",
        "TRUNCATE audit.journal CASCADE",
        "TRUNCATE audit.sceau",
    ] {
        let err = sqlx::query(sql).execute(&db).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn a_pool_connection_cannot_take_another_role_whatever_it_runs() {
    if !shared().per_pool_logins() {
        // An external cluster runs the servers as its superuser: nothing to check here.
        return;
    }
    let app = TestApp::spawn().await;
    for role in SERVER_ROLES {
        let mut conn = pool_connection(&app, *role).await;
        let (session, current): (String, String) =
            sqlx::query_as("SELECT session_user::text, current_user::text")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(session, role.login(crate::helpers::LOGIN));
        assert_eq!(current, session, "no SET ROLE: the login is the pool's");
        // No other server role, nor the admin commands' ones, can be taken.
        for other in SERVER_ROLES.iter().filter(|o| *o != role) {
            let e = sqlx::query(&format!("SET ROLE {}", other.name()))
                .execute(&mut conn)
                .await
                .unwrap_err();
            assert_eq!(code_of(&e), "42501", "{} → {}", role.name(), other.name());
        }
        for admin in ["vd_auditeur", "vd_tiers_confiance"] {
            let e = sqlx::query(&format!("SET ROLE {admin}"))
                .execute(&mut conn)
                .await
                .unwrap_err();
            assert_eq!(code_of(&e), "42501", "{} → {admin}", role.name());
        }
        // Identity data only for the rights pool, whatever the session does first.
        let read = sqlx::raw_sql("RESET ROLE; SELECT count(*) FROM identite.beneficiaire")
            .execute(&mut conn)
            .await;
        match role {
            Role::Rights => assert!(read.is_ok(), "{read:?}"),
            _ => assert_eq!(
                code_of(&read.unwrap_err()),
                "42501",
                "{} reads identite",
                role.name()
            ),
        }
        let _ = conn.close().await;
    }
}

#[tokio::test]
async fn with_one_shared_login_each_exchange_takes_its_role() {
    // An external cluster runs the servers as its superuser: nothing to check there.
    let Some(app) = crate::helpers::TestApp::with_shared_login().await else {
        return;
    };

    // The rights exchange (its reads, then the dossier), then a PEC on that dossier.
    let dossier = crate::tarification::dossier(
        &app,
        "valid",
        &crate::tarification::valid_ps(),
        visiodroits_devkit::pki::DEV_FINESS,
    )
    .await;
    let payload = crate::tarification::prescription(1, crate::tarification::LINES, "");
    let body =
        crate::tarification::tarification(&crate::helpers::new_id(), &dossier, "PEC", &payload);
    let reply = crate::tarification::send(&app, Some("valid"), body).await;
    assert_eq!(crate::helpers::code(&reply), "0000", "{}", reply.body);
    let (dossiers, pecs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM dispensation.dossier WHERE numero_dossier = $1::uuid),
                (SELECT count(*) FROM dispensation.tarification WHERE numero_dossier = $1::uuid)",
    )
    .bind(&dossier)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((dossiers, pecs), (1, 1));
    // Without its `SET LOCAL ROLE`, the shared login reads nothing.
    let login = format!("{}_partage", app.db_name);
    let mut conn = sqlx::PgConnection::connect(&shared().url_as(&login, &app.db_name))
        .await
        .unwrap();
    let e = sqlx::query("SELECT count(*) FROM identite.beneficiaire")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "42501");
    let _ = conn.close().await;
    app.server.shutdown().await.unwrap();
}
