//! The vendors' command-line client and the load generator against a real server: every
//! exchange they drive must succeed, or the benchmark figures would measure errors.

use std::io::Cursor;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use visiodroits::cli::import::run_reader;
use visiodroits::rights_file::Format;
use visiodroits::soap::SoapVersion;
use visiodroits::store::transactions::{self, Transaction};
use visiodroits_bench::ceiling::Ceiling;
use visiodroits_bench::{self as load, parse_mix, population, Op, Pace, Plan, Target};
use visiodroits_client::messages::{field, Messages, Payload, Software};
use visiodroits_client::{ClientIdentity, Versions};

use crate::helpers::{shared, tls_for, TestApp};

async fn with_population(count: u64) -> TestApp {
    let app = TestApp::spawn().await;
    let mut csv = Vec::new();
    population::write_csv(count, &mut csv).unwrap();
    run_reader(
        &app.db,
        Box::new(Cursor::new(csv)),
        Format::Csv,
        true,
        false,
    )
    .await
    .expect("the synthetic population imports");
    app
}

fn target(app: &TestApp, population: u64) -> Arc<Target> {
    let s = shared();
    let identity = ClientIdentity::from_pem_files(
        &s.pki_path("clients/valid.pem"),
        &s.pki_path("clients/valid.key"),
    )
    .unwrap();
    Arc::new(Target {
        addr: app.addr(),
        server_name: "localhost".into(),
        tls: tls_for(Some("valid"), Versions::Both),
        messages: Messages {
            version: SoapVersion::V12,
            software: Software::default(),
            pharmacist: identity.pharmacist().unwrap(),
        },
        population,
    })
}

#[tokio::test]
async fn the_load_generator_drives_every_exchange_without_errors() {
    let app = with_population(30).await;
    let target = target(&app, 30);
    let mix = "droits,devis,pec,pec-chiffre,annulation,services";
    let outcome = load::run(
        target.clone(),
        Plan {
            mix: parse_mix(mix).unwrap(),
            connections: 3,
            warmup: Duration::from_millis(200),
            duration: Duration::from_millis(1500),
            pace: Pace::Closed,
            // The server runs in this process: its CPU is the test's.
            system_pids: vec![std::process::id()],
        },
    )
    .await
    .unwrap();
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let cpu = outcome.cpu.expect("CPU per request read from /proc");
    assert!(cpu.system_ms.is_some() && cpu.total_ms() > 0.0, "{cpu:?}");
    assert_eq!(outcome.per_op.len(), 6);
    for (op, s) in &outcome.per_op {
        assert!(
            s.ok > 0 && s.errors == 0,
            "{op:?}: {} ok, {} errors",
            s.ok,
            s.errors
        );
        assert_eq!(s.latency_us.len(), s.ok, "{op:?}: one latency per answer");
    }
    // What the generator counted as answered is in the database.
    let ok = |op: Op| outcome.per_op.iter().find(|(o, _)| *o == op).unwrap().1.ok as i64;
    let (pec, encrypted, cancelled): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE mode = 'PEC'), count(*) FILTER (WHERE mode = 'PEC' AND chiffree),
                count(*) FILTER (WHERE statut = 'ANNULEE') FROM dispensation.tarification",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(encrypted >= ok(Op::PecEncrypted), "{encrypted}");
    assert!(cancelled >= ok(Op::Cancellation), "{cancelled}");
    assert!(pec >= ok(Op::Pec) + ok(Op::PecEncrypted), "{pec}");

    // Open loop: the schedule is kept (about rate × duration requests), each one answered.
    let open = load::run(
        target.clone(),
        Plan {
            mix: parse_mix("droits").unwrap(),
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            pace: Pace::Open { rate: 40.0 },
            system_pids: vec![],
        },
    )
    .await
    .unwrap();
    let s = &open.per_op[0].1;
    assert_eq!((s.ok, s.errors), (40, 0));

    // Handshakes: full ones, then resumed ones (the generator refuses a session not resumed).
    for mix in ["handshake-full", "handshake-resumed"] {
        let o = load::run(
            target.clone(),
            Plan {
                mix: parse_mix(mix).unwrap(),
                connections: 2,
                warmup: Duration::ZERO,
                duration: Duration::from_millis(500),
                pace: Pace::Closed,
                system_pids: vec![],
            },
        )
        .await
        .unwrap();
        let s = &o.per_op[0].1;
        assert!(s.ok > 0 && s.errors == 0, "{mix}: {:?}", o.errors);
    }
}

fn client(args: &[&str]) -> (bool, String) {
    let s = shared();
    let out = Command::new(crate::helpers::workspace_bin("visiodroits-client"))
        .arg(args[0])
        .arg("--ca")
        .arg(s.pki_path("ca/root.pem"))
        .arg("--p12")
        .arg(s.pki_path("clients/valid.p12"))
        .arg("--password")
        .arg(visiodroits_devkit::pki::P12_PASSWORD)
        .args(&args[1..])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_runs_every_exchange_from_the_command_line() {
    let app = with_population(1).await;
    let url = format!("https://localhost:{}", app.addr().port());
    let (nir, key, birth) = population::person(0);

    let (ok, out) = tokio::task::block_in_place(|| client(&["services", "--url", &url]));
    assert!(ok, "{out}");
    assert!(field(&out, "certificat_chiffrement").is_some());

    let (ok, out) = tokio::task::block_in_place(|| {
        client(&[
            "droits",
            "--url",
            &url,
            "--nir",
            &nir,
            "--cle",
            &key,
            "--naissance",
            &birth,
            "--amc",
            population::AMC,
        ])
    });
    assert!(ok, "{out}");
    let dossier = field(&out, "numero_dossier").unwrap();

    let file = shared().base.join(format!("prescription-{dossier}.xml"));
    std::fs::write(
        &file,
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<vd:prescription xmlns:vd="urn:visiodroits:v1"><vd:id_prescription>1</vd:id_prescription><vd:date_prescription>{today}</vd:date_prescription><vd:prescripteur>123456789</vd:prescripteur><vd:date_facturation>{today}</vd:date_facturation><vd:ligne><vd:id_ligne>1</vd:id_ligne><vd:code_prestation>PH7</vd:code_prestation><vd:date_execution>{today}</vd:date_execution><vd:quantite>2</vd:quantite><vd:prix_unitaire>10.00</vd:prix_unitaire><vd:montant_facture>20.00</vd:montant_facture><vd:base_remboursement>20.00</vd:base_remboursement><vd:taux_ro>65</vd:taux_ro><vd:montant_ro>13.00</vd:montant_ro></vd:ligne></vd:prescription>"#,
            today = chrono::Utc::now().date_naive()
        ),
    )
    .unwrap();
    let file = file.display().to_string();

    let (ok, devis) = tokio::task::block_in_place(|| {
        client(&["tarif", "--url", &url, "--dossier", &dossier, &file])
    });
    assert!(ok, "{devis}");
    assert_eq!(field(&devis, "total_amc").as_deref(), Some("7.00"));

    let (ok, pec) = tokio::task::block_in_place(|| {
        client(&[
            "tarif",
            "--url",
            &url,
            "--dossier",
            &dossier,
            "--mode",
            "PEC",
            "--chiffre",
            &file,
        ])
    });
    assert!(ok, "{pec}");
    assert_eq!(field(&pec, "total_amc").as_deref(), Some("7.00"));
    let accreditation = field(&pec, "numero_accreditation").unwrap();
    let encrypted: bool = sqlx::query_scalar(
        "SELECT chiffree FROM dispensation.tarification WHERE numero_accreditation = $1",
    )
    .bind(&accreditation)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(encrypted);
    // Its status and justification: computed from the encrypted lines like the clear ones.
    let (ok, out) =
        tokio::task::block_in_place(|| client(&["accreditation", "--url", &url, &accreditation]));
    assert!(ok, "{out}");
    assert_eq!(field(&out, "statut").as_deref(), Some("ACTIVE"), "{out}");
    assert_eq!(
        field(&out, "montant_avant_plafonds").as_deref(),
        Some("7.00"),
        "{out}"
    );

    let cancel = [
        "annuler",
        "--url",
        &url,
        "--dossier",
        &dossier,
        "--accreditation",
        &accreditation,
        "--prescription",
        "1",
    ];
    let (ok, out) = tokio::task::block_in_place(|| client(&cancel));
    assert!(ok, "{out}");
    // Cancelling twice is refused (7010) and the command says so by its exit status.
    let (ok, out) = tokio::task::block_in_place(|| client(&cancel));
    assert!(!ok);
    assert_eq!(field(&out, "code").as_deref(), Some("7010"), "{out}");
    let _ = std::fs::remove_file(&file);
}

/// The statements logged in the span of the exchange `request_id`, in order (sqlx logs
/// `db.statement`, or only a `summary` for a bare `COMMIT`; the pool's `BEGIN` is not logged).
fn statements_of(request_id: &str) -> Vec<String> {
    let unquote = |field: &str, line: &str| -> Option<String> {
        let text = line.split(&format!(" {field}=\"")).nth(1)?;
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out.trim().to_string()),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    };
    crate::helpers::captured_logs()
        .lines()
        .filter(|l| {
            l.contains(&format!("id_requete=\"{request_id}\"")) && l.contains(" db.statement=")
        })
        .filter_map(|l| {
            unquote("db.statement", l)
                .filter(|s| !s.is_empty())
                .or_else(|| unquote("summary", l))
        })
        // Sent once when a connection opens, not by the exchange that happened to open it.
        .filter(|s| !s.starts_with("SET statement_timeout"))
        .collect()
}

/// Sends `body`; the answer, which must be a success.
async fn send(conn: &mut visiodroits_client::SoapConnection, body: String) -> String {
    let reply = conn.soap(SoapVersion::V12, body).await.unwrap();
    assert_eq!(
        field(&reply.body, "code").as_deref(),
        Some("0000"),
        "{}",
        reply.body
    );
    reply.body
}

/// Runs `ceiling` with pgbench: `clients` clients, `count` transactions each.
fn pgbench(app: &TestApp, ceiling: Ceiling, clients: u32, count: u32, defines: &[String]) {
    let s = shared();
    let today = chrono::Utc::now().date_naive();
    let script = s
        .base
        .join(format!("ceiling-{}-{ceiling:?}.sql", app.db_name));
    std::fs::write(&script, ceiling.script(today).unwrap()).unwrap();
    let mut cmd = Command::new(s.pg_tool("pgbench"));
    cmd.args(["-n", "-M", "prepared"])
        .arg(format!("-c{clients}"))
        .arg(format!("-t{count}"))
        .arg("-f")
        .arg(&script);
    for d in defines {
        cmd.arg("-D").arg(d);
    }
    let out = cmd
        .arg(s.pool_url(&app.db_name, ceiling.role()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{ceiling:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_ceilings_run_the_transactions_the_exchanges_run_and_write_the_same_rows() {
    let app = with_population(30).await;
    let target = target(&app, 30);
    let messages = &target.messages;
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let today = chrono::Utc::now().date_naive().to_string();

    // One exchange of each ceiling, as the load generator sends it.
    let (nir, key, birth) = population::person(0);
    let rights_id = uuid::Uuid::new_v4();
    let request = visiodroits_client::messages::RightsRequest {
        nir,
        key,
        birth,
        rank: 1,
        amc: population::AMC.into(),
        adherent: None,
        date: today.clone(),
        domains: vec!["PHAR".into()],
    };
    let body = send(&mut conn, messages.rights(rights_id, &request)).await;
    let dossier = field(&body, "numero_dossier").unwrap();
    let mut tarifications = Vec::new();
    for (commitment, prescription) in [(false, 1), (true, 2)] {
        let id = uuid::Uuid::new_v4();
        let p = load::prescription(prescription, &today);
        let body = messages.tarification(id, &dossier, commitment, &Payload::Clear(p));
        send(&mut conn, body).await;
        tarifications.push((commitment, id));
    }

    // What each exchange sent is its transaction, statement for statement.
    let expected = |tx: Transaction| {
        let mut all = Vec::new();
        all.extend(tx.statements.iter().map(|s| s.trim().to_string()));
        if tx.begin.is_some() {
            all.push("COMMIT".into());
        }
        all
    };
    assert_eq!(
        statements_of(&rights_id.to_string()),
        expected(transactions::rights())
    );
    for (commitment, id) in &tarifications {
        assert_eq!(
            statements_of(&id.to_string()),
            expected(transactions::tarification()),
            "commitment: {commitment}"
        );
    }

    // The ceilings run against the same database, one dossier per pgbench client copied from the
    // server's, as scripts/bench prepares them.
    sqlx::query(
        "INSERT INTO dispensation.dossier (numero_dossier, numero_amc, structure, expiration, cle_plafond, regles)
         SELECT ('00000000-0000-4000-8000-' || lpad(c::text, 12, '0'))::uuid, d.numero_amc, d.structure,
                d.expiration, sha256(('bench-' || c)::bytea), d.regles
           FROM dispensation.dossier d, generate_series(0, 1) c
          WHERE d.numero_dossier = $1::uuid",
    )
    .bind(&dossier)
    .execute(&app.db)
    .await
    .unwrap();
    let rules: String = sqlx::query_scalar(
        "SELECT regles::text FROM dispensation.dossier WHERE numero_dossier = $1::uuid",
    )
    .bind(&dossier)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let defines: Vec<String> = [
        "population=30".to_string(),
        format!("amc={}", population::AMC),
        format!("structure={}", visiodroits_devkit::pki::DEV_FINESS),
        format!("rules={rules}"),
        "instance=bench".into(),
        "subject=CN=bench".into(),
        "issuer=CN=bench".into(),
        "serial=01".into(),
        format!("fingerprint={}", "0".repeat(64)),
        "ps=810001234565".into(),
        "response=<r/>".into(),
        "n=0".into(),
        "prescription_base=1000".into(),
    ]
    .into();
    for ceiling in [Ceiling::Rights, Ceiling::Quote, Ceiling::Commitment] {
        pgbench(&app, ceiling, 2, 3, &defines);
    }

    // They wrote what the exchanges write: dossiers and their audit rows, tarifications with the
    // same totals, lines and consumption.
    let audited: Vec<(String, i64)> = sqlx::query_as(
        "SELECT operation, count(*) FROM audit.journal WHERE instance = 'bench' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        audited,
        [("DemandeDroits".to_string(), 6), ("DldTar".to_string(), 12)]
    );
    let pairings: i64 = sqlx::query_scalar("SELECT count(*) FROM identite.appariement")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(pairings, 7, "the server's dossier and the ceiling's six");
    for mode in ["DEVIS", "PEC"] {
        let rows: Vec<(bool, String)> = sqlx::query_as(
            "SELECT t.numero_dossier::text LIKE '00000000-%',
                    concat_ws('|', t.total_facture, t.total_ro, t.total_amc, t.total_reste_a_charge,
                        t.numero_accreditation IS NULL,
                        (SELECT string_agg(concat_ws('|', l.id_ligne, l.code_prestation, l.date_execution,
                             l.quantite, l.prix_unitaire, l.montant_facture, l.base_remboursement, l.taux_ro,
                             l.montant_ro, l.code_cip, l.code_lpp, l.montant_amc, l.reste_a_charge,
                             l.code_garantie, l.code_ligne), ';' ORDER BY l.id_ligne)
                           FROM dispensation.ligne l WHERE l.tarification_id = t.id),
                        (SELECT string_agg(concat_ws('|', c.code_garantie, c.code_prestation, c.annee, c.montant), ';')
                           FROM dispensation.consommation_pec c WHERE c.tarification_id = t.id))
               FROM dispensation.tarification t WHERE t.mode = $1",
        )
        .bind(mode)
        .fetch_all(&app.db)
        .await
        .unwrap();
        let server: Vec<_> = rows.iter().filter(|(bench, _)| !bench).collect();
        assert_eq!(server.len(), 1, "{mode}: {rows:?}");
        let ceiling: Vec<_> = rows.iter().filter(|(bench, _)| *bench).collect();
        assert_eq!(ceiling.len(), 6, "{mode}");
        for (_, written) in ceiling {
            assert_eq!(
                written, &server[0].1,
                "{mode}: the ceiling writes what the server writes"
            );
        }
    }
}
