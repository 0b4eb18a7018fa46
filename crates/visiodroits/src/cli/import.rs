//! `import FILE`: rights lines from CSV or JSON Lines (the format is `rights_file`'s), staged and
//! merged by chunks. A bad line is reported with its number and reason and skipped — or, with
//! `--strict`, the whole file is refused in one transaction.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::rights_file::{self, Format};
use crate::store::import::{Chunk, Import, Stager};
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
/// nothing. The file is read and staged on a thread of its own, a chunk ahead of the merges.
async fn load(
    pool: &PgPool,
    input: Box<dyn Read + Send>,
    format: Format,
    strict: bool,
    full: bool,
    progress: bool,
) -> anyhow::Result<Summary> {
    let show = progress && std::io::stderr().is_terminal();
    let (sender, mut chunks) = mpsc::channel(1);
    let reader =
        tokio::task::spawn_blocking(move || stage_lines(input, format, strict, show, sender));
    let merged = merge_all(pool, full, &mut chunks).await;
    // A failed merge stops the reader at its next chunk.
    drop(chunks);
    let read = reader.await.context("the file reader stopped")?;
    let import = merged?;
    let mut summary = read?;
    summary.merged = import.commit().await?;
    if show {
        eprintln!();
    }
    Ok(summary)
}

/// Opens the import and merges the chunks until the reader is done.
async fn merge_all(
    pool: &PgPool,
    full: bool,
    chunks: &mut mpsc::Receiver<Chunk>,
) -> sqlx::Result<Import> {
    let mut import = Import::begin(pool, full).await?;
    while let Some(chunk) = chunks.recv().await {
        import.merge(chunk).await?;
    }
    Ok(import)
}

/// Reads and checks the lines, and sends the valid ones by chunks to `chunks` (until it closes).
fn stage_lines(
    input: Box<dyn Read + Send>,
    format: Format,
    strict: bool,
    show: bool,
    chunks: mpsc::Sender<Chunk>,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut stager = Stager::new();
    for (number, line) in rights_file::read(input, format) {
        summary.read += 1;
        match line {
            Ok(line) => {
                summary.imported += 1;
                if let Some(chunk) = stager.add(number, line) {
                    if chunks.blocking_send(chunk).is_err() {
                        return Ok(summary);
                    }
                }
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
    if let Some(chunk) = stager.finish() {
        // A closed channel means the merges failed; their error is the one reported.
        let _ = chunks.blocking_send(chunk);
    }
    Ok(summary)
}
