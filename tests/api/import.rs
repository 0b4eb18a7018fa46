//! `import`: CSV and JSON Lines, idempotent, bad lines reported, `--strict` all or nothing.

use visiodroits::cli::import;

use crate::helpers::{shared, TestApp};

async fn counts(app: &TestApp) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM identite.beneficiaire), (SELECT count(*) FROM identite.ouvrant_droit),
                (SELECT count(*) FROM identite.contrat), (SELECT count(*) FROM identite.garantie),
                (SELECT count(*) FROM identite.bareme)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// `text` written to a new file of the test run, named after `name`; its path.
fn write_file(name: &str, text: impl AsRef<[u8]>) -> std::path::PathBuf {
    let file = shared()
        .base
        .join(format!("{name}-{}.csv", crate::helpers::new_id()));
    std::fs::write(&file, text).unwrap();
    file
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
    assert_eq!(
        summary.merged,
        import::Merged::default(),
        "nothing added, nothing changed"
    );
}

#[tokio::test]
async fn a_new_amc_opens_every_service_and_takes_the_name_of_its_last_line() {
    let app = TestApp::spawn().await;
    let good = std::fs::read_to_string(fixture("tests/fixtures/droits.csv")).unwrap();
    let mut lines = good.lines();
    let header = lines.next().unwrap();
    let line = lines.find(|l| l.contains("B-ADHERENT")).unwrap().replace(
        "12345678,MUTUELLE DEMO,B-ADHERENT",
        "99999999,PREMIER NOM,B-NOUVELLE",
    );
    // The same line a chunk's worth of times, then once more, in the next chunk, renamed.
    let mut text = format!("{header}\n");
    for _ in 0..import::CHUNK {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&line.replace("PREMIER NOM", "DERNIER NOM"));
    let file = write_file("amc", text);
    let summary = import::run(&app.db, &file, true, false).await.unwrap();
    assert_eq!(summary.imported, import::CHUNK as u64 + 1);
    assert_eq!(summary.merged.beneficiaries_added, 1);
    let name: String =
        sqlx::query_scalar("SELECT nom FROM identite.amc WHERE numero_amc = '99999999'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(name, "DERNIER NOM");
    let services: Vec<(String, bool)> = sqlx::query_as(
        "SELECT service, actif FROM identite.amc_service WHERE numero_amc = '99999999' ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let expected: Vec<(String, bool)> = [
        "ANNULATION",
        "CONSULTATION",
        "DROITS",
        "TARIFICATION",
        "TARIFICATION_CHIFFREE",
    ]
    .iter()
    .map(|s| (s.to_string(), true))
    .collect();
    assert_eq!(services, expected);
}

/// (beneficiary id, first name, contract id, adherent, OPTI guarantee id, its end) of B-MARTIN.
async fn martin(app: &TestApp) -> (i64, String, i64, Option<String>, i64, chrono::NaiveDate) {
    sqlx::query_as(
        "SELECT b.id, b.prenom, c.id, c.numero_adherent, g.id, g.fin FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
           JOIN identite.contrat c ON c.id = g.contrat_id
          WHERE b.ref_externe = $1 AND g.domaine = 'OPTI'",
    )
    // Bound, not written in the SQL: statements are logged and the logs are scanned for names.
    .bind("B-MARTIN")
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_changed_beneficiary_contract_and_guarantee_are_updated_in_place() {
    let app = TestApp::spawn().await;
    let before = martin(&app).await;
    let text = std::fs::read_to_string(fixture("tests/fixtures/droits.csv")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let l = l.replace(",C-100,A100,", ",C-100,A101,");
            if l.contains("B-MARTIN") {
                l.replace("MARTIN,PAUL", "MARTIN,PIERRE")
                    .replace("2026-01-01,2026-06-30", "2026-01-01,2026-09-30")
            } else {
                l
            }
        })
        .collect();
    let file = write_file("updated", lines.join("\n"));
    let summary = import::run(&app.db, &file, true, false).await.unwrap();
    assert_eq!(
        summary.merged,
        import::Merged {
            beneficiaries_updated: 1,
            guarantees_updated: 1,
            ..Default::default()
        }
    );
    let after = martin(&app).await;
    assert_eq!(
        (after.0, after.2, after.4),
        (before.0, before.2, before.4),
        "the same rows, so issued dossiers still point to them"
    );
    assert_eq!(after.1, "PIERRE");
    assert_eq!(after.3.as_deref(), Some("A101"));
    assert_eq!(
        after.5,
        chrono::NaiveDate::from_ymd_opt(2026, 9, 30).unwrap()
    );

    let again = import::run(&app.db, &file, true, false).await.unwrap();
    assert_eq!(
        again.merged,
        import::Merged::default(),
        "nothing left to change"
    );
}

/// (position, NIR) of a beneficiary's insured persons.
async fn insured(app: &TestApp, reference: &str) -> Vec<(i16, String)> {
    sqlx::query_as(
        "SELECT o.position, o.nir FROM identite.ouvrant_droit o
           JOIN identite.beneficiaire b ON b.id = o.beneficiaire_id
          WHERE b.ref_externe = $1 ORDER BY 1",
    )
    .bind(reference)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// (codes, values) of a beneficiary's pharmacy rules.
async fn pharmacy_rules(app: &TestApp, reference: &str) -> (Vec<String>, Vec<i64>) {
    sqlx::query_as(
        "SELECT r.codes, r.valeurs FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
           JOIN identite.bareme r ON r.id = g.bareme_id
          WHERE b.ref_externe = $1 AND g.domaine = 'PHAR'",
    )
    .bind(reference)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn insured_persons_and_rules_follow_the_file_and_rule_sets_are_shared() {
    let app = TestApp::spawn().await;
    let (sets, guarantees): (i64, i64) =
        sqlx::query_as("SELECT count(DISTINCT bareme_id), count(*) FROM identite.garantie")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        sets < guarantees / 2,
        "{sets} rule sets for {guarantees} guarantees"
    );
    let corse_b = pharmacy_rules(&app, "B-CORSE-B").await;
    assert_eq!(pharmacy_rules(&app, "B-CORSE-A").await, corse_b);

    // B-ENFANT loses its second insured person, B-JUMEAU-1's insured person changes, and
    // B-CORSE-A's default rate goes from 100 % to 90 %.
    let text = std::fs::read_to_string(fixture("tests/fixtures/droits.csv")).unwrap();
    let text = text
        .replace("1850578006084,91,2870699555444,22", "1850578006084,91,,")
        .replace("JULES,2880799111222,48", "JULES,2870699555444,22");
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains("B-CORSE-A") {
                l.replace("DEF:PO:100", "DEF:PO:90")
            } else {
                l.to_string()
            }
        })
        .collect();
    let file = write_file("changed", lines.join("\n"));
    let summary = import::run(&app.db, &file, true, false).await.unwrap();
    assert_eq!(
        summary.merged,
        import::Merged {
            guarantees_updated: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        insured(&app, "B-ENFANT").await,
        vec![(1, "1850578006084".to_string())]
    );
    assert_eq!(
        insured(&app, "B-JUMEAU-1").await,
        vec![(1, "2870699555444".to_string())]
    );
    assert_eq!(
        insured(&app, "B-JUMEAU-2").await,
        vec![(1, "2880799111222".to_string())]
    );
    let (codes, values) = pharmacy_rules(&app, "B-CORSE-A").await;
    assert_eq!(codes, corse_b.0);
    let def = codes.iter().position(|c| c == "DEF").unwrap();
    assert_eq!(values[def], 9000);
    assert_eq!(
        pharmacy_rules(&app, "B-CORSE-B").await,
        corse_b,
        "left as it was"
    );
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
        "SELECT g.libelle, r.plafonds[array_position(r.codes, 'DEF')] FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
           JOIN identite.bareme r ON r.id = g.bareme_id
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
    let file = write_file("bad", lines.join("\n"));

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

/// The fixtures file without the lines `drop` matches, written for the test; its path.
fn fixtures_without(drop: &[&str]) -> std::path::PathBuf {
    let good = std::fs::read_to_string(fixture("tests/fixtures/droits.csv")).unwrap();
    let kept: Vec<&str> = good
        .lines()
        .filter(|l| !drop.iter().any(|d| l.contains(d)))
        .collect();
    write_file("full", kept.join("\n"))
}

/// (reference, domain, end) of every guarantee, in order.
async fn guarantees(app: &TestApp) -> Vec<(String, String, chrono::NaiveDate)> {
    sqlx::query_as(
        "SELECT b.ref_externe, g.domaine, g.fin FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
          ORDER BY 1, 2, 3",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_full_import_ends_what_the_file_dropped_for_its_amcs_only() {
    let app = TestApp::spawn().await;
    let before = guarantees(&app).await;
    // B-TARIF is gone from the file, and B-MARTIN's optics line; B-FERME's AMC is not named by a
    // file that holds none of its lines.
    let file = fixtures_without(&["B-TARIF", "G-OPTI-100", "B-FERME"]);
    let summary = import::run_with(&app.db, &file, true, true, false)
        .await
        .unwrap();
    let after = guarantees(&app).await;
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let mut ended = 0;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.0, &b.1), (&a.0, &a.1), "no guarantee removed or added");
        let dropped = b.0 == "B-TARIF" || (b.0 == "B-MARTIN" && b.1 == "OPTI");
        if dropped && b.2 >= yesterday + chrono::Days::new(1) {
            assert_eq!(a.2, yesterday, "{b:?} ends yesterday");
            ended += 1;
        } else {
            assert_eq!(a.2, b.2, "{b:?} is left as it was");
        }
    }
    assert!(
        ended >= 1,
        "the fixtures hold a guarantee running past today"
    );
    assert_eq!(summary.merged.guarantees_ended, ended);
    assert_eq!(summary.merged.guarantees_added, 0);
    assert_eq!(summary.merged.beneficiaries_added, 0);

    // Again: nothing more to end.
    let again = import::run_with(&app.db, &file, true, true, false)
        .await
        .unwrap();
    let after_again = guarantees(&app).await;
    assert_eq!(
        (again.merged.guarantees_added, again.merged.guarantees_ended),
        (0, 0),
        "{:?}",
        (
            again.clone(),
            after
                .iter()
                .zip(&after_again)
                .filter(|(a, b)| a != b)
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(guarantees(&app).await, after);
}

#[tokio::test]
async fn a_bad_line_in_a_strict_full_import_changes_nothing() {
    let app = TestApp::spawn().await;
    let before = (counts(&app).await, guarantees(&app).await);
    let file = fixtures_without(&["B-TARIF"]);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n12345678,MUTUELLE DEMO,B-NEW,1850578006084,92,19850512,1,X,Y,,,,,C-1,,true,PHAR,Pharmacie,G,1,,2026-01-01,2026-12-31,DEF:PO:100");
    std::fs::write(&file, text).unwrap();
    let err = import::run_with(&app.db, &file, true, true, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fichier refusé"), "{err}");
    assert_eq!((counts(&app).await, guarantees(&app).await), before);
}

#[tokio::test]
async fn an_exchange_during_an_import_sees_a_beneficiary_before_or_after_never_half() {
    let app = TestApp::spawn().await;
    // B-MARTIN's two guarantees change label, one at the head of a long file and the other at
    // its end, in another chunk.
    let good = std::fs::read_to_string(fixture("tests/fixtures/droits.csv")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    let header = lines.remove(0);
    let (martin, others): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|l| l.contains("B-MARTIN"));
    let renamed: Vec<String> = martin
        .iter()
        .map(|l| {
            l.replace(",Pharmacie,", ",Pharmacie bis,")
                .replace(",Optique,", ",Optique bis,")
        })
        .collect();
    let mut file_lines = vec![header, renamed[0].clone()];
    for i in 0..(import::CHUNK + 10_000) {
        // Filler beneficiaries of the same AMC.
        let l = others[0].replace("B-ADHERENT", &format!("B-FILL-{i}"));
        file_lines.push(l);
    }
    file_lines.extend(others.iter().cloned());
    file_lines.push(renamed[1].clone());
    let file = write_file("long", file_lines.join("\n"));

    let db = app.db.clone();
    let import =
        tokio::spawn(async move { import::run_with(&db, &file, true, false, false).await });
    let req = crate::rights::Rights {
        date: "2026-03-15".into(),
        domains: vec!["PHAR".into(), "OPTI".into()],
        ..Default::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    while !import.is_finished() || seen.is_empty() {
        let reply = crate::rights::ask(&app, Some("valid"), &req).await;
        let labels = crate::helpers::all(&reply.body, "libelle");
        let renamed = labels.iter().filter(|l| l.ends_with(" bis")).count();
        let domains = labels
            .iter()
            .filter(|l| l.starts_with("Pharmacie") || l.starts_with("Optique"))
            .count();
        assert_eq!(domains, 2, "{}", reply.body);
        assert!(
            renamed == 0 || renamed == 2,
            "a beneficiary half imported: {labels:?}"
        );
        seen.insert(renamed);
        if import.is_finished() {
            break;
        }
    }
    let summary = import.await.unwrap().unwrap();
    assert_eq!(summary.rejected, 0);
    let reply = crate::rights::ask(&app, Some("valid"), &req).await;
    assert_eq!(
        crate::helpers::all(&reply.body, "libelle")
            .iter()
            .filter(|l| l.ends_with(" bis"))
            .count(),
        2
    );
}
