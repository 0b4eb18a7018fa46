//! ServicesOuverts → FournitServices, from the database.

use base64::Engine;
use visiodroits::soap::SoapVersion;

use crate::helpers::{all, assert_valid, code, first, new_id, services_request, shared, TestApp};

#[tokio::test]
async fn lists_the_hosted_amcs_their_services_and_the_encryption_certificate() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_valid(&reply, SoapVersion::V12);
    assert_eq!(
        all(&reply.body, "numero_amc"),
        vec!["12345678", "55555555", "987654321"]
    );
    assert_eq!(
        all(&reply.body, "nom")[..2],
        [
            "MUTUELLE DEMO".to_string(),
            "Support tiers payant".to_string()
        ]
    );
    // MUTUELLE DEMO opens everything; encrypted tarification because this server holds the key.
    let first_amc = reply.body.split("</vd:amc>").next().unwrap();
    assert_eq!(
        all(first_amc, "code"),
        vec![
            "0000",
            "DROITS",
            "TARIFICATION",
            "TARIFICATION_CHIFFREE",
            "ANNULATION",
            "CONSULTATION"
        ],
        "{first_amc}"
    );
    assert_eq!(
        all(first_amc, "actif"),
        vec!["true", "true", "true", "true", "true"],
        "{first_amc}"
    );
    assert_eq!(first(first_amc, "delai_grace_jours").as_deref(), Some("3"));
    // The certificate that signs PEC proofs.
    let signing = openssl::x509::X509::from_pem(
        &std::fs::read(shared().pki_path("signing/signing.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        first(first_amc, "certificat_signature").unwrap(),
        base64::engine::general_purpose::STANDARD.encode(signing.to_der().unwrap())
    );
    let cert_pem = std::fs::read(shared().pki_path("ttp/ttp.pem")).unwrap();
    let der = openssl::x509::X509::from_pem(&cert_pem)
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(
        first(first_amc, "certificat_chiffrement").unwrap(),
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    // PREVOYANCE EXEMPLE: rights only, so no encrypted tarification and no certificate.
    let second_amc = reply.body.split("</vd:amc>").nth(2).unwrap();
    assert_eq!(
        all(second_amc, "actif"),
        vec!["true", "false", "false", "false", "false"]
    );
    assert!(first(second_amc, "certificat_chiffrement").is_none());
    assert!(first(second_amc, "delai_grace_jours").is_none());
}

#[tokio::test]
async fn encrypted_tarification_is_closed_without_the_key() {
    let app = TestApp::spawn_with(|v| {
        v.remove("VD_TTP_KEY");
    })
    .await;
    let mut conn = app.connect(None).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), Some("12345678")),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    assert_eq!(
        all(&reply.body, "actif"),
        vec!["true", "true", "false", "true", "true"]
    );
    assert!(first(&reply.body, "certificat_chiffrement").is_none());
}

#[tokio::test]
async fn one_amc_by_number_and_unknown_amc_is_6020() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), Some("987654321")),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    assert_eq!(all(&reply.body, "numero_amc"), vec!["987654321"]);

    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), Some("11111111")),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(code(&reply), "6020", "{}", reply.body);
    assert!(first(&reply.body, "amc").is_none());
    assert_valid(&reply, SoapVersion::V12);
}

#[tokio::test]
async fn faulty_fields_are_each_named_in_a_6000_response() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let body = crate::helpers::envelope(
        SoapVersion::V12,
        "<vd:demande_services><vd:entete><vd:id_logiciel>X</vd:id_logiciel><vd:id_requete>not-a-uuid</vd:id_requete></vd:entete><vd:numero_amc>12AB</vd:numero_amc></vd:demande_services>",
    );
    let reply = conn.soap(SoapVersion::V12, body).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(code(&reply), "6000");
    let details = all(&reply.body, "detail");
    for field in ["entete/version_logiciel", "entete/id_requete", "numero_amc"] {
        assert!(
            details.iter().any(|d| d.starts_with(&format!("{field}:"))),
            "{field} must be named: {details:?}"
        );
    }
    assert_valid(&reply, SoapVersion::V12);
}

#[tokio::test]
async fn answers_reflect_the_database_at_once() {
    let app = TestApp::spawn().await;
    sqlx::query("UPDATE identite.amc_service SET actif = false WHERE numero_amc = '12345678' AND service = 'TARIFICATION'")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE identite.amc SET nom = 'MUTUELLE RENOMMEE' WHERE numero_amc = '12345678'")
        .execute(&app.db)
        .await
        .unwrap();
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), Some("12345678")),
        )
        .await
        .unwrap();
    assert_eq!(
        first(&reply.body, "nom").as_deref(),
        Some("MUTUELLE RENOMMEE")
    );
    // Tarification closed: encrypted tarification closed with it, and no certificate published.
    assert_eq!(
        all(&reply.body, "actif"),
        vec!["true", "false", "false", "true", "true"]
    );
    assert!(first(&reply.body, "certificat_chiffrement").is_none());
}
