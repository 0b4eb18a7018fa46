//! How each of our binaries runs its work: on a multi-threaded tokio runtime, an error (the
//! runtime's or the work's) printed once as `error: …` with its causes, and the exit status.

use std::future::Future;
use std::process::ExitCode;

/// Runs `work` to its end and returns its exit status; an error is printed and is a failure.
pub fn run<F>(work: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
