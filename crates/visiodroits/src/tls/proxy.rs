//! PROXY protocol v2 (HAProxy's specification, section 2.2): the address of the client a TCP
//! balancer forwards, read before the TLS handshake, and only from the balancers the operator
//! names (`VD_PROXY_PROTOCOL_FROM`). From anyone else a PROXY header is refused: it would let a
//! client choose the address the audit, the logs and the per-address cap see.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The 12 bytes that open every v2 header.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Why a PROXY header was refused (metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not the v2 signature, an unknown version or command, a length out of bounds.
    Malformed,
    /// The connection closed or stalled inside the header.
    Truncated,
}

impl Refusal {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "proxy_malformed",
            Refusal::Truncated => "proxy_truncated",
        }
    }
}

/// The client address of a v2 header read from `stream` (the balancer's own connection, for a
/// `LOCAL` header such as a health check's, is `None`). Reads exactly the header.
pub(crate) async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, Refusal> {
    let mut fixed = [0u8; 16];
    read_exact(stream, &mut fixed).await?;
    if fixed[..12] != SIGNATURE || fixed[12] >> 4 != 2 {
        return Err(Refusal::Malformed);
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    // Addresses and TLVs; a balancer sends far less than this.
    if len > 1024 {
        return Err(Refusal::Malformed);
    }
    let mut rest = vec![0u8; len];
    read_exact(stream, &mut rest).await?;
    match (fixed[12] & 0x0f, fixed[13]) {
        // LOCAL: the balancer speaks for itself (health checks); its addresses are ignored. So
        // does PROXY with an unspecified family (the specification: use the real endpoints).
        (0, _) | (1, 0x00) => Ok(None),
        (1, family) => parse_addresses(family, &rest)
            .map(|a| Some(SocketAddr::new(a.ip().to_canonical(), a.port()))),
        _ => Err(Refusal::Malformed),
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), Refusal> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| Refusal::Truncated)
}

/// The source address of a `PROXY` command over TCP (IPv4 `0x11`, IPv6 `0x21`).
fn parse_addresses(family: u8, rest: &[u8]) -> Result<SocketAddr, Refusal> {
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match family {
        0x11 if rest.len() >= 12 => {
            let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            Ok(SocketAddr::new(IpAddr::V4(ip), port(&rest[8..10])))
        }
        0x21 if rest.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&rest[..16]);
            Ok(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port(&rest[32..34]),
            ))
        }
        _ => Err(Refusal::Malformed),
    }
}

/// Whether `start` (the first bytes a client sent) opens a PROXY header, v2 or v1.
pub(crate) fn opens_a_header(start: &[u8]) -> bool {
    let n = start.len().min(12);
    n > 0 && (start[..n] == SIGNATURE[..n] || b"PROXY "[..n.min(6)] == start[..n.min(6)])
}

/// A v2 header for `src` → `dst` (the tests' balancer, and a reference for operators' tools).
pub fn header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

/// Refuses a connection for `what`, as an I/O error the acceptor drops.
pub(crate) fn refused(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("PROXY protocol: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_the_source_address() {
        let src: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let dst: SocketAddr = "10.0.0.1:8443".parse().unwrap();
        let h = header(src, dst);
        assert_eq!(parse_addresses(h[13], &h[16..]), Ok(src));
        let src6: SocketAddr = "[2001:db8::9]:40000".parse().unwrap();
        let h = header(src6, dst);
        assert_eq!(parse_addresses(h[13], &h[16..]), Ok(src6));
        assert_eq!(
            parse_addresses(0x12, &h[16..]),
            Err(Refusal::Malformed),
            "UDP"
        );
        assert_eq!(parse_addresses(0x11, &[0; 4]), Err(Refusal::Malformed));
        assert!(opens_a_header(&SIGNATURE[..5]));
        assert!(opens_a_header(b"PROXY TCP4 1.2.3.4"));
        assert!(!opens_a_header(&[0x16, 0x03, 0x01]), "a TLS ClientHello");
    }
}
