//! Slow and greedy clients (spec/security.md "Input limits"): deadlines hold for every client,
//! the server keeps answering others, and the connection cap holds.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use visiodroits::soap::SoapVersion;
use visiodroits_client::Versions;

use crate::helpers::{closed_within, code, new_id, services_request, tls_for, ServerProcess};

/// Short deadlines: 1 s to start a request, 2 s (1 + 1) to send it and get its answer going.
fn short(v: &mut std::collections::HashMap<String, String>) {
    v.insert("VD_HEADER_TIMEOUT_SECS".into(), "1".into());
    v.insert("VD_BODY_TIMEOUT_SECS".into(), "1".into());
    v.insert("VD_HANDSHAKE_TIMEOUT_SECS".into(), "1".into());
}

async fn tls(server: &ServerProcess) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(tls_for(Some("valid"), Versions::Both))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

async fn others_are_served(server: &ServerProcess) {
    let started = Instant::now();
    let mut conn = server.connect(Some("valid")).await.unwrap();
    let reply = conn
        .soap(
            SoapVersion::V12,
            services_request(SoapVersion::V12, &new_id(), None),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slowloris_headers_are_cut_off() {
    let server = ServerProcess::spawn(short).await;
    let mut s = tls(&server).await;
    let dribble = async {
        for b in b"POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
            .iter()
            .chain(b"a".repeat(100).iter())
        {
            if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (_, ()) = tokio::join!(dribble, others_are_served(&server));
    let took = closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));
}

#[tokio::test]
async fn a_slow_body_is_cut_off() {
    let server = ServerProcess::spawn(short).await;
    let mut s = tls(&server).await;
    let head = format!(
        "POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nContent-Type: {}\r\nContent-Length: 1000\r\n\r\n<soap:Envelope",
        SoapVersion::V12.content_type()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    others_are_served(&server).await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_responses_is_dropped() {
    let server = ServerProcess::spawn(short).await;
    let mut s = tls(&server).await;
    // Pipeline many requests and never read: the responses pile up until the server gives up.
    let body = services_request(SoapVersion::V12, &new_id(), None);
    let one = format!(
        "POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        SoapVersion::V12.content_type(),
        body.len()
    );
    let started = Instant::now();
    let mut write_failed = false;
    while started.elapsed() < Duration::from_secs(10) {
        match tokio::time::timeout(Duration::from_secs(1), s.write_all(one.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                write_failed = true;
                break;
            }
            Err(_) => {
                // Our writes block: the server stopped reading; it must close us soon.
            }
        }
    }
    others_are_served(&server).await;
    if !write_failed {
        let took = closed_within(&mut s, Duration::from_secs(10)).await;
        assert!(took < Duration::from_secs(10));
    }
}

fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

#[tokio::test]
async fn thousands_of_silent_connections_are_freed_and_the_cap_holds() {
    let silent = 2000.min(open_files_limit().saturating_sub(300));
    let server = ServerProcess::spawn(|v| {
        short(v);
        v.insert("VD_MAX_CONNECTIONS".into(), (silent + 50).to_string());
        v.insert("VD_MAX_PENDING_PER_PEER".into(), (silent + 50).to_string());
    })
    .await;
    let mut idle = Vec::with_capacity(silent);
    for _ in 0..silent {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // They hold slots, yet others are served.
    others_are_served(&server).await;
    // Over the cap, connections are dropped at once.
    let mut over = Vec::new();
    for _ in 0..100 {
        over.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    let mut dropped = 0;
    for s in &mut over {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) | Ok(Err(_)) =
            tokio::time::timeout(Duration::from_millis(500), s.read(&mut b)).await
        {
            dropped += 1;
        }
    }
    assert!(
        dropped >= 40,
        "connections beyond the cap are refused: {dropped}"
    );
    // After the handshake deadline every silent connection is closed by the server.
    let started = Instant::now();
    for s in &mut idle {
        closed_within(s, Duration::from_secs(5)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    drop(idle);
    drop(over);
    others_are_served(&server).await;
}
