//! The XML attack corpus (spec/security.md "Input limits"): each hostile document gets its SOAP
//! Fault quickly, the server's memory stays bounded, and nothing of it reaches the database.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use visiodroits::soap::SoapVersion;

use crate::helpers::{code, envelope, new_id, services_request, shared, tls_for, ServerProcess};

fn services_body() -> &'static str {
    "<vd:demande_services><vd:entete><vd:id_logiciel>X</vd:id_logiciel><vd:version_logiciel>1</vd:version_logiciel><vd:id_requete>6f1c2f0e-8f0e-4c53-9b61-0c1f8d1e2a3b</vd:id_requete></vd:entete></vd:demande_services>"
}

fn with_doctype(doctype: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>{doctype}<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:vd=\"urn:visiodroits:v1\"><soap:Body>{}</soap:Body></soap:Envelope>",
        services_body().replace("<vd:id_logiciel>X", "<vd:id_logiciel>&lol9;")
    )
}

/// (name, content type, body, expected HTTP status, expected words in the Fault detail)
fn corpus() -> Vec<(&'static str, &'static str, Vec<u8>, u16, &'static str)> {
    let v12 = SoapVersion::V12.content_type();
    let v11 = SoapVersion::V11.content_type();
    let mut laughs = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    laughs.push(']');
    laughs.push('>');
    let deep = envelope(
        SoapVersion::V12,
        &format!("{}{}", "<vd:a>".repeat(10_000), "</vd:a>".repeat(10_000)),
    );
    let wide = envelope(
        SoapVersion::V12,
        &format!(
            "<vd:demande_services>{}</vd:demande_services>",
            "<vd:x/>".repeat(100_000)
        ),
    );
    let huge_text = envelope(
        SoapVersion::V12,
        &services_body().replace(
            "<vd:id_logiciel>X",
            &format!("<vd:id_logiciel>{}", "A".repeat(200_000)),
        ),
    );
    let huge_attr = envelope(
        SoapVersion::V12,
        &services_body().replace(
            "<vd:demande_services>",
            &format!("<vd:demande_services a=\"{}\">", "B".repeat(100_000)),
        ),
    );
    let many_attrs: String = (0..1000).map(|i| format!(" a{i}=\"1\"")).collect();
    let many_attrs = envelope(
        SoapVersion::V12,
        &services_body().replace(
            "<vd:demande_services>",
            &format!("<vd:demande_services{many_attrs}>"),
        ),
    );
    let many_ns: String = (0..1000)
        .map(|i| format!(" xmlns:p{i}=\"urn:p{i}\""))
        .collect();
    let many_ns = envelope(
        SoapVersion::V12,
        &services_body().replace(
            "<vd:demande_services>",
            &format!("<vd:demande_services{many_ns}>"),
        ),
    );
    let mut bad_utf8 = services_request(SoapVersion::V12, &new_id(), None).into_bytes();
    let at = bad_utf8.len() - 60;
    bad_utf8[at] = 0xC3;
    bad_utf8[at + 1] = 0x28;
    let utf16 = |bom: bool| {
        let text = services_request(SoapVersion::V12, &new_id(), None).replace("UTF-8", "UTF-16");
        let mut out: Vec<u8> = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        for u in text.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    };
    vec![
        (
            "billion laughs",
            v12,
            with_doctype(&laughs).into_bytes(),
            400,
            "DOCTYPE",
        ),
        (
            "external entity (file)",
            v12,
            with_doctype("<!DOCTYPE x [<!ENTITY lol9 SYSTEM \"file:///etc/passwd\">]>")
                .into_bytes(),
            400,
            "DOCTYPE",
        ),
        (
            "external entity (URL)",
            v12,
            with_doctype("<!DOCTYPE x [<!ENTITY lol9 SYSTEM \"http://127.0.0.1:9/x\">]>")
                .into_bytes(),
            400,
            "DOCTYPE",
        ),
        (
            "parameter entities",
            v12,
            with_doctype("<!DOCTYPE x [<!ENTITY % p SYSTEM \"http://127.0.0.1:9/p.dtd\"> %p;]>")
                .into_bytes(),
            400,
            "DOCTYPE",
        ),
        (
            "any DOCTYPE",
            v12,
            with_doctype("<!DOCTYPE soap:Envelope>").into_bytes(),
            400,
            "DOCTYPE",
        ),
        (
            "undeclared entity without DOCTYPE",
            v12,
            with_doctype("").into_bytes(),
            400,
            "entité inconnue",
        ),
        ("depth bomb", v12, deep.into_bytes(), 400, "profondeur"),
        ("wide element", v12, wide.into_bytes(), 400, "éléments XML"),
        (
            "huge text node",
            v12,
            huge_text.into_bytes(),
            400,
            "texte trop long",
        ),
        (
            "huge attribute",
            v12,
            huge_attr.into_bytes(),
            400,
            "attribut trop long",
        ),
        (
            "many attributes",
            v12,
            many_attrs.into_bytes(),
            400,
            "attributs sur un élément",
        ),
        (
            "many namespace declarations",
            v12,
            many_ns.into_bytes(),
            400,
            "attributs sur un élément",
        ),
        (
            "duplicate body elements",
            v12,
            envelope(
                SoapVersion::V12,
                &format!("{}{}", services_body(), services_body()),
            )
            .into_bytes(),
            400,
            "plusieurs éléments dans Body",
        ),
        (
            "SOAP 1.2 envelope as text/xml",
            v11,
            services_request(SoapVersion::V12, &new_id(), None).into_bytes(),
            500,
            "Content-Type",
        ),
        (
            "SOAP 1.1 envelope as application/soap+xml",
            v12,
            services_request(SoapVersion::V11, &new_id(), None).into_bytes(),
            500,
            "Content-Type",
        ),
        ("invalid UTF-8", v12, bad_utf8, 400, "UTF-8"),
        ("UTF-16 with BOM", v12, utf16(true), 400, "UTF-8"),
        ("UTF-16 without BOM", v12, utf16(false), 400, "UTF-8"),
    ]
}

#[tokio::test]
async fn the_attack_corpus_gets_faults_in_bounded_time_and_memory_and_stays_out_of_the_database() {
    let server = ServerProcess::spawn(|_| {}).await;
    let mut conn = server.connect(Some("valid")).await.unwrap();
    // Warm up, then take the baseline.
    for _ in 0..20 {
        let r = conn
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(code(&r), "0000");
    }
    let (_, peak_before) = server.memory_kib();
    for round in 0..5 {
        for (name, content_type, body, status, words) in corpus() {
            let started = Instant::now();
            let req = http::Request::post("/visiodroits")
                .header("content-type", content_type)
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            let reply = match conn.send(req).await {
                Ok(r) => r,
                Err(_) => {
                    conn = server.connect(Some("valid")).await.unwrap();
                    continue;
                }
            };
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name}: {:?}",
                started.elapsed()
            );
            assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.body);
            assert_eq!(code(&reply), "6000", "{name}");
            assert!(reply.body.contains(words), "{name}: {}", reply.body);
            if round == 0 {
                crate::helpers::assert_valid(
                    &reply,
                    if content_type == SoapVersion::V11.content_type() {
                        SoapVersion::V11
                    } else {
                        SoapVersion::V12
                    },
                );
            }
        }
    }
    let (_, peak_after) = server.memory_kib();
    assert!(
        peak_after < peak_before + 64 * 1024,
        "peak resident memory grew from {peak_before} KiB to {peak_after} KiB"
    );
    // The server still serves.
    let r = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&r), "0000");

    // Counted by the metrics.
    let mut ops = tokio::net::TcpStream::connect(server.ops_addr)
        .await
        .unwrap();
    ops.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = String::new();
    ops.read_to_string(&mut metrics).await.unwrap();
    assert!(
        metrics.contains("vd_exchanges_total{operation=\"envelope\",code=\"6000\"}"),
        "{metrics}"
    );

    // Nothing of the attacks reached the database: only fixed-vocabulary audit rows.
    let db = sqlx::PgPool::connect(&shared().admin_url(&server.db_name))
        .await
        .unwrap();
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT j::text FROM audit.journal j WHERE operation = 'envelope'")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(rows.len() >= 18, "refusals are audited: {}", rows.len());
    for row in &rows {
        for payload in [
            "passwd",
            "lol",
            "AAAAAAAAAA",
            "BBBBBBBBBB",
            "urn:p1",
            "127.0.0.1:9",
        ] {
            assert!(!row.contains(payload), "{payload} reached the audit: {row}");
        }
    }
    let other: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM dispensation.dossier) + (SELECT count(*) FROM dispensation.tarification) + (SELECT count(*) FROM dispensation.reponse)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(other, 0);
}

#[tokio::test]
async fn an_envelope_split_across_many_small_writes_is_served() {
    let server = ServerProcess::spawn(|_| {}).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(tls_for(
        Some("valid"),
        visiodroits_client::Versions::Both,
    ))
    .connect("localhost".try_into().unwrap(), tcp)
    .await
    .unwrap();
    let body = services_request(SoapVersion::V12, &new_id(), None);
    let request = format!(
        "POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        SoapVersion::V12.content_type(),
        body.len()
    );
    for chunk in request.as_bytes().chunks(7) {
        tls.write_all(chunk).await.unwrap();
        tls.flush().await.unwrap();
    }
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<vd:code>0000</vd:code>"), "{answer}");
}
