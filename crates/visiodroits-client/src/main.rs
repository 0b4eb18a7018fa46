//! `visiodroits-client`: every exchange against a Visiodroits server from the command line, with a
//! client certificate, as a pharmacy's software would. Exit status 0 only when the response's
//! code is 0000.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "visiodroits-client",
    version,
    about = "Try every exchange against a Visiodroits server (mTLS with PEM or PKCS#12)"
)]
struct Cli {
    #[command(subcommand)]
    command: visiodroits_client::cli::ClientCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(visiodroits_client::cli::run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: the response's code is not 0000");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
