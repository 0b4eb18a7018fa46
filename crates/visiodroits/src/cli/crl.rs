//! `crl status` (what the CRL directory holds, per issuer, read with the server's configuration)
//! and `crl refresh` (asks the running server to reload now, through its operations listener).

use std::fmt::Write;

use crate::config::Config;
use crate::tls::crl::{CrlSet, Freshness};
use crate::tls::trust::CaSet;

fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|| t.to_string())
}

/// The status report; `Err` when an issuer's certificates would be refused (missing or stale CRL).
pub fn status(config: &Config) -> anyhow::Result<String> {
    let cas = CaSet::load(&config.client_ca)?;
    let refresh = i64::try_from(config.crl.refresh.as_secs()).unwrap_or(i64::MAX);
    let crls = CrlSet::load_dir(&config.crl.dir, &cas, refresh)?;
    let now = chrono::Utc::now().timestamp();
    let grace = i64::try_from(config.crl.grace.as_secs()).unwrap_or(i64::MAX);
    let mut out = String::new();
    let mut failing = 0;
    for ca in cas.all() {
        let freshness = crls.freshness(&ca.id, now, grace);
        let verdict = match freshness {
            Freshness::Fresh => "fresh",
            Freshness::Stale if config.crl.allow_stale => "STALE (accepted: VD_CRL_ALLOW_STALE)",
            Freshness::Missing if config.crl.allow_missing => {
                "MISSING (accepted: VD_CRL_ALLOW_MISSING)"
            }
            Freshness::Stale => "STALE: certificates refused",
            Freshness::Missing => "MISSING: certificates refused",
        };
        if matches!(
            (freshness, config.crl.allow_stale, config.crl.allow_missing),
            (Freshness::Stale, false, _) | (Freshness::Missing, _, false)
        ) {
            failing += 1;
        }
        let _ = writeln!(out, "{} [key {}]: {verdict}", ca.subject, ca.id.short());
        for c in crls.of_ca(&ca.id) {
            let _ = writeln!(
                out,
                "    {} ({})  thisUpdate {}  nextUpdate {}  entries {}  file {}",
                c.kind(),
                c.scope.describe(),
                when(c.this_update),
                c.next_update
                    .map(when)
                    .unwrap_or_else(|| format!("- (current until {})", when(c.valid_until))),
                c.entries,
                c.source.display()
            );
        }
    }
    for r in &crls.refused {
        let _ = writeln!(out, "refused: {r}");
    }
    if failing > 0 {
        anyhow::bail!("{out}{failing} issuer(s) without a usable CRL");
    }
    Ok(out)
}

/// Asks the server listening on `VD_METRICS_LISTEN` to reload its CRLs and server certificate.
pub async fn refresh(config: &Config) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(config.metrics_listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "no server on VD_METRICS_LISTEN {}: {e}",
                config.metrics_listen
            )
        })?;
    let authorization = config
        .ops_token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {}\r\n", t.expose()))
        .unwrap_or_default();
    let request = format!(
        "POST /crl/refresh HTTP/1.1\r\nHost: localhost\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let ok = answer.starts_with("HTTP/1.1 200");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    if ok {
        Ok(body)
    } else {
        anyhow::bail!("refresh failed: {body}")
    }
}
