//! The front door against clients that hold connections without completing requests: half an
//! HTTP/1.1 head, an HTTP/2 preface with nothing or only PINGs after it, many unfinished
//! connections from one address; and the PROXY protocol v2 of a configured balancer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use visiodroits::soap::SoapVersion;
use visiodroits_client::Versions;

use crate::helpers::{closed_within, new_id, services_request, tls_for, TestApp};

/// 1 s for a head, 5 s more for the body: a half head that gained the body's time would last 6 s.
fn short(v: &mut std::collections::HashMap<String, String>) {
    v.insert("VD_HEADER_TIMEOUT_SECS".into(), "1".into());
    v.insert("VD_BODY_TIMEOUT_SECS".into(), "5".into());
    v.insert("VD_HANDSHAKE_TIMEOUT_SECS".into(), "2".into());
}

/// A TCP connection to `to` from the local address `from` (127.0.0.2 is another loopback peer).
async fn tcp_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

async fn tls_over(
    tcp: TcpStream,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = (*tls_for(Some("valid"), Versions::Both)).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
}

/// One ServicesOuverts over HTTP/1.1 on `stream`: the status line of the answer.
async fn services_over(stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin)) -> String {
    let body = services_request(SoapVersion::V12, &new_id(), None);
    let request = format!(
        "POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        SoapVersion::V12.content_type(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&answer).contains("</env:Envelope>") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap()
        .to_string()
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn half_a_request_head_is_closed_at_the_header_timeout_not_the_body_one() {
    let app = TestApp::spawn_with(short).await;
    // On a new connection, and on a kept-alive one after a response.
    let mut s = tls_over(TcpStream::connect(app.addr()).await.unwrap(), &[])
        .await
        .unwrap();
    s.write_all(b"POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");

    let mut s = tls_over(TcpStream::connect(app.addr()).await.unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(services_over(&mut s).await, "HTTP/1.1 200 OK");
    // Kept alive past the head timeout while silent...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(services_over(&mut s).await, "HTTP/1.1 200 OK");
    // ...but a half head after it gets the head's time only.
    s.write_all(b"POST /visiodroits HTTP/1.1\r\nHost: local")
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn an_http2_connection_without_a_request_is_closed_whatever_the_server_writes() {
    let app = TestApp::spawn_with(short).await;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings = frame(0x4, 0, 0, &[]);
    let settings_ack = frame(0x4, 0x1, 0, &[]);

    // The preface and SETTINGS, then nothing: the server's SETTINGS and ACK do not keep it.
    let mut s = tls_over(TcpStream::connect(app.addr()).await.unwrap(), &[b"h2"])
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    s.write_all(&[PREFACE, &settings, &settings_ack].concat())
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(took < Duration::from_secs(3), "preface only: {took:?}");

    // PINGs every 200 ms, each answered by the server: closed all the same.
    let mut s = tls_over(TcpStream::connect(app.addr()).await.unwrap(), &[b"h2"])
        .await
        .unwrap();
    s.write_all(&[PREFACE, &settings, &settings_ack].concat())
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let mut answered = 0;
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        if s.write_all(&frame(0x6, 0, 0, &[1; 8])).await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => answered += buf[..n].windows(2).filter(|w| w == &[0x06, 0x01]).count(),
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "PINGs kept the connection for {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(answered > 0, "the server answered the PINGs");

    // A real HTTP/2 client is served.
    let mut conn = app.connect(Some("valid")).await.unwrap();
    let reply = crate::helpers::services_on(&mut conn).await.unwrap();
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn one_address_holds_at_most_its_cap_of_unfinished_connections() {
    let app = TestApp::spawn_with(|v| {
        short(v);
        v.insert("VD_HANDSHAKE_TIMEOUT_SECS".into(), "10".into());
        v.insert("VD_HEADER_TIMEOUT_SECS".into(), "10".into());
        v.insert("VD_MAX_PENDING_PER_PEER".into(), "5".into());
    })
    .await;
    // Five connections that say nothing hold the address's five slots.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tcp_from("127.0.0.1", app.addr()).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The sixth is closed at once.
    let mut sixth = tcp_from("127.0.0.1", app.addr()).await;
    let mut b = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), sixth.read(&mut b)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    // Another address is served.
    let mut other = tls_over(tcp_from("127.0.0.2", app.addr()).await, &[])
        .await
        .unwrap();
    assert_eq!(services_over(&mut other).await, "HTTP/1.1 200 OK");
    // Counted.
    let (_, metrics) = app.ops_get("/metrics").await;
    assert!(
        metrics.contains("vd_connections_refused_total{reason=\"peer_pending_cap\"} 1"),
        "{metrics}"
    );
    // A connection that completed its request no longer counts: one silent one leaves, one
    // connection of the address completes a request, and the address has room again.
    drop(silent.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut served = tls_over(tcp_from("127.0.0.1", app.addr()).await, &[])
        .await
        .unwrap();
    assert_eq!(services_over(&mut served).await, "HTTP/1.1 200 OK");
    let mut again = tls_over(tcp_from("127.0.0.1", app.addr()).await, &[])
        .await
        .unwrap();
    assert_eq!(services_over(&mut again).await, "HTTP/1.1 200 OK");
}

/// The audit row's peer address of the ServicesOuverts with `request_id`.
async fn audited_peer(app: &TestApp, request_id: &str) -> String {
    for _ in 0..50 {
        let peer: Option<String> = sqlx::query_scalar(
            "SELECT adresse_pair FROM audit.journal WHERE id_requete = $1::uuid",
        )
        .bind(request_id)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        if let Some(p) = peer {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no audit row for {request_id}");
}

async fn services_with_id(
    stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin),
    request_id: &str,
) -> String {
    let body = services_request(SoapVersion::V12, request_id, None);
    let request = format!(
        "POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        SoapVersion::V12.content_type(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_configured_balancer_names_the_client_and_nobody_else_can() {
    let app = TestApp::spawn_with(|v| {
        v.insert(
            "VD_PROXY_PROTOCOL_FROM".into(),
            "127.0.0.1/32, 10.9.0.0/16".into(),
        );
    })
    .await;
    let client: SocketAddr = "203.0.113.7:4242".parse().unwrap();

    // From the balancer: the header, then TLS; the audit sees the client's address.
    let mut tcp = tcp_from("127.0.0.1", app.addr()).await;
    tcp.write_all(&visiodroits::tls::proxy::header(client, app.addr()))
        .await
        .unwrap();
    let mut s = tls_over(tcp, &[]).await.unwrap();
    let id = new_id();
    assert_eq!(services_with_id(&mut s, &id).await, "HTTP/1.1 200 OK");
    assert_eq!(audited_peer(&app, &id).await, "203.0.113.7:4242");

    // A LOCAL header (a health check's) keeps the balancer's own address.
    let mut tcp = tcp_from("127.0.0.1", app.addr()).await;
    let mut local = visiodroits::tls::proxy::header(client, app.addr());
    local[12] = 0x20;
    tcp.write_all(&local).await.unwrap();
    let mut s = tls_over(tcp, &[]).await.unwrap();
    let id = new_id();
    assert_eq!(services_with_id(&mut s, &id).await, "HTTP/1.1 200 OK");
    assert!(audited_peer(&app, &id).await.starts_with("127.0.0.1:"));

    // From the balancer without a header, or a malformed one: refused before TLS.
    let tcp = tcp_from("127.0.0.1", app.addr()).await;
    assert!(tls_over(tcp, &[]).await.is_err(), "no header");
    let mut tcp = tcp_from("127.0.0.1", app.addr()).await;
    let mut bad = visiodroits::tls::proxy::header(client, app.addr());
    bad[12] = 0x31;
    tcp.write_all(&bad).await.unwrap();
    let mut b = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut b)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "malformed: {read:?}"
    );

    // A header cut short.
    let mut tcp = tcp_from("127.0.0.1", app.addr()).await;
    tcp.write_all(&visiodroits::tls::proxy::header(client, app.addr())[..10])
        .await
        .unwrap();
    tcp.shutdown().await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut b)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "truncated: {read:?}"
    );

    // From another address, a header is refused: nobody else chooses the audited address.
    let mut tcp = tcp_from("127.0.0.2", app.addr()).await;
    tcp.write_all(&visiodroits::tls::proxy::header(client, app.addr()))
        .await
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut b)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "not a balancer: {read:?}"
    );
    // Without a header it is a client like any other, under its own address.
    let mut s = tls_over(tcp_from("127.0.0.2", app.addr()).await, &[])
        .await
        .unwrap();
    let id = new_id();
    assert_eq!(services_with_id(&mut s, &id).await, "HTTP/1.1 200 OK");
    assert!(audited_peer(&app, &id).await.starts_with("127.0.0.2:"));

    let (_, metrics) = app.ops_get("/metrics").await;
    for reason in ["proxy_malformed", "proxy_not_allowed", "proxy_truncated"] {
        assert!(
            metrics.contains(&format!(
                "vd_connections_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test]
async fn empty_lines_or_a_pipelined_half_head_buy_no_time() {
    let app = TestApp::spawn_with(short).await;
    // Empty lines (which the HTTP parser skips) then half a head: still the head's time.
    let mut s = tls_over(TcpStream::connect(app.addr()).await.unwrap(), &[])
        .await
        .unwrap();
    s.write_all(b"\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(b"POST /visiodroits HTTP/1.1\r\nHost: local")
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A complete request with half of the next head behind it, in one write: the answer comes,
    // then the half head has the head's time from it, not the keep-alive.
    let mut s = tls_over(TcpStream::connect(app.addr()).await.unwrap(), &[])
        .await
        .unwrap();
    let body = services_request(SoapVersion::V12, &new_id(), None);
    let both = format!(
        "POST /visiodroits HTTP/1.1\r\nHost: localhost\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}POST /visiodroits HTTP/1.1\r\nHost: loc",
        SoapVersion::V12.content_type(),
        body.len()
    );
    s.write_all(both.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the half head kept the connection: {:?}", started.elapsed()),
        }
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
