//! DldTar and AnnulationTar over TLS: amounts, accreditations, ceilings, retries, codes,
//! encrypted prescriptions. Fixture beneficiary B-TARIF's PHAR rules: PH7 PO 100 %, PH4 TA 50 %,
//! PH2 FO 1.50, DEF TA 30 %, LPP PO 150 % with an annual ceiling of 100.00.

use std::process::Command;

use base64::Engine;
use visiodroits::soap::SoapVersion;
use visiodroits_client::Reply;
use visiodroits_devkit::pki::{DEV_FINESS, DEV_RPPS, OTHER_FINESS};

use crate::helpers::{
    all, assert_valid, code, envelope, first, new_id, shared, waiting_on_locks, TestApp,
};
use crate::rights::{ask, Rights};

/// Gets a dossier for B-TARIF from the rights exchange.
pub(crate) async fn dossier(app: &TestApp, cert: &str, ps: &str, structure: &str) -> String {
    let req = Rights {
        ps_id: ps.into(),
        structure: Some(structure.into()),
        nir: "1790312345678".into(),
        key: "04".into(),
        birth: "19790301".into(),
        ..Rights::default()
    };
    let reply = ask(app, Some(cert), &req).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    first(&reply.body, "numero_dossier").unwrap()
}

/// One line: (id, prestation, quantity, unit price, billed, base, rate, amo).
type L<'a> = (u32, &'a str, u32, &'a str, &'a str, &'a str, u32, &'a str);

/// The hand-computed prescription: PH7, PH4, PH2, PH1 (DEF) and an LPP line.
pub(crate) const LINES: &[L<'static>] = &[
    (1, "PH7", 2, "10.00", "20.00", "20.00", 65, "13.00"),
    (2, "PH4", 1, "8.00", "8.00", "8.00", 30, "2.40"),
    (3, "PH2", 1, "5.00", "5.00", "5.00", 15, "0.75"),
    (4, "PH1", 1, "3.33", "3.33", "3.33", 100, "3.33"),
    (5, "LPP", 1, "150.00", "150.00", "100.00", 60, "60.00"),
];

pub(crate) fn prescription(id: u32, lines: &[L<'_>], extra: &str) -> String {
    let lines: String = lines
        .iter()
        .map(|(i, c, q, pu, f, br, t, ro)| {
            let lpp = if *c == "LPP" { "<vd:code_lpp>1234567</vd:code_lpp>" } else { "<vd:code_cip>3400930000001</vd:code_cip>" };
            format!(
                "<vd:ligne><vd:id_ligne>{i}</vd:id_ligne><vd:code_prestation>{c}</vd:code_prestation><vd:date_execution>2026-03-15</vd:date_execution><vd:quantite>{q}</vd:quantite><vd:prix_unitaire>{pu}</vd:prix_unitaire><vd:montant_facture>{f}</vd:montant_facture><vd:base_remboursement>{br}</vd:base_remboursement><vd:taux_ro>{t}</vd:taux_ro><vd:montant_ro>{ro}</vd:montant_ro>{lpp}</vd:ligne>"
            )
        })
        .collect();
    format!(
        "<vd:prescription><vd:id_prescription>{id}</vd:id_prescription><vd:date_prescription>2026-03-10</vd:date_prescription><vd:prescripteur>123456789</vd:prescripteur><vd:date_facturation>2026-03-15</vd:date_facturation>{lines}{extra}</vd:prescription>"
    )
}

pub(crate) fn head(request_id: &str) -> String {
    format!("<vd:entete><vd:id_logiciel>TEST-LGO</vd:id_logiciel><vd:version_logiciel>1.0</vd:version_logiciel><vd:id_requete>{request_id}</vd:id_requete></vd:entete>")
}

pub(crate) fn ps_block(ps: &str, structure: &str) -> String {
    format!("<vd:ps><vd:identifiant_ps>{ps}</vd:identifiant_ps><vd:numero_structure>{structure}</vd:numero_structure><vd:nom>PHARMACIE DEV</vd:nom></vd:ps>")
}

pub(crate) fn valid_ps() -> String {
    format!("8{DEV_RPPS}")
}

/// A `demande_tarification` with a clear or encrypted payload.
pub(crate) fn tarification(request_id: &str, dossier: &str, mode: &str, payload: &str) -> String {
    tarification_as(&valid_ps(), DEV_FINESS, request_id, dossier, mode, payload)
}

/// A `demande_tarification` from the professional `ps` declaring `structure`.
pub(crate) fn tarification_as(
    ps: &str,
    structure: &str,
    request_id: &str,
    dossier: &str,
    mode: &str,
    payload: &str,
) -> String {
    envelope(
        SoapVersion::V12,
        &format!(
            "<vd:demande_tarification>{}{}<vd:numero_dossier>{dossier}</vd:numero_dossier><vd:mode>{mode}</vd:mode>{payload}</vd:demande_tarification>",
            head(request_id),
            ps_block(ps, structure)
        ),
    )
}

pub(crate) fn cancellation(
    request_id: &str,
    dossier: &str,
    accreditation: &str,
    prescription: u32,
) -> String {
    envelope(
        SoapVersion::V12,
        &format!(
            "<vd:demande_annulation>{}{}<vd:numero_dossier>{dossier}</vd:numero_dossier><vd:numero_accreditation>{accreditation}</vd:numero_accreditation><vd:id_prescription>{prescription}</vd:id_prescription></vd:demande_annulation>",
            head(request_id),
            ps_block(&valid_ps(), DEV_FINESS)
        ),
    )
}

pub(crate) async fn send(app: &TestApp, cert: Option<&str>, body: String) -> Reply {
    let mut conn = app.connect(cert).await.unwrap();
    let reply = conn.soap(SoapVersion::V12, body).await.unwrap();
    assert_valid(&reply, SoapVersion::V12);
    reply
}

/// (id_ligne, montant_amc, reste_a_charge, code_ligne) of each line.
pub(crate) fn lines_of(reply: &Reply) -> Vec<(String, String, String, String)> {
    reply
        .body
        .split("<vd:ligne>")
        .skip(1)
        .map(|l| {
            (
                first(l, "id_ligne").unwrap(),
                first(l, "montant_amc").unwrap(),
                first(l, "reste_a_charge").unwrap(),
                first(l, "code_ligne").unwrap(),
            )
        })
        .collect()
}

pub(crate) fn expected_lines(
    lpp_amc: &str,
    lpp_code: &str,
) -> Vec<(String, String, String, String)> {
    [
        ("1", "7.00", "0.00", "000"),
        ("2", "2.80", "2.80", "000"),
        ("3", "1.50", "2.75", "000"),
        ("4", "0.00", "0.00", "000"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .chain(std::iter::once((
        "5".to_string(),
        lpp_amc.to_string(),
        format!("{:.2}", 90.0 - lpp_amc.parse::<f64>().unwrap()),
        lpp_code.to_string(),
    )))
    .collect()
}

pub(crate) async fn consumed(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(consomme), 0)::bigint FROM dispensation.consommation")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn devis_then_pec_then_cancellation_with_hand_computed_amounts() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let payload = prescription(41, LINES, "");

    // DEVIS: amounts, no accreditation, nothing consumed.
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "DEVIS", &payload),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(first(&reply.body, "mode").as_deref(), Some("DEVIS"));
    assert_eq!(lines_of(&reply), expected_lines("90.00", "000"));
    for (name, value) in [
        ("total_facture", "186.33"),
        ("total_ro", "79.48"),
        ("total_amc", "101.30"),
        ("total_reste_a_charge", "5.55"),
    ] {
        assert_eq!(first(&reply.body, name).as_deref(), Some(value), "{name}");
    }
    assert!(first(&reply.body, "numero_accreditation").is_none());
    assert_eq!(
        all(&reply.body, "code_garantie")[..1],
        ["G-PHAR-800".to_string()]
    );
    assert_eq!(consumed(&app).await, 0, "a quote consumes nothing");

    // PEC: the same amounts, an accreditation, the LPP ceiling consumed.
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &payload),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(lines_of(&reply), expected_lines("90.00", "000"));
    let accreditation = first(&reply.body, "numero_accreditation").unwrap();
    assert!(
        regex::Regex::new("^VDM[0-9A-HJKMNP-TV-Z]{12}1$")
            .unwrap()
            .is_match(&accreditation),
        "{accreditation}"
    );
    assert_eq!(consumed(&app).await, 9000);

    // A second PEC for the same prescription: 7009.
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &payload),
    )
    .await;
    assert_eq!(code(&reply), "7009");
    assert_eq!(
        first(&reply.body, "numero_dossier").as_deref(),
        Some(d.as_str()),
        "echoed"
    );

    // Another prescription meets the ceiling: 10.00 left of 100.00.
    let lpp_only = prescription(42, &LINES[4..], "");
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "DEVIS", &lpp_only),
    )
    .await;
    assert_eq!(lines_of(&reply)[0].1, "10.00");
    assert_eq!(lines_of(&reply)[0].3, "L02");

    // Cancellation gives the consumption back, once.
    let reply = send(
        &app,
        Some("valid"),
        cancellation(&new_id(), &d, &accreditation, 41),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(first(&reply.body, "annulee").as_deref(), Some("true"));
    assert_eq!(
        first(&reply.body, "numero_accreditation").as_deref(),
        Some(accreditation.as_str())
    );
    assert_eq!(consumed(&app).await, 0);
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "DEVIS", &lpp_only),
    )
    .await;
    assert_eq!(lines_of(&reply)[0].1, "90.00");
    let reply = send(
        &app,
        Some("valid"),
        cancellation(&new_id(), &d, &accreditation, 41),
    )
    .await;
    assert_eq!(code(&reply), "7010", "already cancelled");
    assert_eq!(first(&reply.body, "annulee").as_deref(), Some("false"));
    // After the cancellation, a new PEC of the prescription is accepted.
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &payload),
    )
    .await;
    assert_eq!(code(&reply), "0000");

    // The trusted third party, and only it, sees the person behind the dossier.
    let url = visiodroits::config::Secret::new(shared().admin_url(&app.db_name));
    let report = visiodroits::cli::pairing::report(&url, &d).await.unwrap();
    assert!(report.contains("beneficiary: TARDIEU THEO"), "{report}");
    assert!(report.contains(&format!("PEC prescription 41: billed 186.33, AMC 101.30, accreditation {accreditation}, cancelled")), "{report}");
    assert_eq!(
        report.matches("prescription 41").count(),
        3,
        "DEVIS, cancelled PEC, new PEC: {report}"
    );
}

#[tokio::test]
async fn each_refusal_code() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let payload = prescription(7, &LINES[..1], "");
    let ok = |id: &str| tarification(id, &d, "PEC", &payload);

    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(
                    &new_id(),
                    &uuid::Uuid::new_v4().to_string(),
                    "DEVIS",
                    &payload
                )
            )
            .await
        ),
        "7001"
    );
    // Another pharmacy's pharmacist, in her own name: not her dossier.
    let other = tarification(&new_id(), &d, "DEVIS", &payload)
        .replace(&valid_ps(), "810001234615")
        .replace(DEV_FINESS, OTHER_FINESS);
    assert_eq!(
        code(&send(&app, Some("other-structure"), other).await),
        "7003"
    );
    // Identity in a tarification.
    let mixed = tarification(
        &new_id(),
        &d,
        "DEVIS",
        &prescription(7, &LINES[..1], "<vd:nir>1790312345678</vd:nir>"),
    );
    assert_eq!(code(&send(&app, Some("valid"), mixed).await), "7005");
    let mixed = tarification(
        &new_id(),
        &d,
        "DEVIS",
        &format!("<vd:beneficiaire/>{payload}"),
    );
    assert_eq!(code(&send(&app, Some("valid"), mixed).await), "7005");
    // Retry with other content.
    let id = new_id();
    assert_eq!(code(&send(&app, Some("valid"), ok(&id)).await), "0000");
    let changed = tarification(&id, &d, "DEVIS", &payload);
    assert_eq!(code(&send(&app, Some("valid"), changed).await), "7008");
    // Unknown accreditation.
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                cancellation(&new_id(), &d, "VDM0000000000001", 7)
            )
            .await
        ),
        "7010"
    );
    // The ps must be the certificate's; a certificate is required.
    let wrong_ps =
        tarification(&new_id(), &d, "DEVIS", &payload).replace(&valid_ps(), "810001234573");
    let reply = send(&app, Some("valid"), wrong_ps).await;
    assert_eq!(
        (reply.status.as_u16(), code(&reply).as_str()),
        (400, "8001")
    );
    let reply = send(&app, None, tarification(&new_id(), &d, "DEVIS", &payload)).await;
    assert_eq!(
        (reply.status.as_u16(), code(&reply).as_str()),
        (400, "8002")
    );
    let reply = send(
        &app,
        None,
        cancellation(&new_id(), &d, "VDM0000000000001", 7),
    )
    .await;
    assert_eq!(code(&reply), "8002");

    // Closed, then expired.
    sqlx::query("UPDATE dispensation.dossier SET statut = 'CLOS'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(&new_id(), &d, "DEVIS", &payload)
            )
            .await
        ),
        "7004"
    );
    sqlx::query("UPDATE dispensation.dossier SET statut = 'OUVERT', expiration = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(&new_id(), &d, "DEVIS", &payload)
            )
            .await
        ),
        "7002"
    );
}

#[tokio::test]
async fn faulty_lines_are_each_named() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let bad: &[L<'_>] = &[
        (1, "PH7", 2, "10.00", "21.00", "20.00", 65, "13.00"),
        (2, "PH4", 1, "8.00", "8.00", "8.00", 30, "9.00"),
        (2, "PH2", 0, "5.00", "5.00", "5.00", 15, "0.755"),
    ];
    let body = tarification(&new_id(), &d, "DEVIS", &prescription(8, bad, "")).replace(
        "<vd:date_execution>2026-03-15</vd:date_execution><vd:quantite>1</vd:quantite><vd:prix_unitaire>8.00",
        "<vd:date_execution>2026-03-16</vd:date_execution><vd:quantite>1</vd:quantite><vd:prix_unitaire>8.00",
    );
    let reply = send(&app, Some("valid"), body).await;
    assert_eq!(code(&reply), "6000");
    let details = all(&reply.body, "detail");
    for expected in [
        "prescription/ligne[1]/montant_facture: doit valoir quantite × prix_unitaire",
        "prescription/ligne[2]/date_execution: postérieure à la date de facturation",
        "prescription/ligne[2]/montant_ro: supérieur à la base de remboursement",
        "prescription/ligne[2]/montant_ro: supérieur au montant facturé",
        "prescription/ligne[3]/id_ligne: identifiant de ligne en double",
        "prescription/ligne[3]/quantite: entier de 1 à 999 attendu",
        "prescription/ligne[3]/montant_ro: montant de 0 à 99999.99 attendu",
    ] {
        assert!(
            details.iter().any(|d| d == expected),
            "missing {expected:?} in {details:?}"
        );
    }
}

#[tokio::test]
async fn retries_return_the_stored_response_byte_for_byte_and_consume_once() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let id = new_id();
    let body = tarification(&id, &d, "PEC", &prescription(9, LINES, ""));
    let first_reply = send(&app, Some("valid"), body.clone()).await;
    assert_eq!(code(&first_reply), "0000");
    // The retry may carry another client timestamp: the content is the same.
    let retry = body.replace(
        "</vd:id_requete>",
        "</vd:id_requete><vd:horodatage>2026-03-15T10:00:01+01:00</vd:horodatage>",
    );
    for _ in 0..3 {
        let again = send(&app, Some("valid"), retry.clone()).await;
        assert_eq!(again.body, first_reply.body, "byte-identical");
    }
    assert_eq!(consumed(&app).await, 9000, "consumed once");
    let pecs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispensation.tarification WHERE mode = 'PEC'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(pecs, 1);
}

#[tokio::test]
async fn concurrent_pecs_of_one_beneficiary_never_exceed_the_ceiling() {
    let app = TestApp::spawn().await;
    let mut dossiers = Vec::new();
    for _ in 0..4 {
        dossiers.push(dossier(&app, "valid", &valid_ps(), DEV_FINESS).await);
    }
    // 32 PECs of one 90.00 LPP line each, over 4 dossiers and 8 connections at once, against a
    // ceiling of 100.00.
    let mut tasks = Vec::new();
    for c in 0..8 {
        let mut conn = app.connect(Some("valid")).await.unwrap();
        let dossiers = dossiers.clone();
        tasks.push(tokio::spawn(async move {
            let mut total = 0i64;
            for i in 0..4u32 {
                let d = &dossiers[(c + i as usize) % dossiers.len()];
                let body = tarification(
                    &new_id(),
                    d,
                    "PEC",
                    &prescription(100 + c as u32 * 10 + i, &LINES[4..], ""),
                );
                let reply = conn.soap(SoapVersion::V12, body).await.unwrap();
                assert_eq!(code(&reply), "0000", "{}", reply.body);
                let amc = first(&reply.body, "total_amc").unwrap();
                total += visiodroits::domain::Hundredths::parse(&amc, i64::MAX)
                    .unwrap()
                    .get();
            }
            total
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 10_000, "together the PECs got exactly the ceiling");
    assert_eq!(consumed(&app).await, 10_000);
}

/// A PEC is priced on the consumption read with its request's state. When its ceiling moves
/// before the PEC is recorded (here by an operator's session, as another PEC would), it is priced
/// again on the ceiling as it then stands, and consumes only what is left.
#[tokio::test]
async fn a_pec_whose_ceiling_moved_after_its_read_is_priced_on_the_ceiling_as_it_stands() {
    ceiling_moved_after_read(&TestApp::spawn().await).await;
}

/// The same with one login role shared by the pools, whose exchanges run in a transaction from
/// their first read.
#[tokio::test]
async fn with_a_shared_login_a_pec_whose_ceiling_moved_is_priced_on_the_ceiling_as_it_stands() {
    if let Some(app) = TestApp::with_shared_login().await {
        ceiling_moved_after_read(&app).await;
    }
}

async fn ceiling_moved_after_read(app: &TestApp) {
    let d = dossier(app, "valid", &valid_ps(), DEV_FINESS).await;
    let lpp = |id| prescription(id, &LINES[4..], "");
    let reply = send(
        app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &lpp(61)),
    )
    .await;
    assert_eq!(first(&reply.body, "total_amc").as_deref(), Some("90.00"));
    assert_eq!(consumed(app).await, 9_000);

    // The ceiling's row is held: the next PEC reads 90.00 consumed, then waits to record.
    let mut held = app.db.begin().await.unwrap();
    sqlx::query("SELECT consomme FROM dispensation.consommation FOR UPDATE")
        .execute(&mut *held)
        .await
        .unwrap();
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let body = tarification(&new_id(), &d, "PEC", &lpp(62));
    let pec = tokio::spawn(async move { conn.soap(SoapVersion::V12, body).await.unwrap() });
    assert_eq!(
        waiting_on_locks(&app.db, 1).await,
        1,
        "the PEC waits on the ceiling's row"
    );
    // Meanwhile 5.00 more is consumed: 5.00 is left, not the 10.00 the PEC read.
    sqlx::query("UPDATE dispensation.consommation SET consomme = 9500")
        .execute(&mut *held)
        .await
        .unwrap();
    held.commit().await.unwrap();

    let reply = pec.await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(first(&reply.body, "total_amc").as_deref(), Some("5.00"));
    assert_eq!(lines_of(&reply)[0].1, "5.00");
    assert_eq!(consumed(app).await, 10_000, "the ceiling, not beyond");
    // Recorded once, with what it consumed.
    let recorded: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT t.total_amc, c.montant FROM dispensation.tarification t
           JOIN dispensation.consommation_pec c ON c.tarification_id = t.id
          WHERE t.id_prescription = 62",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(recorded, [(500, 500)]);
}

#[tokio::test]
async fn concurrent_pecs_of_a_prescription_under_no_ceiling_make_one_commitment() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    // Lines under no ceiling: each PEC is recorded by one statement, with no transaction and no
    // lock; eight requests of one prescription at once still commit it once.
    let payload = prescription(150, &LINES[..4], "");
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(app.connect(Some("valid")).await.unwrap());
    }
    let replies = futures_util::future::join_all(conns.iter_mut().map(|c| {
        c.soap(
            SoapVersion::V12,
            tarification(&new_id(), &d, "PEC", &payload),
        )
    }))
    .await;
    let codes: Vec<String> = replies.iter().map(|r| code(r.as_ref().unwrap())).collect();
    assert_eq!(
        codes.iter().filter(|c| *c == "0000").count(),
        1,
        "{codes:?}"
    );
    assert!(
        codes.iter().all(|c| c == "0000" || c == "7009"),
        "{codes:?}"
    );
    let rows: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM dispensation.tarification),
                (SELECT count(*) FROM dispensation.reponse),
                (SELECT count(*) FROM dispensation.consommation)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        rows,
        (1, 1, 0),
        "one PEC, its stored response, no consumption"
    );
}

/// `openssl cms -encrypt -binary -outform DER -recip CERT` of `xml`, base64.
pub(crate) fn encrypt_with_openssl(xml: &str, cert: &str) -> String {
    let s = shared();
    let input = s.base.join(format!("p-{}.xml", new_id()));
    let output = s.base.join(format!("p-{}.der", new_id()));
    std::fs::write(&input, xml).unwrap();
    let status = Command::new("openssl")
        .args([
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-aes-256-cbc",
            "-in",
        ])
        .arg(&input)
        .arg("-out")
        .arg(&output)
        .arg("-recip")
        .arg(s.pki_path(cert))
        .status()
        .unwrap();
    assert!(status.success());
    let der = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_file(&input);
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// A `vd:prescription` as a document of its own: what a client encrypts.
pub(crate) fn standalone(prescription: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        prescription.replacen(
            "<vd:prescription>",
            "<vd:prescription xmlns:vd=\"urn:visiodroits:v1\">",
            1
        )
    )
}

pub(crate) fn encrypted_payload(b64: &str) -> String {
    format!("<vd:prescription_chiffree><vd:donnees>{b64}</vd:donnees></vd:prescription_chiffree>")
}

#[tokio::test]
async fn an_openssl_encrypted_prescription_gives_the_clear_amounts_and_stays_encrypted() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    // Marker values that must never be stored or logged in clear.
    let secret_lines = prescription(51, LINES, "")
        .replace("3400930000001", "3400999999999")
        .replace("1234567", "7318246");
    let xml = standalone(&secret_lines);
    let b64 = encrypt_with_openssl(&xml, "ttp/ttp.pem");
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &encrypted_payload(&b64)),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(lines_of(&reply), expected_lines("90.00", "000"));
    assert_eq!(first(&reply.body, "total_amc").as_deref(), Some("101.30"));

    // The ciphertext as received, amounts, and no clear line.
    let (cipher, chiffree): (Vec<u8>, bool) = sqlx::query_as(
        "SELECT donnees_chiffrees, chiffree FROM dispensation.tarification WHERE id_prescription = 51",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(chiffree);
    assert_eq!(
        cipher,
        base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap()
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT l::text FROM dispensation.ligne l")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 5);
    let all_tables: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM dispensation.tarification t UNION ALL SELECT l::text FROM dispensation.ligne l
         UNION ALL SELECT r::text FROM dispensation.reponse r UNION ALL SELECT j::text FROM audit.journal j",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let logs = crate::helpers::captured_logs();
    for marker in ["3400999999999", "7318246"] {
        assert!(
            !all_tables.iter().any(|r| r.contains(marker)),
            "{marker} stored in clear"
        );
        let leaked: Vec<&str> = logs.lines().filter(|l| l.contains(marker)).collect();
        assert!(leaked.is_empty(), "{marker} logged: {leaked:?}");
    }

    // A payload for another recipient, a corrupt one, one whose content is not a prescription.
    let other = encrypt_with_openssl(&xml, "ttp/other.pem");
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(&new_id(), &d, "DEVIS", &encrypted_payload(&other))
            )
            .await
        ),
        "7006"
    );
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(&new_id(), &d, "DEVIS", &encrypted_payload("AAAA"))
            )
            .await
        ),
        "7006"
    );
    // The accepted ciphertext with 16 bytes after it (a clear NIR and its key), or twice: 7006, and
    // nothing of it stored.
    let accepted = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .unwrap();
    for (what, der) in [
        (
            "trailing bytes",
            [accepted.clone(), b"1790312345678 04".to_vec()].concat(),
        ),
        (
            "a second object",
            [accepted.clone(), accepted.clone()].concat(),
        ),
    ] {
        let smuggled = base64::engine::general_purpose::STANDARD.encode(der);
        let reply = send(
            &app,
            Some("valid"),
            tarification(&new_id(), &d, "DEVIS", &encrypted_payload(&smuggled)),
        )
        .await;
        assert_eq!(code(&reply), "7006", "{what}");
    }
    // No trace of the smuggled bytes in any column of dispensation, in clear or as hex.
    let stored = crate::privacy::stored_text(&app.db, &["dispensation"]).await;
    assert!(
        stored.contains(&hex::encode(&accepted[..64])),
        "the scan reads ciphertexts"
    );
    for trace in ["1790312345678".to_string(), hex::encode("1790312345678")] {
        assert!(!stored.contains(&trace), "{trace} stored");
    }
    let not_prescription =
        encrypt_with_openssl("<vd:autre xmlns:vd=\"urn:visiodroits:v1\"/>", "ttp/ttp.pem");
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(
                    &new_id(),
                    &d,
                    "DEVIS",
                    &encrypted_payload(&not_prescription)
                )
            )
            .await
        ),
        "7006"
    );
    let with_identity = encrypt_with_openssl(
        &xml.replace(
            "</vd:prescription>",
            "<vd:nir>1790312345678</vd:nir></vd:prescription>",
        ),
        "ttp/ttp.pem",
    );
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(&new_id(), &d, "DEVIS", &encrypted_payload(&with_identity))
            )
            .await
        ),
        "7005"
    );
}

#[tokio::test]
async fn encrypted_tarification_is_refused_without_the_key() {
    let app = TestApp::spawn_with(|v| {
        v.remove("VD_TTP_KEY");
    })
    .await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let b64 = encrypt_with_openssl(
        &prescription(61, LINES, "").replacen(
            "<vd:prescription>",
            "<vd:prescription xmlns:vd=\"urn:visiodroits:v1\">",
            1,
        ),
        "ttp/ttp.pem",
    );
    assert_eq!(
        code(
            &send(
                &app,
                Some("valid"),
                tarification(&new_id(), &d, "DEVIS", &encrypted_payload(&b64))
            )
            .await
        ),
        "7007"
    );
}

#[tokio::test]
async fn internal_failures_answer_0999_with_the_fixed_label_and_nothing_internal() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    // A dossier whose rules snapshot cannot be read (as after a botched manual edit).
    sqlx::query("UPDATE dispensation.dossier SET regles = '{\"domaines\": 42}'")
        .execute(&app.db)
        .await
        .unwrap();
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "DEVIS", &prescription(1, LINES, "")),
    )
    .await;
    assert_eq!(reply.status, 500);
    assert_eq!(code(&reply), "0999");
    assert_eq!(
        first(&reply.body, "libelle").as_deref(),
        Some("Erreur technique")
    );
    assert!(all(&reply.body, "detail").is_empty(), "{}", reply.body);
    for internal in [
        "serde",
        "json",
        "invalid type",
        "domaines",
        "sqlx",
        "panicked",
        "/src/",
        "SELECT",
    ] {
        assert!(
            !reply.body.contains(internal),
            "{internal} leaked: {}",
            reply.body
        );
    }
    // The cause is in the logs, for the operator.
    assert!(crate::helpers::captured_logs().contains("exchange failed"));
}

/// Sets the `service` flag of the AMC of dossier `d`, as its operator would (owner, on identite).
async fn set_service(app: &TestApp, d: &str, service: &str, on: bool) {
    sqlx::query(
        "UPDATE identite.amc_service s SET actif = $3
           FROM dispensation.dossier d
          WHERE d.numero_dossier = $1::uuid AND s.numero_amc = d.numero_amc AND s.service = $2",
    )
    .bind(d)
    .bind(service)
    .bind(on)
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_service_closed_after_the_dossier_was_issued_is_refused_at_the_request() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let payload = prescription(61, LINES, "");

    set_service(&app, &d, "TARIFICATION", false).await;
    for mode in ["DEVIS", "PEC"] {
        let reply = send(
            &app,
            Some("valid"),
            tarification(&new_id(), &d, mode, &payload),
        )
        .await;
        assert_eq!(code(&reply), "6021", "{mode}: {}", reply.body);
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM dispensation.tarification")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing priced, nothing stored");
    assert_eq!(consumed(&app).await, 0);

    set_service(&app, &d, "TARIFICATION", true).await;
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &payload),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let accreditation = first(&reply.body, "numero_accreditation").unwrap();

    set_service(&app, &d, "ANNULATION", false).await;
    let cancel = || cancellation(&new_id(), &d, &accreditation, 61);
    let reply = send(&app, Some("valid"), cancel()).await;
    assert_eq!(code(&reply), "6021", "{}", reply.body);
    assert_eq!(consumed(&app).await, 9000, "the PEC stands");
    set_service(&app, &d, "ANNULATION", true).await;
    let reply = send(&app, Some("valid"), cancel()).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);

    // The flags tarification reads are a copy it may read and never change.
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE vd_tarif")
        .execute(&mut *tx)
        .await
        .unwrap();
    let flags: i64 = sqlx::query_scalar("SELECT count(*) FROM dispensation.amc_service")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(flags >= 3, "{flags}");
    let err = sqlx::query("UPDATE dispensation.amc_service SET actif = true")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501"),
        "{err}"
    );
}

#[tokio::test]
async fn a_prescription_is_not_billed_later_than_tomorrow() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let today = chrono::Utc::now().date_naive();
    let billed_on = |days: u64| {
        let date = (today + chrono::Days::new(days)).to_string();
        prescription(71, LINES, "").replace(
            "<vd:date_facturation>2026-03-15</vd:date_facturation>",
            &format!("<vd:date_facturation>{date}</vd:date_facturation>"),
        )
    };
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "DEVIS", &billed_on(2)),
    )
    .await;
    assert_eq!(code(&reply), "6000", "{}", reply.body);
    assert_eq!(
        all(&reply.body, "detail"),
        ["prescription/date_facturation: postérieure au lendemain de la date du serveur"]
    );
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "DEVIS", &billed_on(1)),
    )
    .await;
    assert_eq!(
        code(&reply),
        "0000",
        "tomorrow is still today somewhere: {}",
        reply.body
    );
}

#[tokio::test]
async fn identity_in_an_attribute_or_another_namespace_is_mixed_data_in_clear_and_encrypted() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let clear = prescription(81, LINES, "");
    let hidden = [
        (
            "an attribute",
            clear.replacen("<vd:ligne>", "<vd:ligne nir=\"1790312345678\">", 1),
        ),
        (
            "a prefixed attribute",
            clear.replacen(
                "<vd:prescription>",
                "<vd:prescription xmlns:x=\"urn:other\" x:date_naissance=\"1979-03-12\">",
                1,
            ),
        ),
        (
            "an element of another namespace",
            clear.replacen(
                "</vd:prescription>",
                "<x:nom_beneficiaire xmlns:x=\"urn:other\">DUPONT</x:nom_beneficiaire></vd:prescription>",
                1,
            ),
        ),
    ];
    for (what, payload) in &hidden {
        let reply = send(
            &app,
            Some("valid"),
            tarification(&new_id(), &d, "DEVIS", payload),
        )
        .await;
        assert_eq!(code(&reply), "7005", "clear, {what}: {}", reply.body);
    }
    let xml = standalone(&hidden[0].1);
    let b64 = encrypt_with_openssl(&xml, "ttp/ttp.pem");
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &encrypted_payload(&b64)),
    )
    .await;
    assert_eq!(
        code(&reply),
        "7005",
        "encrypted, an attribute: {}",
        reply.body
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM dispensation.tarification")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}
