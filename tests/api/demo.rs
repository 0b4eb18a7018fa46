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
