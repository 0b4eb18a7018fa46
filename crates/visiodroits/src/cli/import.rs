//! `import FILE`: rights lines from CSV or JSON Lines (the format is `rights_file`'s), staged and
//! merged by chunks. A bad line is reported with its number and reason and skipped — or, with
//! `--strict`, the whole file is refused in one transaction.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;

use crate::rights_file::{self, Format};
use crate::store::import::Import;
pub use crate::store::import::{Merged, CHUNK};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub imported: u64,
    pub rejected: u64,
    /// "ligne N: reason" for each rejected line (the first 1000).
    pub errors: Vec<String>,
    /// What was written.
    pub merged: Merged,
}

/// Imports `path` into the database reached by `pool`. With `strict`, the first bad line
/// refuses the whole file and nothing is written.
pub async fn run(
    pool: &PgPool,
    path: &Path,
    strict: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    run_with(pool, path, strict, false, progress).await
}

/// [`run`], and with `full` the database becomes equal to the file for the AMCs it names.
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

/// One transaction: the valid lines staged and merged chunk by chunk, then (`full`) what the file
/// no longer holds ended. A bad line is skipped and reported, or with `strict` refuses the file;
/// nothing is visible to the exchanges before the whole file went through, and a failure writes
/// nothing.
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

    let mut import = Import::begin(pool, full).await?;
    for (number, line) in rights_file::read(input, format) {
        summary.read += 1;
        match line {
            Ok(line) => {
                import.add(number, line).await?;
                summary.imported += 1;
            }
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
    summary.merged = import.commit().await?;
    if show {
        eprintln!();
    }
    Ok(summary)
}
