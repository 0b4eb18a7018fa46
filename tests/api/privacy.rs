//! No NIR, name or birth date in `dispensation`, `audit` or the logs (spec: privacy).

use std::collections::BTreeSet;

use crate::helpers::{captured_logs, wait_sealed, TestApp};
use crate::rights::{ask, Rights};

/// Every NIR, name and birth date of the fixtures.
fn identities() -> BTreeSet<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/droits.csv"
    ))
    .unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let headers = rd.headers().unwrap().clone();
    let wanted = [
        "nir",
        "date_naissance",
        "nom",
        "prenom",
        "nir_ouvrant_1",
        "nir_ouvrant_2",
    ];
    let mut out = BTreeSet::new();
    for rec in rd.records() {
        let rec = rec.unwrap();
        for (h, v) in headers.iter().zip(rec.iter()) {
            if wanted.contains(&h) && !v.is_empty() {
                out.insert(v.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn no_identity_reaches_dispensation_audit_or_logs() {
    let app = TestApp::spawn().await;
    // Successes and errors, with every fixture identity that can be asked.
    let people = [
        ("1850578006084", "91", "19850512", "1"),
        ("192062A123456", "94", "19920615", "1"),
        ("286112B654321", "73", "19861120", "1"),
        ("1870399123123", "16", "19870035", "1"),
        ("1850578006084", "91", "20150310", "1"),
        ("2880799111222", "48", "20180420", "2"),
        ("1660275888999", "64", "19660202", "1"),
        ("1760175333444", "79", "19760101", "1"),
    ];
    for (nir, key, birth, rank) in people {
        for date in ["2026-03-15", "2023-01-01"] {
            let req = Rights {
                nir: nir.into(),
                key: key.into(),
                birth: birth.into(),
                rank: rank.into(),
                date: date.into(),
                ..Rights::default()
            };
            ask(&app, Some("valid"), &req).await;
            ask(&app, None, &req).await;
        }
        // A faulty request carrying the identity too.
        let req = Rights {
            nir: nir.into(),
            key: "00".into(),
            birth: birth.into(),
            ..Rights::default()
        };
        ask(&app, Some("valid"), &req).await;
    }
    // And tarifications on a dossier, clear and PEC, so that every dispensation table is filled.
    let d = crate::tarification::dossier(
        &app,
        "valid",
        &crate::tarification::valid_ps(),
        visiodroits_devkit::pki::DEV_FINESS,
    )
    .await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let mut accreditation = None;
    for mode in ["DEVIS", "PEC"] {
        let body = crate::tarification::tarification(
            &crate::helpers::new_id(),
            &d,
            mode,
            &crate::tarification::prescription(3, crate::tarification::LINES, ""),
        );
        let reply = conn
            .soap(visiodroits::soap::SoapVersion::V12, body)
            .await
            .unwrap();
        assert_eq!(crate::helpers::code(&reply), "0000");
        accreditation = crate::helpers::first(&reply.body, "numero_accreditation");
    }
    // Its justification, read back (and audited).
    let body = crate::helpers::envelope(
        visiodroits::soap::SoapVersion::V12,
        &format!(
            "<vd:demande_accreditation>{}{}<vd:numero_accreditation>{}</vd:numero_accreditation></vd:demande_accreditation>",
            crate::tarification::head(&crate::helpers::new_id()),
            crate::tarification::ps_block(&crate::tarification::valid_ps(), visiodroits_devkit::pki::DEV_FINESS),
            accreditation.unwrap()
        ),
    );
    let reply = conn
        .soap(visiodroits::soap::SoapVersion::V12, body)
        .await
        .unwrap();
    assert_eq!(crate::helpers::code(&reply), "0000", "{}", reply.body);
    wait_sealed(&app).await;

    let stored = stored_text(&app.db, &["dispensation", "audit"]).await;
    assert!(
        stored.contains("ConsultationAccreditation"),
        "the scan reads the audit"
    );
    let logs = captured_logs();
    assert!(logs.contains("DemandeDroits"), "the logs were captured");
    for value in identities() {
        assert!(
            !stored.contains(&value),
            "{value} found in dispensation or audit"
        );
        assert!(!logs.contains(&value), "{value} found in the logs");
    }
}

/// Every row of every table of `schemas`, as text (bytea as hex, as PostgreSQL prints it): what a
/// scan for identity reads, tables added later included.
pub(crate) async fn stored_text(db: &sqlx::PgPool, schemas: &[&str]) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
          WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .bind(schemas)
    .fetch_all(db)
    .await
    .unwrap();
    assert!(tables.len() >= 2 * schemas.len(), "{tables:?}");
    let mut stored = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(db)
            .await
            .unwrap();
        stored.push_str(&rows.join("\n"));
    }
    stored
}
