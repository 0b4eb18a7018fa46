//! `import FILE`: rights lines from CSV or JSON Lines (the format is `rights_file`'s), upserted in
//! batches. A bad line is reported with its number and reason and skipped — or, with `--strict`,
//! the whole file is refused in one transaction.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;

use crate::rights_file::{self, Format};
use crate::store::import::{upsert_batch, RightsLine};

/// Lines per transaction (non-strict) and per set-based statement.
const BATCH: usize = 5000;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub imported: u64,
    pub rejected: u64,
    /// "ligne N: reason" for each rejected line (the first 1000).
    pub errors: Vec<String>,
}

/// Imports `path` into the database reached by `pool`. With `strict`, the first bad line
/// refuses the whole file and nothing is written.
pub async fn run(
    pool: &PgPool,
    path: &Path,
    strict: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    run_reader(pool, Box::new(file), Format::of(path), strict, progress).await
}

/// Imports from any reader (the demo's embedded data set).
pub async fn run_reader(
    pool: &PgPool,
    input: Box<dyn Read>,
    format: Format,
    strict: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let show = progress && std::io::stderr().is_terminal();

    let mut strict_tx = if strict {
        Some(pool.begin().await?)
    } else {
        None
    };
    let mut batch: Vec<RightsLine> = Vec::with_capacity(BATCH);
    for (number, line) in rights_file::read(input, format) {
        summary.read += 1;
        match line {
            Ok(line) => batch.push(line),
            Err(reason) => {
                summary.rejected += 1;
                let msg = format!("ligne {number}: {reason}");
                if strict {
                    anyhow::bail!("{msg} — fichier refusé (--strict), rien n'est importé");
                }
                if summary.errors.len() < 1000 {
                    summary.errors.push(msg);
                }
            }
        }
        if batch.len() >= BATCH {
            summary.imported += flush(pool, strict_tx.as_mut(), &mut batch).await?;
        }
        if show && last_report.elapsed().as_millis() >= 500 {
            last_report = Instant::now();
            let rate = summary.read as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r{} lignes lues, {} importées, {} rejetées ({:.0} lignes/s)   ",
                summary.read, summary.imported, summary.rejected, rate
            );
            let _ = std::io::stderr().flush();
        }
    }
    summary.imported += flush(pool, strict_tx.as_mut(), &mut batch).await?;
    if let Some(tx) = strict_tx {
        tx.commit().await?;
    }
    if show {
        eprintln!();
    }
    Ok(summary)
}

async fn flush(
    pool: &PgPool,
    strict_tx: Option<&mut sqlx::Transaction<'static, sqlx::Postgres>>,
    batch: &mut Vec<RightsLine>,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    match strict_tx {
        Some(tx) => upsert_batch(tx, batch).await?,
        None => {
            let mut tx = pool.begin().await?;
            upsert_batch(&mut tx, batch).await?;
            tx.commit().await?;
        }
    }
    let n = batch.len() as u64;
    batch.clear();
    Ok(n)
}
