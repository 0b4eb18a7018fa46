//! SOAP stacks nobody here wrote, against a real server over mTLS: PHP's `SoapClient` calls
//! every operation from the served WSDL and reads a Fault's detail; gSOAP generates code from the
//! single-file WSDL without a warning; curl fetches the WSDL over HTTP/2. (zeep is in `wsdl.rs`.)

use tokio::process::Command;

use visiodroits_devkit::pki::DEV_FINESS;

use crate::helpers::{shared, TestApp};

/// Runs `cmd` without blocking the runtime the in-process server shares.
async fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .await
        .expect("the tool runs (see scripts/packages.sh)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn php_soapclient_calls_every_operation_and_reads_faults() {
    let app = TestApp::spawn().await;
    let s = shared();
    let wsdl = format!("https://localhost:{}/visiodroits?wsdl", app.addr().port());
    let script = crate::helpers::repo().join("tests/clients/php_soapclient.php");
    let (ok, out) = run(Command::new("php")
        .arg(&script)
        .arg(&wsdl)
        .arg(s.pki_path("ca/root.pem"))
        .arg(s.pki_path("clients/valid.pem"))
        .arg(s.pki_path("clients/valid.key"))
        .arg(crate::tarification::valid_ps())
        .arg(DEV_FINESS))
    .await;
    assert!(
        ok,
        "php SoapClient failed (apt-get install php-cli php-soap):\n{out}"
    );
    for line in [
        "ServicesOuverts 0000",
        "DemandeDroits 0000",
        "DldTar-DEVIS 0000 7.00",
        "DldTar-PEC 0000 7.00",
        "ConsultationAccreditation 0000 ACTIVE",
        "AnnulationTar 0000",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
    }
    // SOAP 1.2: an access refusal is a Sender Fault whose detail carries the code.
    assert!(out.lines().any(|l| l.starts_with("Fault 8001 ")), "{out}");
}

#[tokio::test]
async fn gsoap_generates_from_the_single_file_wsdl_without_a_warning() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(None).await.unwrap();
    let single = conn.get("/visiodroits?wsdl&single").await.unwrap();
    assert_eq!(single.status, 200);
    let dir = shared()
        .base
        .join(format!("gsoap-{}", crate::helpers::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("visiodroits.wsdl"), &single.body).unwrap();
    // -N: one service per binding (SOAP 1.2 and SOAP 1.1), which wsdl2h otherwise merges with a
    // warning.
    let (ok, out) = run(Command::new("wsdl2h").current_dir(&dir).args([
        "-Nvd",
        "-o",
        "visiodroits.h",
        "visiodroits.wsdl",
    ]))
    .await;
    assert!(ok, "wsdl2h (apt-get install gsoap):\n{out}");
    assert!(!out.to_lowercase().contains("warning"), "{out}");
    let header = std::fs::read_to_string(dir.join("visiodroits.h")).unwrap();
    for operation in [
        "DemandeDroits",
        "DldTar",
        "AnnulationTar",
        "ServicesOuverts",
        "ConsultationAccreditation",
    ] {
        assert!(
            header.contains(operation),
            "{operation} missing from the header"
        );
    }
    let (ok, out) = run(Command::new("soapcpp2").current_dir(&dir).args([
        "-C",
        "-x",
        "-L",
        "-j",
        "visiodroits.h",
    ]))
    .await;
    assert!(ok, "soapcpp2:\n{out}");
    assert!(!out.to_lowercase().contains("warning"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn curl_over_http2_gets_the_wsdl_addressed_to_the_host_it_used() {
    let app = TestApp::spawn().await;
    let port = app.addr().port();
    let s = shared();
    let (ok, out) = run(Command::new("curl")
        .args(["-sS", "--http2", "-w", "\n%{http_version}", "--cacert"])
        .arg(s.pki_path("ca/root.pem"))
        .arg(format!("https://localhost:{port}/visiodroits?wsdl")))
    .await;
    assert!(ok, "{out}");
    assert!(out.ends_with("\n2"), "not HTTP/2: {out}");
    assert!(
        out.contains(&format!(
            "location=\"https://localhost:{port}/visiodroits\""
        )),
        "{out}"
    );
}
