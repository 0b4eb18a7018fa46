//! The samples of `docs/examples`: every request is sent to a real server (its example dossier
//! and accreditation numbers replaced by live ones, after the setup the sample needs), the answer
//! validates against the schema and has the shape of the committed response sample, ignoring
//! ids, times, accreditation numbers and base64 blobs. The requests that are meant to be valid
//! validate against the schema too. `VD_WRITE_EXAMPLES=1` rewrites the response samples from the
//! live answers.

use std::path::PathBuf;

use regex::Regex;
use visiodroits::soap::SoapVersion;
use visiodroits_client::Reply;

use crate::helpers::{code, first, new_id, TestApp};

/// The example values the request samples carry.
const EXAMPLE_ID: &str = "6f1c2f0e-8f0e-4c53-9b61-0c1f8d1e2a3b";
const EXAMPLE_DOSSIER: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
const EXAMPLE_ACCREDITATION: &str = "VDM0123456789ABC";

/// What a sample needs before its request is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Setup {
    Nothing,
    /// A dossier of the demo beneficiary (B-MARTIN) for the dev pharmacy.
    Dossier,
    /// That dossier and a PEC of its prescription 1 (its accreditation replaces the example's).
    Pec,
    Expired,
    Closed,
    /// The AMC closed TARIFICATION_CHIFFREE.
    EncryptedClosed,
    /// A DEVIS already answered under the sample's id_requete, with other content.
    UsedId,
    /// A PEC, then cancelled.
    Cancelled,
}

/// (sample, client certificate, setup, expected code, the request is valid against the schema).
const SAMPLES: &[(&str, Option<&str>, Setup, &str, bool)] = &[
    ("services", None, Setup::Nothing, "0000", true),
    ("services-soap11", None, Setup::Nothing, "0000", true),
    ("services-6020", None, Setup::Nothing, "6020", true),
    ("droits", Some("valid"), Setup::Nothing, "0000", true),
    ("droits-6000", Some("valid"), Setup::Nothing, "6000", false),
    ("droits-6001", Some("valid"), Setup::Nothing, "6001", true),
    ("droits-6002", Some("valid"), Setup::Nothing, "6002", true),
    ("droits-6003", Some("valid"), Setup::Nothing, "6003", true),
    ("droits-6005", Some("valid"), Setup::Nothing, "6005", true),
    ("droits-6020", Some("valid"), Setup::Nothing, "6020", true),
    ("droits-6021", Some("valid"), Setup::Nothing, "6021", true),
    ("droits-7005", Some("valid"), Setup::Nothing, "7005", false),
    ("devis", Some("valid"), Setup::Dossier, "0000", true),
    ("pec", Some("valid"), Setup::Dossier, "0000", true),
    ("pec-7009", Some("valid"), Setup::Pec, "7009", true),
    (
        "tarification-7001",
        Some("valid"),
        Setup::Nothing,
        "7001",
        true,
    ),
    (
        "tarification-7002",
        Some("valid"),
        Setup::Expired,
        "7002",
        true,
    ),
    (
        "tarification-7003",
        Some("other-structure"),
        Setup::Dossier,
        "7003",
        true,
    ),
    (
        "tarification-7004",
        Some("valid"),
        Setup::Closed,
        "7004",
        true,
    ),
    (
        "tarification-7005",
        Some("valid"),
        Setup::Dossier,
        "7005",
        false,
    ),
    (
        "tarification-7006",
        Some("valid"),
        Setup::Dossier,
        "7006",
        true,
    ),
    (
        "tarification-7007",
        Some("valid"),
        Setup::EncryptedClosed,
        "7007",
        true,
    ),
    (
        "tarification-7008",
        Some("valid"),
        Setup::UsedId,
        "7008",
        true,
    ),
    ("annulation", Some("valid"), Setup::Pec, "0000", true),
    (
        "annulation-7003",
        Some("other-structure"),
        Setup::Pec,
        "7003",
        true,
    ),
    (
        "annulation-7010",
        Some("valid"),
        Setup::Cancelled,
        "7010",
        true,
    ),
    ("accreditation", Some("valid"), Setup::Pec, "0000", true),
    (
        "accreditation-7010",
        Some("valid"),
        Setup::Nothing,
        "7010",
        true,
    ),
    ("fault-6000", None, Setup::Nothing, "6000", false),
    ("fault-8001", Some("valid"), Setup::Dossier, "8001", true),
    ("fault-8002", None, Setup::Dossier, "8002", true),
    ("fault-8003", Some("bad-ou"), Setup::Dossier, "8003", true),
    ("fault-8004", Some("cps"), Setup::Dossier, "8004", true),
];

fn dir() -> PathBuf {
    crate::helpers::repo().join("docs/examples")
}

/// Shape only: no whitespace between tags, and every value that differs from one answer to the
/// next replaced by its kind.
fn shape(xml: &str) -> String {
    let rules = [
        (r">\s+<", "><"),
        (
            r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "UUID",
        ),
        (
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
            "TIME",
        ),
        (r"[0-9A-Z]{2}M[0-9A-HJKMNP-TV-Z]{13}", "ACCREDITATION"),
        (
            r"<vd:(preuve|certificat_chiffrement|certificat_signature)>[^<]*<",
            "<vd:$1>BASE64<",
        ),
        (
            r"<vd:version_serveur>[^<]*<",
            "<vd:version_serveur>VERSION<",
        ),
        (r"<vd:id_serveur>[^<]*<", "<vd:id_serveur>INSTANCE<"),
        (r"<\?xml[^>]*\?>", ""),
        // The same character, escaped or not (xmllint --format writes the escapes).
        ("&apos;", "'"),
        ("&quot;", "\""),
    ];
    let mut out = xml.trim().to_string();
    for (pattern, by) in rules {
        out = Regex::new(pattern)
            .unwrap()
            .replace_all(&out, by)
            .into_owned();
    }
    out
}

fn validates(xml: &str, version: SoapVersion) -> Result<(), String> {
    match crate::helpers::schema_errors(xml, version) {
        None => Ok(()),
        Some(errors) => Err(format!("does not validate: {errors}")),
    }
}

fn version_of(xml: &str) -> SoapVersion {
    if xml.contains("http://schemas.xmlsoap.org/soap/envelope/") {
        SoapVersion::V11
    } else {
        SoapVersion::V12
    }
}

/// A dossier of B-MARTIN for the dev pharmacy, by the `droits` sample itself.
async fn dossier(app: &TestApp) -> String {
    let request = std::fs::read_to_string(dir().join("droits.request.xml"))
        .unwrap()
        .replace(EXAMPLE_ID, &new_id());
    let reply = send(app, Some("valid"), request).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    first(&reply.body, "numero_dossier").unwrap()
}

async fn send(app: &TestApp, cert: Option<&str>, body: String) -> Reply {
    let version = version_of(&body);
    let mut conn = app.connect(cert).await.unwrap();
    conn.soap(version, body).await.unwrap()
}

/// The `pec` sample on `dossier`: its accreditation number.
async fn pec(app: &TestApp, dossier: &str) -> String {
    let request = std::fs::read_to_string(dir().join("pec.request.xml"))
        .unwrap()
        .replace(EXAMPLE_ID, &new_id())
        .replace(EXAMPLE_DOSSIER, dossier);
    let reply = send(app, Some("valid"), request).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    first(&reply.body, "numero_accreditation").unwrap()
}

async fn run(app: &TestApp, name: &str, cert: Option<&str>, setup: Setup) -> (String, Reply) {
    let mut request = std::fs::read_to_string(dir().join(format!("{name}.request.xml")))
        .unwrap_or_else(|e| panic!("{name}.request.xml: {e}"));
    let id = new_id();
    let needs_dossier = setup != Setup::Nothing;
    let d = if needs_dossier {
        Some(dossier(app).await)
    } else {
        None
    };
    let sql = |q: &'static str| async move {
        sqlx::query(q).execute(&app.db).await.unwrap();
    };
    match setup {
        Setup::Nothing | Setup::Dossier => {}
        Setup::Pec | Setup::Cancelled => {
            let a = pec(app, d.as_deref().unwrap()).await;
            if setup == Setup::Cancelled {
                let cancel = std::fs::read_to_string(dir().join("annulation.request.xml"))
                    .unwrap()
                    .replace(EXAMPLE_ID, &new_id())
                    .replace(EXAMPLE_DOSSIER, d.as_deref().unwrap())
                    .replace(EXAMPLE_ACCREDITATION, &a);
                assert_eq!(code(&send(app, Some("valid"), cancel).await), "0000");
            }
            request = request.replace(EXAMPLE_ACCREDITATION, &a);
        }
        Setup::Expired => {
            sql("UPDATE dispensation.dossier SET expiration = now() - interval '1 minute'").await
        }
        Setup::Closed => sql("UPDATE dispensation.dossier SET statut = 'CLOS'").await,
        Setup::EncryptedClosed => {
            sql("UPDATE identite.amc_service SET actif = false WHERE numero_amc = '12345678' AND service = 'TARIFICATION_CHIFFREE'").await
        }
        Setup::UsedId => {
            let pec = std::fs::read_to_string(dir().join("pec.request.xml"))
                .unwrap()
                .replace(EXAMPLE_ID, &id)
                .replace(EXAMPLE_DOSSIER, d.as_deref().unwrap());
            assert_eq!(code(&send(app, Some("valid"), pec).await), "0000");
        }
    }
    if let Some(d) = &d {
        request = request.replace(EXAMPLE_DOSSIER, d);
    }
    // For UsedId, the id of the PEC above, with the content of a DEVIS.
    request = request.replace(EXAMPLE_ID, &id);
    let reply = send(app, cert, request.clone()).await;
    (request, reply)
}

#[tokio::test]
async fn every_sample_validates_and_has_the_shape_of_a_live_answer() {
    let write = visiodroits::config::env_var("VD_WRITE_EXAMPLES").is_some();
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for &(name, cert, setup, expected, valid_request) in SAMPLES {
        // One server per sample: each starts from the fixtures.
        let app = TestApp::spawn().await;
        let request_file = dir().join(format!("{name}.request.xml"));
        let request_text = std::fs::read_to_string(&request_file).unwrap();
        if valid_request {
            if let Err(e) = validates(&request_text, version_of(&request_text)) {
                failures.push(format!("{name}.request.xml {e}"));
            }
        }
        let (_, reply) = run(&app, name, cert, setup).await;
        let got = code(&reply);
        if got != expected {
            failures.push(format!(
                "{name}: code {got}, expected {expected}: {}",
                reply.body
            ));
            continue;
        }
        if let Err(e) = validates(&reply.body, version_of(&request_text)) {
            failures.push(format!("{name}: the live answer {e}"));
        }
        let response_file = dir().join(format!("{name}.response.xml"));
        if write {
            let formatted = std::process::Command::new("xmllint")
                .arg("--format")
                .arg("-")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(reply.body.as_bytes())?;
                    child.wait_with_output()
                })
                .unwrap();
            std::fs::write(&response_file, formatted.stdout).unwrap();
        }
        let sample = std::fs::read_to_string(&response_file)
            .unwrap_or_else(|e| panic!("{}: {e}", response_file.display()));
        if let Err(e) = validates(&sample, version_of(&sample)) {
            failures.push(format!("{name}.response.xml {e}"));
        }
        if shape(&sample) != shape(&reply.body) {
            failures.push(format!(
                "{name}: the sample's shape differs from a live answer's:\n{}\n{}",
                shape(&sample),
                shape(&reply.body)
            ));
        }
        seen.push(format!("{name}.request.xml"));
        seen.push(format!("{name}.response.xml"));
    }
    // Every file of docs/examples is a sample this test sends (and the README).
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "README.md")
        .collect();
    files.sort();
    seen.sort();
    if files != seen {
        failures.push(format!("files without a sample entry: {:?}", {
            let mut extra = files.clone();
            extra.retain(|f| !seen.contains(f));
            extra
        }));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_soapui_project_calls_every_operation_with_the_samples_and_the_demo_card() {
    let project = std::fs::read_to_string(
        crate::helpers::repo().join("docs/soapui/visiodroits-soapui-project.xml"),
    )
    .unwrap();
    let wsdl =
        std::fs::read_to_string(crate::helpers::repo().join("wsdl/visiodroits.wsdl")).unwrap();
    let operations =
        Regex::new(r#"<wsdl:operation name="([A-Za-z]+)">\s*<wsdl:documentation>"#).unwrap();
    let names: Vec<&str> = operations
        .captures_iter(&wsdl)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in names {
        let declared = format!(
            r#"action="urn:visiodroits:v1:{name}" name="{name}" bindingOperationName="{name}""#
        );
        assert!(
            project.contains(&declared),
            "{name} missing from the SoapUI project"
        );
    }
    // Each call sends a sample of docs/examples as it is, with the demo's card.
    let call = Regex::new(r#"(?s)<con:call name="([a-z-]+)" sslKeystore="valid.p12">.*?<con:request><!\[CDATA\[(.*?)\]\]></con:request>"#).unwrap();
    let mut calls = 0;
    for c in call.captures_iter(&project) {
        let sample = std::fs::read_to_string(dir().join(format!("{}.request.xml", &c[1]))).unwrap();
        assert_eq!(c[2].trim(), sample.trim(), "{}", &c[1]);
        calls += 1;
    }
    assert_eq!(calls, 6);
    assert!(
        project.contains("<con:source>${projectDir}/../../var/pki/clients/valid.p12</con:source>")
    );
    assert!(project.contains(&format!(
        "<con:password>{}</con:password>",
        visiodroits_devkit::pki::P12_PASSWORD
    )));
}
