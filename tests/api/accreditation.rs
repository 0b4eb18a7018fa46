//! The accreditation lifecycle over TLS and PostgreSQL: the signed proof of a PEC,
//! ConsultationAccreditation and its justification, the operator's `accreditation revoke` and
//! `amc set`, line code L04, and retry keys scoped to the structure. Fixture beneficiary
//! B-TARIF (guarantee 2026-01-01 to 2026-12-31): PH7 PO 100 %, PH4 TA 50 %, PH2 FO 1.50, DEF TA
//! 30 %, LPP PO 150 % with an annual ceiling of 100.00.

use std::process::Command;

use base64::Engine;
use visiodroits::soap::SoapVersion;
use visiodroits_client::Reply;
use visiodroits_devkit::pki::{DEV_FINESS, OTHER_FINESS};

use crate::helpers::{all, code, envelope, first, new_id, shared, visiodroits, TestApp};
use crate::tarification::{
    cancellation, consumed, dossier, encrypt_with_openssl, encrypted_payload, expected_lines, head,
    lines_of, prescription, ps_block, send, standalone, tarification, tarification_as, valid_ps,
    LINES,
};

/// The other pharmacy's pharmacist (certificate `other-structure`).
const OTHER_PS: &str = "810001234615";

fn consultation_as(ps: &str, structure: &str, accreditation: &str) -> String {
    envelope(
        SoapVersion::V12,
        &format!(
            "<vd:demande_accreditation>{}{}<vd:numero_accreditation>{accreditation}</vd:numero_accreditation></vd:demande_accreditation>",
            head(&new_id()),
            ps_block(ps, structure)
        ),
    )
}

fn consultation(accreditation: &str) -> String {
    consultation_as(&valid_ps(), DEV_FINESS, accreditation)
}

/// A PEC of `LINES` on `d`: the reply and its accreditation number.
async fn pec(app: &TestApp, d: &str, prescription_id: u32) -> (Reply, String) {
    let reply = send(
        app,
        Some("valid"),
        tarification(
            &new_id(),
            d,
            "PEC",
            &prescription(prescription_id, LINES, ""),
        ),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let accreditation = first(&reply.body, "numero_accreditation").unwrap();
    (reply, accreditation)
}

/// The code of a quote of `payload` on `d`.
async fn quote(app: &TestApp, d: &str, payload: &str) -> String {
    let reply = send(
        app,
        Some("valid"),
        tarification(&new_id(), d, "DEVIS", payload),
    )
    .await;
    code(&reply)
}

/// A new dossier of B-TARIF for the dev pharmacy.
async fn d2_for(app: &TestApp) -> String {
    dossier(app, "valid", &valid_ps(), DEV_FINESS).await
}

/// `openssl` with `args`, its standard output (it must succeed).
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_pec_carries_a_proof_that_openssl_verifies_and_that_says_what_the_response_says() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let (reply, accreditation) = pec(&app, &d, 81).await;
    let proof = base64::engine::general_purpose::STANDARD
        .decode(first(&reply.body, "preuve").expect("a PEC carries its proof"))
        .unwrap();
    let file = shared().base.join(format!("preuve-{}.der", new_id()));
    std::fs::write(&file, &proof).unwrap();
    let file = file.to_str().unwrap();
    let ca = shared().pki_path("ca/root.pem");
    let text = openssl(&[
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        file,
        "-CAfile",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(
        text,
        format!(
            "numero_accreditation={accreditation}\nnumero_dossier={d}\nid_prescription=81\n\
             total_facture={}\ntotal_amc={}\nnumero_structure={DEV_FINESS}\n\
             identifiant_ps={}\nhorodatage={}\n",
            first(&reply.body, "total_facture").unwrap(),
            first(&reply.body, "total_amc").unwrap(),
            valid_ps(),
            first(&reply.body, "horodatage").unwrap(),
        )
    );
    // SHA-256, the signer's certificate inside; another CA does not vouch for it.
    let printed = openssl(&["cms", "-cmsout", "-print", "-inform", "DER", "-in", file]);
    for part in [
        "sha256",
        "ecdsa-with-SHA256",
        "contentType",
        "signingTime",
        "messageDigest",
    ] {
        assert!(printed.contains(part), "{part}: {printed}");
    }
    let other_ca = shared().pki_path("ca/unknown-root.pem");
    let refused = Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in", file, "-CAfile"])
        .arg(other_ca)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "verified against another CA");
    // A quote binds nothing and proves nothing.
    let quote = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "DEVIS", &prescription(82, LINES, "")),
    )
    .await;
    assert!(first(&quote.body, "preuve").is_none());
}

/// (id_ligne, regle code/unite/valeur, montant_avant_plafonds, code_ligne, montant_amc,
/// plafond_annuel/consomme_avant/consomme_apres) of each line of a consultation.
fn justification(reply: &Reply) -> Vec<[String; 9]> {
    let field = |l: &str, name: &str| first(l, name).unwrap_or_else(|| "-".into());
    reply
        .body
        .split("<vd:ligne>")
        .skip(1)
        .map(|l| {
            let rule = l
                .split("</vd:regle>")
                .next()
                .filter(|_| l.contains("<vd:regle>"));
            let of_rule = |name| rule.map_or("-".into(), |r| field(r, name));
            [
                field(l, "id_ligne"),
                of_rule("code"),
                of_rule("unite"),
                of_rule("valeur"),
                field(l, "montant_avant_plafonds"),
                field(l, "code_ligne"),
                field(l, "montant_amc"),
                field(l, "plafond_annuel"),
                format!(
                    "{}/{}",
                    field(l, "consomme_avant"),
                    field(l, "consomme_apres")
                ),
            ]
        })
        .collect()
}

fn row(cells: [&str; 9]) -> [String; 9] {
    cells.map(String::from)
}

#[tokio::test]
async fn consultation_gives_the_status_and_how_each_line_was_computed() {
    let app = TestApp::spawn().await;
    // Two PECs of the same beneficiary, in two dossiers: the second finds 90.00 of the LPP
    // ceiling consumed and gets the 10.00 left.
    let d1 = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let d2 = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let (first_pec, a1) = pec(&app, &d1, 91).await;
    let (second_pec, a2) = pec(&app, &d2, 92).await;
    assert_eq!(lines_of(&second_pec), expected_lines("10.00", "L02"));

    let reply = send(&app, Some("valid"), consultation(&a1)).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(first(&reply.body, "statut").as_deref(), Some("ACTIVE"));
    assert_eq!(first(&reply.body, "numero_dossier"), Some(d1.clone()));
    assert_eq!(first(&reply.body, "id_prescription").as_deref(), Some("91"));
    for total in [
        "total_facture",
        "total_ro",
        "total_amc",
        "total_reste_a_charge",
    ] {
        assert_eq!(
            first(&reply.body, total),
            first(&first_pec.body, total),
            "{total}"
        );
    }
    let pec_time = first(&reply.body, "horodatage_pec").unwrap();
    assert_eq!(first(&reply.body, "horodatage_statut"), Some(pec_time));
    assert_eq!(
        justification(&reply),
        vec![
            // PH7 PO 100 %: 20.00 − 13.00.
            row(["1", "PH7", "PO", "100.00", "7.00", "000", "7.00", "-", "-/-"]),
            // PH4 TA 50 % of 8.00 − 2.40.
            row(["2", "PH4", "TA", "50.00", "2.80", "000", "2.80", "-", "-/-"]),
            row(["3", "PH2", "FO", "1.50", "1.50", "000", "1.50", "-", "-/-"]),
            // PH1 has no rule of its own: DEF TA 30 % of nothing left after the AMO.
            row(["4", "DEF", "TA", "30.00", "0.00", "000", "0.00", "-", "-/-"]),
            // LPP PO 150 % of 100.00 − 60.00 = 90.00, under the 100.00 ceiling.
            row([
                "5",
                "LPP",
                "PO",
                "150.00",
                "90.00",
                "000",
                "90.00",
                "100.00",
                "0.00/90.00"
            ]),
        ]
    );
    let second = send(&app, Some("valid"), consultation(&a2)).await;
    assert_eq!(
        justification(&second)[4],
        row([
            "5",
            "LPP",
            "PO",
            "150.00",
            "90.00",
            "L02",
            "10.00",
            "100.00",
            "90.00/100.00"
        ])
    );
    // Nothing in it identifies the patient.
    for identity in [
        "1790312345678",
        "TARDIEU",
        "THEO",
        "19790301",
        "A800",
        "C-800",
    ] {
        assert!(!reply.body.contains(identity), "{identity}");
    }

    // Another structure may not consult it; an unknown number is 7010.
    let other = consultation_as(OTHER_PS, OTHER_FINESS, &a1);
    assert_eq!(
        code(&send(&app, Some("other-structure"), other).await),
        "7003"
    );
    let unknown = a1.replace(&a1[3..8], "00000");
    assert_eq!(
        code(&send(&app, Some("valid"), consultation(&unknown)).await),
        "7010"
    );

    // Cancelled by the pharmacy: ANNULEE, with the time of the cancellation.
    let cancel = send(&app, Some("valid"), cancellation(&new_id(), &d1, &a1, 91)).await;
    assert_eq!(code(&cancel), "0000", "{}", cancel.body);
    let reply = send(&app, Some("valid"), consultation(&a1)).await;
    assert_eq!(first(&reply.body, "statut").as_deref(), Some("ANNULEE"));
    assert!(
        first(&reply.body, "horodatage_statut").unwrap()
            > first(&reply.body, "horodatage_pec").unwrap()
    );
    assert_eq!(justification(&reply).len(), 5, "the justification stays");

    // The AMC closes CONSULTATION: 6021.
    sqlx::query("UPDATE identite.amc_service SET actif = false WHERE numero_amc = '12345678' AND service = 'CONSULTATION'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        code(&send(&app, Some("valid"), consultation(&a2)).await),
        "6021"
    );
}

#[tokio::test]
async fn an_operator_revokes_a_pec_and_the_pharmacy_can_no_longer_cancel_it() {
    let app = TestApp::spawn().await;
    let url = shared().admin_url(&app.db_name);
    let env = [("DATABASE_URL", url.as_str())];
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let (_, accreditation) = pec(&app, &d, 101).await;
    assert_eq!(consumed(&app).await, 9000);

    let out = visiodroits(
        &[
            "accreditation",
            "revoke",
            &accreditation,
            "--motif",
            "facturation en double",
            "--yes",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    // The AMC no longer owes it: its ceiling consumption is given back.
    assert_eq!(consumed(&app).await, 0);

    let reply = send(&app, Some("valid"), consultation(&accreditation)).await;
    assert_eq!(first(&reply.body, "statut").as_deref(), Some("REVOQUEE"));
    assert_eq!(
        first(&reply.body, "motif").as_deref(),
        Some("facturation en double")
    );
    let cancel = send(
        &app,
        Some("valid"),
        cancellation(&new_id(), &d, &accreditation, 101),
    )
    .await;
    assert_eq!(code(&cancel), "7010", "{}", cancel.body);
    // The prescription stays taken in its dossier.
    let again = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &prescription(101, LINES, "")),
    )
    .await;
    assert_eq!(code(&again), "7009");

    // Revoking it again, or an unknown number: the work found a problem (1); not a number: 2.
    let out = visiodroits(
        &[
            "accreditation",
            "revoke",
            &accreditation,
            "--motif",
            "x",
            "--yes",
        ],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("REVOQUEE"));
    let out = visiodroits(
        &["accreditation", "revoke", "XX", "--motif", "x", "--yes"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    // A reason that names a patient is refused before anything is read (it would reach
    // dispensation and the pharmacy); without --yes and no terminal answer, nothing is revoked.
    let (_, other) = pec(&app, &d2_for(&app).await, 102).await;
    let out = visiodroits(
        &[
            "accreditation",
            "revoke",
            &other,
            "--motif",
            "fraude 1790312345678",
            "--yes",
        ],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = visiodroits(&["accreditation", "revoke", &other, "--motif", "x"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = send(&app, Some("valid"), consultation(&other)).await;
    assert_eq!(first(&reply.body, "statut").as_deref(), Some("ACTIVE"));

    // Audited, with fixed vocabulary only: the operator's words stay with the PEC.
    let (operation, motif): (String, String) = sqlx::query_as(
        "SELECT operation, motif FROM audit.journal WHERE numero_accreditation = $1 AND instance = 'admin'",
    )
    .bind(&accreditation)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (operation.as_str(), motif.as_str()),
        ("accreditation revoke", "revocation")
    );
}

#[tokio::test]
async fn amc_set_opens_and_closes_each_service_without_sql_and_is_audited() {
    let app = TestApp::spawn().await;
    let url = shared().admin_url(&app.db_name);
    let env = [("DATABASE_URL", url.as_str())];
    let amc_set = |args: &[&str]| {
        let mut all_args = vec!["amc", "set", "12345678"];
        all_args.extend_from_slice(args);
        let out = visiodroits(&all_args, &env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let payload = prescription(111, LINES, "");

    amc_set(&["--service", "TARIFICATION=off"]);
    for mode in ["DEVIS", "PEC"] {
        let reply = send(
            &app,
            Some("valid"),
            tarification(&new_id(), &d, mode, &payload),
        )
        .await;
        assert_eq!(code(&reply), "6021", "{mode}");
    }
    amc_set(&["--service", "TARIFICATION=on"]);
    let (_, accreditation) = pec(&app, &d, 111).await;

    amc_set(&["--service", "ANNULATION=off"]);
    let cancel = || cancellation(&new_id(), &d, &accreditation, 111);
    assert_eq!(code(&send(&app, Some("valid"), cancel()).await), "6021");
    amc_set(&["--service", "annulation=on"]);
    assert_eq!(code(&send(&app, Some("valid"), cancel()).await), "0000");

    // The encrypted service on its own: 7007 while closed, the clear one still open.
    let xml = standalone(&prescription(112, LINES, ""));
    let encrypted = encrypted_payload(&encrypt_with_openssl(&xml, "ttp/ttp.pem"));
    amc_set(&["--service", "TARIFICATION_CHIFFREE=off"]);
    assert_eq!(quote(&app, &d, &encrypted).await, "7007");
    assert_eq!(quote(&app, &d, &payload).await, "0000");
    amc_set(&["--service", "TARIFICATION_CHIFFREE=on"]);
    assert_eq!(quote(&app, &d, &encrypted).await, "0000");

    // Name, contact and the degraded-mode delay, as ServicesOuverts shows them at once.
    let said = amc_set(&[
        "--nom",
        "MUTUELLE RENOMMEE",
        "--delai-grace-jours",
        "7",
        "--contact-telephone",
        "",
    ]);
    assert!(
        said.contains("nom") && said.contains("delai_grace_jours=7"),
        "{said}"
    );
    let mut conn = app.connect(None).await.unwrap();
    let services = crate::helpers::services_on(&mut conn).await.unwrap();
    let ours = services.body.split("</vd:amc>").next().unwrap();
    assert_eq!(first(ours, "nom").as_deref(), Some("MUTUELLE RENOMMEE"));
    assert_eq!(first(ours, "delai_grace_jours").as_deref(), Some("7"));
    assert!(first(ours, "telephone").is_none());
    assert_eq!(
        amc_set(&["--delai-grace-jours", "7"]).trim(),
        "AMC 12345678: nothing to change"
    );

    // A new AMC opens nothing until told; `amc list` shows it.
    let out = visiodroits(
        &[
            "amc",
            "set",
            "22222222",
            "--nom",
            "NOUVELLE",
            "--service",
            "DROITS=on",
        ],
        &env,
    );
    assert!(out.status.success());
    let list = visiodroits(&["amc", "list"], &env);
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("22222222 NOUVELLE\n  services: DROITS=on TARIFICATION=off"),
        "{list}"
    );
    assert!(list.contains("12345678 MUTUELLE RENOMMEE"), "{list}");

    // Bad usage is refused before anything changes (exit 2); an unknown AMC without a name, 1.
    for (args, status) in [
        (
            vec!["amc", "set", "12345678", "--delai-grace-jours", "31"],
            2,
        ),
        (
            vec!["amc", "set", "12345678", "--service", "PAIEMENT=on"],
            2,
        ),
        (vec!["amc", "set", "1234", "--nom", "X"], 2),
        (vec!["amc", "set", "33333333"], 1),
    ] {
        let out = visiodroits(&args, &env);
        assert_eq!(
            out.status.code(),
            Some(status),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Each change is audited; the refused ones are not.
    let changes: Vec<String> = sqlx::query_scalar(
        "SELECT motif FROM audit.journal WHERE operation = 'amc set' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(changes.len(), 8, "{changes:?}");
    assert_eq!(changes[0], "changed: TARIFICATION=off");
    assert!(
        changes[7].starts_with("created: nom, DROITS=on"),
        "{changes:?}"
    );
}

#[tokio::test]
async fn a_line_outside_its_guarantee_period_is_l04_and_the_others_are_computed() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    // The LPP line (under the ceiling) was executed before the guarantee started.
    let payload = prescription(121, LINES, "").replace(
        "<vd:id_ligne>5</vd:id_ligne><vd:code_prestation>LPP</vd:code_prestation><vd:date_execution>2026-03-15",
        "<vd:id_ligne>5</vd:id_ligne><vd:code_prestation>LPP</vd:code_prestation><vd:date_execution>2025-12-20",
    );
    assert!(payload.contains("2025-12-20"));
    let reply = send(
        &app,
        Some("valid"),
        tarification(&new_id(), &d, "PEC", &payload),
    )
    .await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let mut expected = expected_lines("0.00", "L04");
    expected[4].2 = "90.00".into();
    assert_eq!(lines_of(&reply), expected);
    assert_eq!(first(&reply.body, "total_amc").as_deref(), Some("11.30"));
    assert_eq!(
        all(&reply.body, "libelle_ligne")[4],
        "Exécutée hors de la période de la garantie"
    );
    // Its ceiling year was never consulted: no consumption row for 2025, nothing consumed.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dispensation.consommation")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!((rows, consumed(&app).await), (0, 0));
    // The justification says why: the rule, nothing before caps, no ceiling.
    let accreditation = first(&reply.body, "numero_accreditation").unwrap();
    let consulted = send(&app, Some("valid"), consultation(&accreditation)).await;
    assert_eq!(
        justification(&consulted)[4],
        row(["5", "LPP", "PO", "150.00", "0.00", "L04", "0.00", "-", "-/-"])
    );
}

#[tokio::test]
async fn retry_keys_belong_to_the_structure() {
    let app = TestApp::spawn().await;
    let ours = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let theirs = dossier(&app, "other-structure", OTHER_PS, OTHER_FINESS).await;
    let id = new_id();
    let mine = tarification(&id, &ours, "PEC", &prescription(131, LINES, ""));
    let first_reply = send(&app, Some("valid"), mine.clone()).await;
    assert_eq!(code(&first_reply), "0000");

    // The other pharmacy uses the same id_requete for its own, different request: its own answer,
    // neither 7008 nor ours.
    let other = tarification_as(
        OTHER_PS,
        OTHER_FINESS,
        &id,
        &theirs,
        "PEC",
        &prescription(7, &LINES[..1], ""),
    );
    let other_reply = send(&app, Some("other-structure"), other.clone()).await;
    assert_eq!(code(&other_reply), "0000", "{}", other_reply.body);
    assert_eq!(
        first(&other_reply.body, "numero_dossier"),
        Some(theirs.clone())
    );
    assert_eq!(
        send(&app, Some("other-structure"), other).await.body,
        other_reply.body
    );

    // Our retry still gets our stored response, byte for byte; other content is still 7008.
    assert_eq!(send(&app, Some("valid"), mine).await.body, first_reply.body);
    let changed = tarification(&id, &ours, "DEVIS", &prescription(131, LINES, ""));
    assert_eq!(code(&send(&app, Some("valid"), changed).await), "7008");
}

#[tokio::test]
async fn a_signing_key_that_cannot_sign_stops_the_start_by_name() {
    // An X25519 key (key agreement only) in a certificate the dev root issued for it.
    let dir = shared().base.join(format!("x25519-{}", new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    openssl(&["genpkey", "-algorithm", "X25519", "-out", &path("x.key")]);
    openssl(&[
        "pkey",
        "-in",
        &path("x.key"),
        "-pubout",
        "-out",
        &path("x.pub"),
    ]);
    // The request is signed by a throwaway key; -force_pubkey puts the X25519 key in the
    // certificate.
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &path("req.key"),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        &path("req.key"),
        "-subj",
        "/CN=X25519",
        "-out",
        &path("x.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("x.csr"),
        "-CA",
        shared().pki_path("ca/root.pem").to_str().unwrap(),
        "-CAkey",
        shared().pki_path("ca/root.key").to_str().unwrap(),
        "-force_pubkey",
        &path("x.pub"),
        "-days",
        "1",
        "-out",
        &path("x.pem"),
    ]);
    let shared = shared();
    let mut vars = shared.config_vars(&shared.fresh_database().await);
    vars.insert("VD_SIGNING_CERT".into(), path("x.pem"));
    vars.insert("VD_SIGNING_KEY".into(), path("x.key"));
    let config = visiodroits::config::Config::from_map(&vars).unwrap();
    let err = visiodroits::startup::check(&config).await.unwrap_err();
    assert!(format!("{err:#}").contains("VD_SIGNING_KEY"), "{err:#}");
    let err = visiodroits::startup::Server::start(config)
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("RSA or EC key"), "{err:#}");
    // The TLS server's certificate (extended key usage serverAuth): its proofs would never
    // verify as S/MIME signatures.
    let pki = |rel: &str| shared.pki_path(rel).to_str().unwrap().to_string();
    vars.insert("VD_SIGNING_CERT".into(), pki("server/server.pem"));
    vars.insert("VD_SIGNING_KEY".into(), pki("server/server.key"));
    let config = visiodroits::config::Config::from_map(&vars).unwrap();
    let err = visiodroits::startup::check(&config).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("VD_SIGNING_CERT: its proofs would not verify"),
        "{err:#}"
    );
    vars.insert("VD_SIGNING_CERT".into(), path("x.pem"));
    // A key of another certificate: refused by name too.
    vars.insert(
        "VD_SIGNING_KEY".into(),
        shared.pki_path("ttp/ttp.key").to_str().unwrap().into(),
    );
    let config = visiodroits::config::Config::from_map(&vars).unwrap();
    let err = visiodroits::startup::check(&config).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("does not match VD_SIGNING_CERT"),
        "{err:#}"
    );
}

#[tokio::test]
async fn the_same_pec_sent_several_times_at_once_gets_one_answer_and_one_commitment() {
    let app = TestApp::spawn().await;
    let d = dossier(&app, "valid", &valid_ps(), DEV_FINESS).await;
    let body = tarification(&new_id(), &d, "PEC", &prescription(141, LINES, ""));
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(app.connect(Some("valid")).await.unwrap());
    }
    let replies = futures_util::future::join_all(
        conns
            .iter_mut()
            .map(|c| c.soap(SoapVersion::V12, body.clone())),
    )
    .await;
    let bodies: Vec<String> = replies.into_iter().map(|r| r.unwrap().body).collect();
    assert!(bodies.iter().all(|b| b == &bodies[0]), "{bodies:#?}");
    assert_eq!(first(&bodies[0], "code").as_deref(), Some("0000"));
    let pecs: i64 = sqlx::query_scalar("SELECT count(*) FROM dispensation.tarification")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!((pecs, consumed(&app).await), (1, 9000));
}
