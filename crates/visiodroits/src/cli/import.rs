//! `import FILE`: rights lines from CSV or JSON Lines (the format is `rights_file`'s), upserted in
//! batches. A bad line is reported with its number and reason and skipped — or, with `--strict`,
//! the whole file is refused in one transaction.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;

use crate::rights_file::{self, Format};
use crate::store::import::{encode, merge, Merged, COPY_STAGING, CREATE_STAGING};

/// Bytes of `COPY` data sent at a time.
const CHUNK: usize = 1 << 20;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub imported: u64,
    pub rejected: u64,
    /// "ligne N: reason" for each rejected line (the first 1000).
    pub errors: Vec<String>,
    /// What the merge changed in the database.
    pub merged: Merged,
}

/// Imports `path` into the database reached by `pool`. With `strict`, the first bad line
/// refuses the whole file and nothing is written; with `full`, the database becomes equal to
/// the file for the AMCs it names.
pub async fn run(
    pool: &PgPool,
    path: &Path,
    strict: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    run_with(pool, path, strict, false, progress).await
}

/// [`run`], with `--full`.
pub async fn run_with(
    pool: &PgPool,
    path: &Path,
    strict: bool,
    full: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    load(
        pool,
        Box::new(file),
        Format::of(path),
        strict,
        full,
        progress,
    )
    .await
}

/// Imports from any reader (the demo's embedded data set).
pub async fn run_reader(
    pool: &PgPool,
    input: Box<dyn Read + Send>,
    format: Format,
    strict: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    load(pool, input, format, strict, false, progress).await
}

/// One transaction: the valid lines streamed by `COPY` into the staging table, then merged. A
/// bad line is skipped and reported, or with `strict` refuses the file; nothing is written
/// unless the whole file went through.
async fn load(
    pool: &PgPool,
    input: Box<dyn Read + Send>,
    format: Format,
    strict: bool,
    full: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let show = progress && std::io::stderr().is_terminal();

    let mut tx = pool.begin().await?;
    sqlx::query(CREATE_STAGING).execute(&mut *tx).await?;
    let mut copy = tx.copy_in_raw(COPY_STAGING).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
    for (number, line) in rights_file::read(input, format) {
        summary.read += 1;
        match line {
            Ok(line) => {
                encode(number, &line, &mut buf);
                summary.imported += 1;
            }
            Err(reason) => {
                summary.rejected += 1;
                let msg = format!("ligne {number}: {reason}");
                if strict {
                    copy.abort("fichier refusé").await.ok();
                    anyhow::bail!("{msg} — fichier refusé (--strict), rien n'est importé");
                }
                if summary.errors.len() < 1000 {
                    summary.errors.push(msg);
                }
            }
        }
        if buf.len() >= CHUNK {
            copy.send(std::mem::replace(
                &mut buf,
                Vec::with_capacity(CHUNK + 4096),
            ))
            .await?;
        }
        if show && last_report.elapsed().as_millis() >= 500 {
            last_report = Instant::now();
            let rate = summary.read as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r{} lignes lues, {} rejetées ({:.0} lignes/s)   ",
                summary.read, summary.rejected, rate
            );
            let _ = std::io::stderr().flush();
        }
    }
    if !buf.is_empty() {
        copy.send(buf).await?;
    }
    copy.finish().await?;
    if show {
        eprint!(
            "\r{} lignes lues, fusion…                         ",
            summary.read
        );
        let _ = std::io::stderr().flush();
    }
    summary.merged = merge(&mut tx, full).await?;
    tx.commit().await?;
    if show {
        eprintln!();
    }
    Ok(summary)
}
