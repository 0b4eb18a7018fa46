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
    visiodroits_wire::binary::run(async {
        if visiodroits_client::cli::run(cli.command).await? {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("error: the response's code is not 0000");
        Ok(ExitCode::FAILURE)
    })
}
