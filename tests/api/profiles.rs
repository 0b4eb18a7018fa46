//! Certificate profiles and structure binding (spec/security.md), with the dev PKI's real-shaped
//! cards over real TLS: a CPS card declares its pharmacy, checked in the professional directory
//! (8004); a CPE card carries it (8001 on another); the operator may trust declarations; an ORG
//! certificate alone serves ServicesOuverts only.

use visiodroits::soap::SoapVersion;
use visiodroits_devkit::pki::{CPE_PS, CPS_RPPS, DEV_FINESS, OTHER_FINESS};

use crate::helpers::{code, first, new_id, services_on, wait_sealed, TestApp};
use crate::rights::{ask, Rights};
use crate::tarification::{prescription, send, tarification_as, LINES};

fn cps() -> String {
    format!("8{CPS_RPPS}")
}

fn rights(ps: &str, structure: Option<&str>) -> Rights {
    Rights {
        ps_id: ps.into(),
        structure: structure.map(str::to_string),
        nir: "1790312345678".into(),
        key: "04".into(),
        birth: "19790301".into(),
        ..Rights::default()
    }
}

/// The audit's (operation, code, profile, structure origin, structure) rows, in order.
async fn audited(
    app: &TestApp,
) -> Vec<(
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
)> {
    sqlx::query_as(
        "SELECT operation, code, profil_certificat, origine_structure, numero_structure
           FROM audit.journal WHERE operation <> 'handshake' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_real_cps_card_declares_its_pharmacy_and_the_directory_confirms_it() {
    let app = TestApp::spawn().await;
    // Rights, then a quote and a binding PEC on the dossier, with the card as it really is.
    let reply = ask(&app, Some("cps"), &rights(&cps(), Some(DEV_FINESS))).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let dossier = first(&reply.body, "numero_dossier").unwrap();
    for mode in ["DEVIS", "PEC"] {
        let body = tarification_as(
            &cps(),
            DEV_FINESS,
            &new_id(),
            &dossier,
            mode,
            &prescription(1, LINES, ""),
        );
        let reply = send(&app, Some("cps"), body).await;
        assert_eq!(code(&reply), "0000", "{mode}: {}", reply.body);
    }
    // Another pharmacy, where this pharmacist does not exercise: 8004, for rights and for
    // tarification alike, before anything of the dossier is read.
    let reply = ask(&app, Some("cps"), &rights(&cps(), Some(OTHER_FINESS))).await;
    assert_eq!(
        (reply.status.as_u16(), code(&reply).as_str()),
        (400, "8004"),
        "{}",
        reply.body
    );
    let body = tarification_as(
        &cps(),
        OTHER_FINESS,
        &new_id(),
        &dossier,
        "DEVIS",
        &prescription(2, LINES, ""),
    );
    assert_eq!(code(&send(&app, Some("cps"), body).await), "8004");
    // The card carries no structure: the message must name one.
    let reply = ask(&app, Some("cps"), &rights(&cps(), None)).await;
    assert_eq!(code(&reply), "6000");
    assert!(
        reply.body.contains("ps/numero_structure: obligatoire"),
        "{}",
        reply.body
    );
    // Another professional than the card's: 8001.
    let reply = ask(&app, Some("cps"), &rights("810001234565", Some(DEV_FINESS))).await;
    assert_eq!(code(&reply), "8001");

    wait_sealed(&app).await;
    let rows = audited(&app).await;
    let expected = |op: &str, c: &str| {
        (
            op.to_string(),
            c.to_string(),
            Some("CPS".to_string()),
            Some("annuaire".to_string()),
        )
    };
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.0.clone(), r.1.clone(), r.2.clone(), r.3.clone()))
        .collect();
    assert_eq!(
        &got[..5],
        &[
            expected("DemandeDroits", "0000"),
            expected("DldTar", "0000"),
            expected("DldTar", "0000"),
            expected("DemandeDroits", "8004"),
            expected("DldTar", "8004"),
        ],
        "{rows:?}"
    );
    assert_eq!(rows[3].4.as_deref(), Some(OTHER_FINESS), "{rows:?}");
    assert_eq!(rows[5].2.as_deref(), Some("CPS"), "{rows:?}");
}

#[tokio::test]
async fn a_cpe_card_carries_its_structure() {
    let app = TestApp::spawn().await;
    for structure in [Some(DEV_FINESS), None] {
        let reply = ask(&app, Some("cpe"), &rights(CPE_PS, structure)).await;
        assert_eq!(code(&reply), "0000", "{structure:?}: {}", reply.body);
    }
    let reply = ask(&app, Some("cpe"), &rights(CPE_PS, Some(OTHER_FINESS))).await;
    assert_eq!(code(&reply), "8001", "{}", reply.body);
    let dossier: (String,) = sqlx::query_as("SELECT structure FROM dispensation.dossier LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        dossier.0, DEV_FINESS,
        "the dossier is bound to the OU's structure"
    );
    wait_sealed(&app).await;
    let rows = audited(&app).await;
    assert!(
        rows[..2].iter().all(|r| r.2.as_deref() == Some("CPE")
            && r.3.as_deref() == Some("certificat")
            && r.4.as_deref() == Some(DEV_FINESS)),
        "{rows:?}"
    );
}

#[tokio::test]
async fn declared_mode_trusts_the_declaration_and_says_so_in_the_audit() {
    let app = TestApp::spawn_with(|v| {
        v.insert("VD_STRUCTURE_CHECK".into(), "declared".into());
    })
    .await;
    let reply = ask(&app, Some("cps"), &rights(&cps(), Some(OTHER_FINESS))).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    wait_sealed(&app).await;
    let rows = audited(&app).await;
    assert_eq!(rows[0].3.as_deref(), Some("declaree"), "{rows:?}");
    assert_eq!(rows[0].4.as_deref(), Some(OTHER_FINESS), "{rows:?}");
}

#[tokio::test]
async fn without_a_directory_cps_cards_are_refused_and_readiness_says_why() {
    let app = TestApp::spawn().await;
    sqlx::query("DELETE FROM annuaire.chargement")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM annuaire.activite")
        .execute(&app.db)
        .await
        .unwrap();
    let reply = ask(&app, Some("cps"), &rights(&cps(), Some(DEV_FINESS))).await;
    assert_eq!(code(&reply), "8004", "{}", reply.body);
    let (status, body) = app.ops_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("directory: none loaded"), "{body}");
    // A CPE card does not need the directory.
    let reply = ask(&app, Some("cpe"), &rights(CPE_PS, Some(DEV_FINESS))).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
}

#[tokio::test]
async fn an_org_certificate_alone_serves_services_ouverts_only() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("org")).await.unwrap();
    let reply = services_on(&mut conn).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let reply = ask(&app, Some("org"), &rights("810001234565", Some(DEV_FINESS))).await;
    assert_eq!(code(&reply), "8002", "{}", reply.body);
}

#[tokio::test]
async fn an_older_cps2ter_card_with_a_profession_label_in_ou_is_a_cps_card() {
    use crate::trust::{config_for, identity, issue, load};
    let app = TestApp::spawn().await;
    let (inter, inter_key) = load("ca/intermediate");
    // The OU is a BMPString, as older card CAs wrote names.
    let name = visiodroits_wire::der::name(&[
        &[("2.5.4.6", visiodroits::tls::der::PRINTABLE_STRING, "FR")],
        &[("2.5.4.11", visiodroits::tls::der::BMP_STRING, "Pharmacien")],
        &[(
            "2.5.4.3",
            visiodroits::tls::der::PRINTABLE_STRING,
            "810001234565",
        )],
    ]);
    let name = openssl::x509::X509Name::from_der(&name).unwrap();
    let (cert, key) = issue(&name, (&inter, &inter_key), false, 86_400);
    let config = config_for(
        identity(&[&cert, &inter], &key),
        visiodroits_client::Versions::Both,
    );
    let mut conn = visiodroits_client::SoapConnection::connect(app.addr(), "localhost", config)
        .await
        .unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            rights("810001234565", Some(DEV_FINESS)).xml(SoapVersion::V12, &new_id()),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    wait_sealed(&app).await;
    let rows = audited(&app).await;
    assert_eq!(
        (rows[0].2.as_deref(), rows[0].3.as_deref()),
        (Some("CPS2TER"), Some("annuaire")),
        "{rows:?}"
    );
    let subject: (String,) = sqlx::query_as("SELECT cert_sujet FROM audit.journal LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(subject.0, "C=FR,OU=Pharmacien,CN=810001234565");
}
