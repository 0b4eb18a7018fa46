//! `visiodroits`: clap dispatch only.

use std::process::ExitCode;

use clap::Parser;
use visiodroits::cli::{
    self, AccreditationCommand, AmcCommand, AnnuaireCommand, AuditCommand, Cli, Command,
    CrlCommand, PkiCommand, PscCommand,
};
use visiodroits::config::Config;
use visiodroits::{startup, telemetry};

/// glibc's malloc and free were ~12 % of the server's CPU under load (a profile of the rights
/// exchange); mimalloc's thread-local free lists cost a fraction of that. With the crate's
/// `override` feature the binary's malloc is mimalloc's for C code too: OpenSSL parses a CRL with
/// one allocation per entry and field, and glibc kept the freed pages (432 MB of RSS with a
/// 1,000,000-entry CRL in force, 112 MB with mimalloc, which hands them back).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    visiodroits_wire::binary::run(async {
        let loaded = match &cli.env_file {
            Some(file) => visiodroits::config::load_env_file(file),
            None => Ok(()),
        };
        Ok(
            match async {
                loaded?;
                run(cli.command).await
            }
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    cli::exit::status_of(&e)
                }
            },
        )
    })
}

/// The end of a file load: each rejected line on stderr, the summary on stdout, and a failure
/// (exit 1) when lines were rejected, the others being `kept` all the same.
fn report_lines(errors: &[String], rejected: u64, summary: &str, kept: &str) -> anyhow::Result<()> {
    for e in errors {
        eprintln!("{e}");
    }
    println!("{summary}");
    if rejected > 0 {
        anyhow::bail!("{rejected} line(s) rejected (skipped; the others are {kept})");
    }
    Ok(())
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let config = Config::from_env()?;
            telemetry::init(config.log_format, &config.log_filter);
            let signals = startup::Signals::install()?;
            startup::Server::start(config)
                .await?
                .run_until_signal(signals)
                .await
        }
        Command::Demo { dir, psc_listen } => cli::demo::run(&dir, psc_listen).await,
        Command::Migrate { login_role } => {
            let url = visiodroits::config::database_url_from_env()?;
            cli::migrate::run(&url, login_role.as_deref()).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Pki {
            command: PkiCommand::BigCrl { dir, count },
        } => {
            let started = std::time::Instant::now();
            visiodroits_devkit::pki::big_crl(&dir, count)?;
            println!(
                "CRL with {count} entries written in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Pki {
            command: PkiCommand::Dev { dir },
        } => {
            visiodroits_devkit::pki::generate(&dir)?;
            println!(
                "development PKI written to {}\n{}",
                dir.display(),
                visiodroits_devkit::pki::describe()
            );
            Ok(())
        }
        Command::Psc {
            command:
                PscCommand::DevIssuer {
                    listen,
                    pki,
                    secret_file,
                },
        } => cli::psc::dev_issuer(listen, &pki, &secret_file).await,
        Command::Psc {
            command:
                PscCommand::Mint {
                    issuer,
                    ca,
                    ps_id,
                    bind,
                    structures,
                    opaque,
                    lifetime,
                },
        } => {
            let token = cli::psc::mint(&cli::psc::MintArgs {
                issuer: &issuer,
                ca: &ca,
                ps_id: &ps_id,
                bind: bind.as_deref(),
                structures: &structures,
                opaque,
                lifetime,
            })
            .await?;
            println!("{token}");
            Ok(())
        }
        Command::Import { file, strict, full } => {
            let url = visiodroits::config::database_url_from_env()?;
            let pool = cli::migrate::admin_pool(&url).await?;
            let started = std::time::Instant::now();
            let summary = cli::import::run_with(&pool, &file, strict, full, true).await?;
            let m = summary.merged;
            let mut done = format!(
                "{} ligne(s) lue(s), {} importée(s), {} rejetée(s) en {:.1} s\n\
                 bénéficiaires : {} ajouté(s), {} mis à jour ; garanties : {} ajoutée(s), {} mise(s) à jour",
                summary.read,
                summary.imported,
                summary.rejected,
                started.elapsed().as_secs_f64(),
                m.beneficiaries_added,
                m.beneficiaries_updated,
                m.guarantees_added,
                m.guarantees_updated,
            );
            if full {
                done.push_str(&format!(", {} terminée(s) (--full)", m.guarantees_ended));
            }
            report_lines(&summary.errors, summary.rejected, &done, "imported")
        }
        Command::Annuaire {
            command: AnnuaireCommand::Import { file },
        } => {
            let url = visiodroits::config::database_url_from_env()?;
            let pool = cli::migrate::admin_pool(&url).await?;
            let started = std::time::Instant::now();
            let summary = cli::annuaire::run(&pool, &file, true).await?;
            let done = format!(
                "{} ligne(s) lue(s), {} activité(s) chargée(s), {} sans structure, {} rejetée(s) en {:.1} s",
                summary.read,
                summary.loaded,
                summary.without_structure,
                summary.rejected,
                started.elapsed().as_secs_f64()
            );
            report_lines(&summary.errors, summary.rejected, &done, "loaded")
        }
        Command::Crl { command } => {
            let config = Config::from_env()?;
            let out = match command {
                CrlCommand::Status => cli::crl::status(&config)?,
                CrlCommand::Refresh => cli::crl::refresh(&config).await?,
            };
            print!("{out}");
            Ok(())
        }
        Command::Purge {
            dry_run,
            yes,
            pairing_days,
            tarification_days,
        } => {
            let url = visiodroits::config::database_url_from_env()?;
            if !dry_run && !yes && !cli::purge::confirm()? {
                anyhow::bail!("purge cancelled");
            }
            let report = cli::purge::run(&url, pairing_days, tarification_days, dry_run).await?;
            println!("{report}");
            Ok(())
        }
        Command::Pairing { dossier } => {
            let url = visiodroits::config::database_url_from_env()?;
            print!("{}", cli::pairing::report(&url, &dossier).await?);
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let url = visiodroits::config::database_url_from_env()?;
            println!("{}", cli::audit::verify(&url).await?);
            Ok(())
        }
        Command::Amc { command } => {
            let url = visiodroits::config::database_url_from_env()?;
            let pool = cli::migrate::admin_pool(&url).await?;
            let out = match command {
                AmcCommand::List => cli::amc::list(&pool).await?,
                AmcCommand::Set {
                    numero,
                    nom,
                    services,
                    contact_nom,
                    contact_email,
                    contact_telephone,
                    delai_grace_jours,
                    sans_delai_grace,
                } => {
                    let changes = cli::amc::Changes {
                        name: nom,
                        services,
                        contact_name: contact_nom,
                        contact_email,
                        contact_phone: contact_telephone,
                        grace_days: if sans_delai_grace {
                            Some(None)
                        } else {
                            delai_grace_jours.map(Some)
                        },
                    };
                    cli::amc::set(&pool, &numero, &changes).await? + "\n"
                }
            };
            pool.close().await;
            print!("{out}");
            Ok(())
        }
        Command::Accreditation {
            command: AccreditationCommand::Revoke { numero, motif, yes },
        } => {
            let url = visiodroits::config::database_url_from_env()?;
            if !yes && !cli::accreditation::confirm(&numero)? {
                anyhow::bail!("revocation cancelled");
            }
            let pool = cli::migrate::admin_pool(&url).await?;
            let out = cli::accreditation::revoke(&pool, &numero, &motif).await;
            pool.close().await;
            println!("{}", out?);
            Ok(())
        }
        Command::CheckConfig => {
            let config = Config::from_env()?;
            print!("{}", startup::check(&config).await?);
            Ok(())
        }
    }
}
