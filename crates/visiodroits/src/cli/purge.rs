//! `purge`: retention, in batches, audited, with `--dry-run`.

use std::io::{BufRead, Write};

use crate::audit::{self, AuditRecord};
use crate::config::Secret;
use crate::store::retention;

/// Asks on the terminal; `true` only for an explicit yes.
pub fn confirm() -> anyhow::Result<bool> {
    print!("Delete expired pairing rows and old tarification data for good? Type yes: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "yes" | "oui"))
}

pub async fn run(
    url: &Secret<String>,
    pairing_days: u32,
    tarification_days: u32,
    dry_run: bool,
) -> anyhow::Result<String> {
    let pool = super::migrate::admin_pool(url).await?;
    let started = std::time::Instant::now();
    let p = retention::purge(&pool, pairing_days, tarification_days, dry_run, 10_000).await?;
    let summary = format!(
        "appariement {}, tarification {}, dossier {}, reponse {}",
        p.pairings, p.tarifications, p.dossiers, p.responses
    );
    if !dry_run {
        let mut tx = pool.begin().await?;
        audit::insert(
            &mut tx,
            &AuditRecord {
                instance: "admin".into(),
                operation: "purge",
                code: "0000",
                duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
                reason: Some(summary.clone()),
                ..AuditRecord::default()
            },
        )
        .await?;
        tx.commit().await?;
    }
    pool.close().await;
    Ok(if dry_run {
        format!("would delete: {summary} (pairing after {pairing_days} days, tarification after {tarification_days} days past expiry)")
    } else {
        format!("deleted: {summary}")
    })
}
