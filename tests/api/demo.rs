//! The README's first command: the demo prepares everything and its printed curl works.

use std::collections::HashMap;

use visiodroits::cli::demo;
use visiodroits::startup::Server;

use crate::helpers::shared;

#[tokio::test]
async fn demo_prepares_everything_and_its_printed_curl_command_answers_0000() {
    let dir = shared().base.join("demo");
    let overrides: HashMap<String, String> = [
        ("VD_LISTEN", "127.0.0.1:0"),
        ("VD_METRICS_LISTEN", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let issuer_listen: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let prepared = demo::prepare(&dir, overrides.clone(), issuer_listen)
        .await
        .unwrap();
    prepared
        .cluster
        .as_ref()
        .expect("a private cluster")
        .remove_when_process_ends(std::process::id(), &dir.join("pg"))
        .unwrap();
    // A second run reuses ./var: same PKI, same cluster, data loaded again without error.
    let first_ca = std::fs::read(dir.join("pki/ca/root.pem")).unwrap();
    let prepared = demo::prepare(&dir, overrides, issuer_listen).await.unwrap();
    assert_eq!(
        std::fs::read(dir.join("pki/ca/root.pem")).unwrap(),
        first_ca
    );

    let server = Server::start(prepared.config.clone()).await.unwrap();
    let text = demo::instructions(
        &prepared.pki,
        server.addr,
        server.ops_addr,
        &prepared.issuer.issuer,
    );
    let script = text
        .split("----8<----\n")
        .nth(1)
        .expect("a script between the marks");
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ServicesOuverts, DemandeDroits, DEVIS, PEC, ConsultationAccreditation, AnnulationTar,
    // encrypted DEVIS; then, with a PSC token exchanged for the server's, DemandeDroits and DEVIS.
    assert_eq!(
        stdout.matches("<vd:code>0000</vd:code>").count(),
        9,
        "{stdout}"
    );
    // The PEC's proof, verified by openssl, prints the commitment; the consultation shows it
    // active with its justification.
    assert!(stdout.contains("\nnumero_accreditation="), "{stdout}");
    assert!(stdout.contains("\ntotal_amc=7.00\n"), "{stdout}");
    assert!(stdout.contains("<vd:statut>ACTIVE</vd:statut>"), "{stdout}");
    assert!(stdout.contains("<vd:montant_avant_plafonds>"), "{stdout}");
    assert!(stdout.contains("MUTUELLE DEMO"), "{stdout}");
    assert!(stdout.contains("<vd:annulee>true</vd:annulee>"), "{stdout}");
    assert!(
        !stdout.contains("dossier: \n") && !stdout.contains("accreditation: \n"),
        "{stdout}"
    );
    server.shutdown().await.unwrap();
    prepared.cluster.unwrap().stop().unwrap();
}

/// `visiodroits demo` itself, as the README runs it: it serves on VD_LISTEN with its stand-in
/// PSC issuer where `--psc-listen` says (so that a second demo can run beside another, or beside
/// the benchmark), prints that issuer in its instructions, and Ctrl-C stops the server and its
/// cluster with a success.
#[tokio::test]
async fn the_demo_command_serves_until_ctrl_c_with_its_issuer_where_asked() {
    use tokio::io::AsyncBufReadExt;
    let dir = shared().base.join("demo-command");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_visiodroits"))
        .arg("demo")
        .arg("--dir")
        .arg(&dir)
        .arg("--psc-listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VD_LISTEN", "127.0.0.1:0")
        .env("VD_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(120), out.next_line())
            .await
            .expect("the demo is ready within 2 minutes")
            .unwrap()
            .unwrap_or_else(|| panic!("the demo stopped before it was ready:\n{printed}"));
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("ready in") {
            break;
        }
    }
    assert!(
        printed.contains(&format!("https://localhost:{port}/auth/realms/")),
        "{printed}"
    );
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the issuer listens where asked");
    let pid = child.id().unwrap().to_string();
    assert!(tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap()
        .success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("Ctrl-C stops the demo")
        .unwrap();
    assert!(status.success(), "{status}");
}
