//! DemandeDroits → FournitDroits over TLS with the dev PKI and the imported fixtures
//! (tests/fixtures/droits.csv).

use visiodroits::soap::SoapVersion;
use visiodroits_devkit::pki::{DEV_FINESS, DEV_RPPS, OTHER_FINESS};

use crate::helpers::{all, assert_valid, code, envelope, first, new_id, TestApp};

/// A `demande_droits`, Paul MARTIN's by default, by the dev pharmacist.
#[derive(Clone)]
pub(crate) struct Rights {
    pub(crate) ps_id: String,
    pub(crate) structure: Option<String>,
    pub(crate) nir: String,
    pub(crate) key: String,
    pub(crate) birth: String,
    pub(crate) rank: String,
    pub(crate) amc: String,
    pub(crate) adherent: Option<String>,
    pub(crate) date: String,
    pub(crate) domains: Vec<String>,
    /// Extra markup appended inside the request (7005 tests).
    pub(crate) extra: String,
}

impl Default for Rights {
    fn default() -> Self {
        Rights {
            ps_id: format!("8{DEV_RPPS}"),
            structure: Some(DEV_FINESS.to_string()),
            nir: "1850578006084".into(),
            key: "91".into(),
            birth: "19850512".into(),
            rank: "1".into(),
            amc: "12345678".into(),
            adherent: None,
            date: "2026-03-15".into(),
            domains: vec!["PHAR".into()],
            extra: String::new(),
        }
    }
}

impl Rights {
    pub(crate) fn xml(&self, version: SoapVersion, request_id: &str) -> String {
        let structure = self
            .structure
            .as_ref()
            .map(|s| format!("<vd:numero_structure>{s}</vd:numero_structure>"))
            .unwrap_or_default();
        let adherent = self
            .adherent
            .as_ref()
            .map(|a| format!("<vd:numero_adherent>{a}</vd:numero_adherent>"))
            .unwrap_or_default();
        let domains: String = self
            .domains
            .iter()
            .map(|d| format!("<vd:domaine>{d}</vd:domaine>"))
            .collect();
        envelope(
            version,
            &format!(
                "<vd:demande_droits><vd:entete><vd:id_logiciel>TEST-LGO</vd:id_logiciel><vd:version_logiciel>1.0</vd:version_logiciel><vd:id_requete>{request_id}</vd:id_requete><vd:horodatage>2026-03-15T10:00:00+01:00</vd:horodatage></vd:entete>\
                 <vd:ps><vd:identifiant_ps>{}</vd:identifiant_ps>{structure}</vd:ps>\
                 <vd:beneficiaire><vd:nir>{}</vd:nir><vd:cle_nir>{}</vd:cle_nir><vd:date_naissance>{}</vd:date_naissance><vd:rang_gemellaire>{}</vd:rang_gemellaire></vd:beneficiaire>\
                 <vd:amc><vd:numero_amc>{}</vd:numero_amc>{adherent}</vd:amc><vd:date_reference>{}</vd:date_reference><vd:domaines>{domains}</vd:domaines>{}</vd:demande_droits>",
                self.ps_id, self.nir, self.key, self.birth, self.rank, self.amc, self.date, self.extra
            ),
        )
    }
}

/// Sends `req` with the dev certificate `cert` and returns the reply (schema-checked).
pub(crate) async fn ask(
    app: &TestApp,
    cert: Option<&str>,
    req: &Rights,
) -> visiodroits_client::Reply {
    let mut conn = app.connect(cert).await.unwrap();
    let reply = conn
        .soap(SoapVersion::V12, req.xml(SoapVersion::V12, &new_id()))
        .await
        .unwrap();
    assert_valid(&reply, SoapVersion::V12);
    reply
}

fn with(f: impl FnOnce(&mut Rights)) -> Rights {
    let mut r = Rights::default();
    f(&mut r);
    r
}

#[tokio::test]
async fn rights_are_returned_with_a_dossier() {
    let app = TestApp::spawn().await;
    let reply = ask(&app, Some("valid"), &Rights::default()).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let dossier = first(&reply.body, "numero_dossier").unwrap();
    let uuid = uuid::Uuid::parse_str(&dossier).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert!(first(&reply.body, "expiration").is_some());
    assert_eq!(
        first(&reply.body, "numero_contrat").as_deref(),
        Some("C-100")
    );
    assert_eq!(
        first(&reply.body, "numero_adherent").as_deref(),
        Some("A100")
    );
    assert_eq!(first(&reply.body, "responsable").as_deref(), Some("true"));
    assert_eq!(
        first(&reply.body, "code_garantie").as_deref(),
        Some("G-PHAR-100")
    );
    assert_eq!(first(&reply.body, "priorite").as_deref(), Some("01"));
    assert_eq!(first(&reply.body, "reseau").as_deref(), Some("SP"));
    assert_eq!(
        all(&reply.body, "code")[1..].to_vec(),
        vec!["PHAR", "DEF", "LPP", "PH1", "PH2", "PH4", "PH7"],
        "domain then its prestations"
    );
    assert!(reply.body.contains("<vd:code>LPP</vd:code><vd:unite>PO</vd:unite><vd:valeur>100.00</vd:valeur><vd:plafond_annuel>300.00</vd:plafond_annuel>"), "{}", reply.body);

    // The dossier exists on both sides, bound to the certificate's structure, without identity.
    let (amc, structure, status): (String, String, String) = sqlx::query_as(
        "SELECT numero_amc, structure, statut FROM dispensation.dossier WHERE numero_dossier = $1",
    )
    .bind(uuid)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (amc.as_str(), structure.as_str(), status.as_str()),
        ("12345678", DEV_FINESS, "OUVERT")
    );
    let paired: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identite.appariement WHERE numero_dossier = $1")
            .bind(uuid)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(paired, 1);
    let audited: (String, String) =
        sqlx::query_as("SELECT operation, code FROM audit.journal WHERE numero_dossier = $1")
            .bind(uuid)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(audited, ("DemandeDroits".to_string(), "0000".to_string()));
}

#[tokio::test]
async fn each_business_code() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, Rights, &str)> = vec![
        ("unknown AMC", with(|r| r.amc = "11111111".into()), "6020"),
        (
            "rights service closed",
            with(|r| {
                r.amc = "55555555".into();
                r.nir = "1950633222111".into();
                r.key = "48".into();
                r.birth = "19950606".into();
            }),
            "6021",
        ),
        (
            "nobody, no adherent number",
            with(|r| r.birth = "19850513".into()),
            "6005",
        ),
        (
            "nobody, with an adherent number",
            with(|r| {
                r.birth = "19850513".into();
                r.adherent = Some("A100".into());
            }),
            "6001",
        ),
        (
            "rights closed at the date",
            with(|r| {
                r.nir = "1660275888999".into();
                r.key = "64".into();
                r.birth = "19660202".into();
            }),
            "6002",
        ),
        (
            "domain not covered",
            with(|r| r.domains = vec!["DENT".into()]),
            "6003",
        ),
        (
            "identity and dispensing data mixed",
            with(|r| r.extra = "<vd:prescription><vd:ligne/></vd:prescription>".into()),
            "7005",
        ),
    ];
    for (what, req, expected) in cases {
        let reply = ask(&app, Some("valid"), &req).await;
        assert_eq!(reply.status, 200, "{what}");
        assert_eq!(code(&reply), expected, "{what}: {}", reply.body);
        assert!(
            first(&reply.body, "numero_dossier").is_none(),
            "{what}: no dossier"
        );
    }
    let dossiers: i64 = sqlx::query_scalar("SELECT count(*) FROM dispensation.dossier")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(dossiers, 0, "no business error issues a dossier");
    // Every exchange left an audit row with its code.
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT code FROM audit.journal WHERE operation = 'DemandeDroits' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        codes,
        vec!["6020", "6021", "6005", "6001", "6002", "6003", "7005"]
    );
}

#[tokio::test]
async fn every_faulty_field_is_named_in_6000() {
    let app = TestApp::spawn().await;
    let req = with(|r| {
        r.key = "92".into();
        r.birth = "1985051".into();
        r.rank = "0".into();
        r.amc = "12AB".into();
        r.date = "15/03/2026".into();
        r.domains = vec!["phar".into()];
    });
    let reply = ask(&app, Some("valid"), &req).await;
    assert_eq!(code(&reply), "6000");
    let details = all(&reply.body, "detail");
    for field in [
        "beneficiaire/cle_nir: clé NIR invalide",
        "beneficiaire/date_naissance:",
        "beneficiaire/rang_gemellaire:",
        "amc/numero_amc:",
        "date_reference:",
        "domaines/domaine[1]:",
    ] {
        assert!(
            details.iter().any(|d| d.starts_with(field)),
            "{field} missing from {details:?}"
        );
    }
    assert!(
        !reply.body.contains("1850578006084"),
        "the NIR is never echoed"
    );
    let bad_nir = ask(
        &app,
        Some("valid"),
        &with(|r| r.nir = "18505780060X4".into()),
    )
    .await;
    assert_eq!(
        all(&bad_nir.body, "detail"),
        vec!["beneficiaire/nir: 13 caractères attendus (chiffres, 2A ou 2B en positions 6-7)"]
    );
}

#[tokio::test]
async fn corsican_nirs_lunar_dates_insured_nirs_adherent_fallback_and_twins() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, Rights, &str)> = vec![
        (
            "Corsica 2A",
            with(|r| {
                r.nir = "192062A123456".into();
                r.key = "94".into();
                r.birth = "19920615".into();
            }),
            "G-PHAR-200",
        ),
        (
            "Corsica 2B, lower case",
            with(|r| {
                r.nir = "286112b654321".into();
                r.key = "73".into();
                r.birth = "19861120".into();
            }),
            "G-PHAR-201",
        ),
        (
            "lunar birth date",
            with(|r| {
                r.nir = "1870399123123".into();
                r.key = "16".into();
                r.birth = "19870035".into();
            }),
            "G-PHAR-300",
        ),
        (
            "child found through the father's NIR",
            with(|r| r.birth = "20150310".into()),
            "G-PHAR-100",
        ),
        (
            "child found through the mother's NIR",
            with(|r| {
                r.nir = "2870699555444".into();
                r.key = "22".into();
                r.birth = "20150310".into();
            }),
            "G-PHAR-100",
        ),
        (
            "adherent fallback",
            with(|r| {
                r.nir = "1760175333499".into();
                r.key = format!("{:02}", 97 - 1760175333499u64 % 97);
                r.birth = "19760101".into();
                r.adherent = Some("ADH-500".into());
            }),
            "G-PHAR-500",
        ),
        (
            "twin of rank 1",
            with(|r| {
                r.nir = "2880799111222".into();
                r.key = "48".into();
                r.birth = "20180420".into();
            }),
            "G-PHAR-401",
        ),
        (
            "twin of rank 2",
            with(|r| {
                r.nir = "2880799111222".into();
                r.key = "48".into();
                r.birth = "20180420".into();
                r.rank = "2".into();
            }),
            "G-PHAR-402",
        ),
    ];
    for (what, req, guarantee) in cases {
        let reply = ask(&app, Some("valid"), &req).await;
        assert_eq!(code(&reply), "0000", "{what}: {}", reply.body);
        assert_eq!(
            first(&reply.body, "code_garantie").as_deref(),
            Some(guarantee),
            "{what}"
        );
    }
    // A third twin rank does not exist.
    let reply = ask(
        &app,
        Some("valid"),
        &with(|r| {
            r.nir = "2880799111222".into();
            r.key = "48".into();
            r.birth = "20180420".into();
            r.rank = "3".into();
        }),
    )
    .await;
    assert_eq!(code(&reply), "6005");
}

#[tokio::test]
async fn domains_follow_the_reference_date_and_the_request() {
    let app = TestApp::spawn().await;
    // OPTI is open until June.
    let reply = ask(
        &app,
        Some("valid"),
        &with(|r| r.domains = vec!["PHAR".into(), "OPTI".into()]),
    )
    .await;
    assert_eq!(code(&reply), "0000");
    assert_eq!(
        all(&reply.body, "code_garantie"),
        vec!["G-OPTI-100", "G-PHAR-100"]
    );
    let reply = ask(
        &app,
        Some("valid"),
        &with(|r| {
            r.domains = vec!["PHAR".into(), "OPTI".into()];
            r.date = "2026-09-01".into();
        }),
    )
    .await;
    assert_eq!(code(&reply), "0000");
    assert_eq!(
        all(&reply.body, "code_garantie"),
        vec!["G-PHAR-100"],
        "OPTI closed in September"
    );
    let reply = ask(
        &app,
        Some("valid"),
        &with(|r| {
            r.domains = vec!["OPTI".into()];
            r.date = "2026-09-01".into();
        }),
    )
    .await;
    assert_eq!(
        code(&reply),
        "6003",
        "only OPTI requested, closed at that date"
    );
    // Two domains requested, one covered.
    let reply = ask(
        &app,
        Some("valid"),
        &with(|r| r.domains = vec!["DENT".into(), "PHAR".into()]),
    )
    .await;
    assert_eq!(code(&reply), "0000");
    assert_eq!(all(&reply.body, "code_garantie"), vec!["G-PHAR-100"]);
}

#[tokio::test]
async fn the_ps_of_the_message_must_be_the_certificate_s() {
    let app = TestApp::spawn().await;
    for (what, req) in [
        ("another PS id", with(|r| r.ps_id = "810001234573".into())),
        (
            "another structure",
            with(|r| r.structure = Some(OTHER_FINESS.into())),
        ),
    ] {
        let reply = ask(&app, Some("valid"), &req).await;
        assert_eq!(reply.status, 400, "{what}");
        assert_eq!(code(&reply), "8001", "{what}");
        assert!(reply.body.contains("vd:Acces"), "{what}");
    }
    // Another pharmacy's pharmacist asking in her own name is fine, bound to her structure.
    let reply = ask(
        &app,
        Some("other-structure"),
        &with(|r| {
            r.ps_id = "810001234615".into();
            r.structure = Some(OTHER_FINESS.into());
        }),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let structure: String = sqlx::query_scalar("SELECT structure FROM dispensation.dossier")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(structure, OTHER_FINESS);
}

#[tokio::test]
async fn a_client_certificate_is_required_unless_configured_otherwise() {
    let app = TestApp::spawn().await;
    let reply = ask(&app, None, &Rights::default()).await;
    assert_eq!(reply.status, 400);
    assert_eq!(code(&reply), "8002");

    let app = TestApp::spawn_with(|v| {
        v.insert("VD_RIGHTS_CLIENT_CERT".into(), "optional".into());
    })
    .await;
    let reply = ask(&app, None, &Rights::default()).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let structure: String = sqlx::query_scalar("SELECT structure FROM dispensation.dossier")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        structure, DEV_FINESS,
        "bound to the structure declared in the message"
    );
    let reply = ask(&app, None, &with(|r| r.structure = None)).await;
    assert_eq!(code(&reply), "6000");
    assert!(all(&reply.body, "detail")[0].starts_with("ps/numero_structure"));
}

#[tokio::test]
async fn soap_1_1_rights_exchange() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V11,
            Rights::default().xml(SoapVersion::V11, &new_id()),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    assert_valid(&reply, SoapVersion::V11);
}
