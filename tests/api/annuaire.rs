//! `annuaire import` (spec/operations.md): the ANS Annuaire Santé extract into the schema
//! `annuaire`, replacing the previous load; bad lines counted with their number; the real binary's
//! summary and exit status; what the exchange roles may do with it.

use std::process::Command;

use visiodroits::cli::annuaire::{extract_line, EXTRACT_HEADER};

use crate::helpers::{shared, TestApp};

type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn rows(app: &TestApp) -> Vec<Row> {
    sqlx::query_as(
        "SELECT identifiant_pp, code_profession, finess_site, finess_ej, siret_site
           FROM annuaire.activite ORDER BY 1, 3, 5",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

fn sample() -> std::path::PathBuf {
    crate::helpers::repo().join("data/PS_LibreAcces_Personne_activite_exemple.txt")
}

/// Runs the real binary's `annuaire import FILE` on the test's database.
fn import(app: &TestApp, file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_visiodroits"))
        .args(["annuaire", "import"])
        .arg(file)
        .env_clear()
        .env("DATABASE_URL", shared().admin_url(&app.db_name))
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn the_sample_loads_and_a_second_import_changes_nothing() {
    let app = TestApp::spawn().await;
    let out = import(&app, &sample());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "10 ligne(s) lue(s), 9 activité(s) chargée(s), 1 sans structure, 0 rejetée(s)"
        ),
        "{stdout}"
    );
    let first = rows(&app).await;
    assert_eq!(first.len(), 9);
    assert!(first.contains(&(
        "899700075122".into(),
        Some("21".into()),
        Some("750000001".into()),
        Some("750000019".into()),
        None
    )));
    let loaded_at: (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT charge_le FROM annuaire.chargement")
            .fetch_one(&app.db)
            .await
            .unwrap();

    assert!(import(&app, &sample()).status.success());
    assert_eq!(rows(&app).await, first, "importing twice changes nothing");
    let (count, again): (i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT count(*), max(charge_le) FROM annuaire.chargement")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(count, 1, "one load in force");
    assert!(again > loaded_at.0);
}

#[tokio::test]
async fn bad_lines_are_counted_by_number_and_the_others_replace_the_previous_load() {
    let app = TestApp::spawn().await;
    let file = shared()
        .base
        .join(format!("annuaire-bad-{}.txt", uuid::Uuid::new_v4()));
    let good = extract_line(
        "10001234698",
        ("NOM", "PRENOM"),
        "750000001",
        "750000019",
        "",
    );
    let lines = [
        EXTRACT_HEADER.to_string(),
        good.clone(),
        extract_line("10001234706", ("NOM", "PRENOM"), "75000001", "", ""),
        "810001234714|trop|court".to_string(),
        extract_line("10001234722", ("NOM", "PRENOM"), "", "", "123"),
        extract_line("10001234730", ("NOM", "PRENOM"), "", "", "12345678900011"),
    ];
    std::fs::write(&file, lines.join("\r\n") + "\r\n").unwrap();
    let out = import(&app, &file);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejected lines: exit 1\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains(
            "5 ligne(s) lue(s), 2 activité(s) chargée(s), 0 sans structure, 3 rejetée(s)"
        ),
        "{stdout}"
    );
    for expected in [
        "ligne 3: Numéro FINESS site: 9 chiffres attendus",
        "ligne 4: 3 champs au lieu des 57 de l'en-tête",
        "ligne 5: Numéro SIRET site: 14 chiffres attendus",
    ] {
        assert!(stderr.contains(expected), "{expected}:\n{stderr}");
    }
    // The sample's load is gone: the directory is the file's, no more, no less.
    let ids: Vec<String> = rows(&app).await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        ids,
        vec!["810001234698".to_string(), "810001234730".to_string()]
    );
    // A file that is not an extract changes nothing.
    std::fs::write(&file, "nom;prenom\nA;B\n").unwrap();
    let out = import(&app, &file);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Identification nationale PP"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rows(&app).await.len(), 2);
}

#[tokio::test]
async fn the_exchange_roles_read_the_directory_and_cannot_change_it() {
    let app = TestApp::spawn().await;
    for role in ["vd_droits", "vd_tarif"] {
        let mut tx = app.db.begin().await.unwrap();
        sqlx::query(&format!("SET LOCAL ROLE {role}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM annuaire.activite")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 9, "{role} reads the directory");
        let err = sqlx::query("DELETE FROM annuaire.activite")
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{role} may not write it: {err}"
        );
    }
    for role in ["vd_audit_writer", "vd_auditeur", "vd_tiers_confiance"] {
        let mut tx = app.db.begin().await.unwrap();
        sqlx::query(&format!("SET LOCAL ROLE {role}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        assert!(
            sqlx::query("SELECT 1 FROM annuaire.activite LIMIT 1")
                .execute(&mut *tx)
                .await
                .is_err(),
            "{role} has no reason to read the directory"
        );
    }
}
