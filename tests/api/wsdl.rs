//! The WSDL and schema served by the server, and a standard SOAP client using them.

use crate::helpers::{shared, TestApp};

#[tokio::test]
async fn wsdl_address_follows_the_host_the_client_used() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(None).await.unwrap();
    let port = app.addr().port();
    let reply = conn.get("/visiodroits?wsdl").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains(&format!(
            "location=\"https://localhost:{port}/visiodroits\""
        )),
        "{}",
        reply.body
    );
    assert!(reply.body.contains(&format!(
        "https://localhost:{port}/visiodroits?xsd=visiodroits.xsd"
    )));
    for op in [
        "DemandeDroits",
        "DldTar",
        "AnnulationTar",
        "ServicesOuverts",
    ] {
        assert!(
            reply
                .body
                .contains(&format!("<wsdl:operation name=\"{op}\">")),
            "{op}"
        );
    }
    let req = http::Request::get("/visiodroits?wsdl")
        .header("host", format!("127.0.0.1:{port}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = conn.send(req).await.unwrap();
    assert!(reply.body.contains(&format!(
        "location=\"https://127.0.0.1:{port}/visiodroits\""
    )));

    let xsd = conn.get("/visiodroits?xsd=visiodroits.xsd").await.unwrap();
    assert_eq!(xsd.status, 200);
    assert_eq!(
        xsd.body,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../wsdl/visiodroits.xsd"
        ))
        .unwrap()
    );
    assert_eq!(
        conn.get("/visiodroits?xsd=../../etc/passwd")
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(conn.get("/elsewhere").await.unwrap().status, 404);
}

/// Runs `tests/clients/lxml_schema.py ARG` with `stdin`; its output.
async fn lxml_schema(arg: &str, stdin: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/clients/lxml_schema.py"
    );
    let python = visiodroits::config::env_var("VD_TEST_PYTHON").unwrap_or_else(|| "python3".into());
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(arg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "lxml (pip install lxml, or zeep):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn the_wsdl_compiles_as_one_served_file_and_from_a_checkout() {
    let app = TestApp::spawn().await;
    let mut conn = app.connect(None).await.unwrap();
    let port = app.addr().port();
    let single = conn.get("/visiodroits?wsdl&single").await.unwrap();
    assert_eq!(single.status, 200);
    assert!(!single.body.contains("schemaLocation"), "{}", single.body);
    assert!(single.body.contains(&format!(
        "location=\"https://localhost:{port}/visiodroits\""
    )));
    let served = lxml_schema("-", &single.body).await;
    let checkout = lxml_schema(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../wsdl/visiodroits.wsdl"),
        "",
    )
    .await;
    assert!(served.starts_with("ok "), "{served}");
    // The same schema either way: as many global elements.
    assert_eq!(served, checkout);
}

#[tokio::test]
async fn a_standard_soap_client_loads_the_wsdl_and_calls_services_ouverts() {
    let app = TestApp::spawn().await;
    let s = shared();
    let url = format!("https://localhost:{}/visiodroits?wsdl", app.addr().port());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/clients/zeep_services.py"
    );
    let python = visiodroits::config::env_var("VD_TEST_PYTHON").unwrap_or_else(|| "python3".into());
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(&url)
        .arg(s.pki_path("ca/root.pem"))
        .arg(s.pki_path("clients/valid.pem"))
        .arg(s.pki_path("clients/valid.key"))
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zeep failed (pip install zeep):\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, vec!["0000", "12345678", "55555555", "987654321"]);
}
