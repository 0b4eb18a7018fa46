//! `import`: CSV and JSON Lines, idempotent, bad lines reported, `--strict` all or nothing.

use visiodroits::cli::import;

use crate::helpers::{shared, TestApp};

async fn counts(app: &TestApp) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM identite.beneficiaire), (SELECT count(*) FROM identite.ouvrant_droit),
                (SELECT count(*) FROM identite.contrat), (SELECT count(*) FROM identite.garantie),
                (SELECT count(*) FROM identite.prestation)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

fn fixture(name: &str) -> std::path::PathBuf {
    crate::helpers::repo().join(name)
}

#[tokio::test]
async fn importing_the_same_file_twice_changes_nothing() {
    let app = TestApp::spawn().await;
    let before = counts(&app).await;
    assert_eq!(before.0, 11, "fixtures: 11 beneficiaries");
    let summary = import::run(&app.db, &fixture("tests/fixtures/droits.csv"), false, false)
        .await
        .unwrap();
    assert_eq!(
        (summary.read, summary.imported, summary.rejected),
        (12, 12, 0)
    );
    assert_eq!(counts(&app).await, before);
}

#[tokio::test]
async fn the_json_lines_sample_imports_and_updates() {
    let app = TestApp::spawn().await;
    let summary = import::run(&app.db, &fixture("data/sample-droits.jsonl"), true, false)
        .await
        .unwrap();
    assert_eq!(
        (summary.imported, summary.rejected),
        (2, 0),
        "{:?}",
        summary.errors
    );
    let (label, ceiling): (String, Option<i64>) = sqlx::query_as(
        "SELECT g.libelle, p.plafond_annuel FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
           JOIN identite.prestation p ON p.garantie_id = g.id AND p.code = 'DEF'
          WHERE b.ref_externe = 'B-JSON-1' AND g.domaine = 'OPTI'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((label.as_str(), ceiling), ("Optique", Some(25000)));
}

#[tokio::test]
async fn bad_lines_are_reported_by_number_and_skipped_or_refuse_the_file_when_strict() {
    let app = TestApp::spawn().await;
    let good = std::fs::read_to_string(fixture("tests/fixtures/droits.csv")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    // Line 3 gets a wrong NIR key, line 5 a wrong column count; both are new beneficiaries.
    lines[2] = lines[2].replace("B-MARTIN,1850578006084,91", "B-NEW-1,1850578006084,92");
    lines[4] = format!("{},extra", lines[4].replace("B-CORSE-B", "B-NEW-2"));
    let file = shared()
        .base
        .join(format!("bad-{}.csv", crate::helpers::new_id()));
    std::fs::write(&file, lines.join("\n")).unwrap();

    let before = counts(&app).await;
    let err = import::run(&app.db, &file, true, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("ligne 3: nir: clé NIR invalide"), "{err}");
    assert!(!err.contains("1850578006084"), "no NIR in messages: {err}");
    assert_eq!(counts(&app).await, before, "--strict writes nothing");

    let summary = import::run(&app.db, &file, false, false).await.unwrap();
    assert_eq!(
        (summary.read, summary.imported, summary.rejected),
        (12, 10, 2)
    );
    assert_eq!(
        summary.errors,
        vec![
            "ligne 3: nir: clé NIR invalide",
            "ligne 5: 25 colonnes au lieu de 24"
        ]
    );
    assert_eq!(
        counts(&app).await.0,
        before.0,
        "the two new beneficiaries were not imported"
    );
}
