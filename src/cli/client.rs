//! `client send`: posts a SOAP envelope to a server with a client certificate, over one kept-alive
//! mTLS connection, optionally many times to measure latency. For vendors trying the exchanges
//! with their own messages.

use std::io::Read;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::client::{tls_config, ClientIdentity, SoapConnection, Versions};
use crate::soap::SoapVersion;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The server's base URL (host and port; the path is /visiodroits).
    #[arg(long, default_value = "https://localhost:8443")]
    pub url: String,
    /// PEM bundle to trust for the server certificate.
    #[arg(long)]
    pub ca: PathBuf,
    /// Client certificate chain (PEM), with --key.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Client certificate and key as PKCS#12, with --password.
    #[arg(long, conflicts_with = "cert")]
    pub p12: Option<PathBuf>,
    #[arg(long, default_value = "")]
    pub password: String,
    /// Send as SOAP 1.1 (text/xml) instead of SOAP 1.2.
    #[arg(long)]
    pub soap11: bool,
    /// TLS version: both, 1.2 or 1.3.
    #[arg(long, default_value = "both")]
    pub tls: String,
    /// Send the same envelope this many times on the connection and print latencies.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// The envelope to send (`-` for standard input).
    pub file: PathBuf,
}

/// Sends and prints the (last) response; latency figures go to standard error.
pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let mut body = Vec::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
    }
    let identity = match (&args.cert, &args.key, &args.p12) {
        (Some(c), Some(k), _) => Some(ClientIdentity::from_pem_files(c, k)?),
        (_, _, Some(p)) => Some(ClientIdentity::from_pkcs12(p, &args.password)?),
        _ => None,
    };
    let versions = match args.tls.as_str() {
        "both" => Versions::Both,
        "1.2" => Versions::Tls12,
        "1.3" => Versions::Tls13,
        other => anyhow::bail!("--tls {other}: both, 1.2 or 1.3"),
    };
    let config = tls_config(&args.ca, identity, versions)?;
    let host_port = args
        .url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .trim_end_matches("/visiodroits")
        .to_string();
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port.as_str(), |(h, _)| h)
        .to_string();
    let addr = if host_port.contains(':') {
        host_port.clone()
    } else {
        format!("{host_port}:443")
    }
    .to_socket_addrs()?
    .next()
    .context("the server address does not resolve")?;
    let version = if args.soap11 {
        SoapVersion::V11
    } else {
        SoapVersion::V12
    };

    let mut conn = SoapConnection::connect(addr, &host, config).await?;
    let mut took = Vec::with_capacity(args.repeat as usize);
    let mut last = None;
    for _ in 0..args.repeat.max(1) {
        let started = Instant::now();
        let reply = conn.soap(version, body.clone()).await?;
        took.push(started.elapsed());
        last = Some(reply);
    }
    let reply = last.expect("at least one request");
    eprintln!(
        "HTTP {} ({:?}, resumed: {})",
        reply.status, conn.tls_version, conn.resumed
    );
    println!("{}", reply.body);
    if took.len() > 1 {
        took.sort();
        let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
        eprintln!(
            "{} requests on one connection: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            took.len(),
            at(0.50).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0,
            took[took.len() - 1].as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
