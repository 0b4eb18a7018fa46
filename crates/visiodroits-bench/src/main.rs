//! `visiodroits-bench …`: the pieces `scripts/bench` puts together — the synthetic population,
//! the load generator, idle connections, the pgbench ceiling, the report. Its own binary, so that
//! the production server links none of it.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use visiodroits_bench as load;
use visiodroits_bench::ceiling::Ceiling;
use visiodroits_bench::cpu::{CpuPerExchange, Driver, Sample};
use visiodroits_bench::report::{self, Record};
use visiodroits_bench::{population, Pace, Plan, Target};
use visiodroits_client::cli::ConnArgs;

/// The same allocator as the server's: the generator's costs are then comparable to the ones it
/// measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "visiodroits-bench",
    version,
    about = "Visiodroits benchmarks: synthetic data, load generator, idle connections, pgbench ceiling, report (scripts/bench runs them all)"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    visiodroits_wire::binary::run(async {
        run(cli.command)
            .await
            .map(|()| std::process::ExitCode::SUCCESS)
    })
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Write COUNT synthetic beneficiaries in the import format (CSV) to FILE (or stdout).
    GenDroits { count: u64, file: Option<PathBuf> },
    /// Write COUNT synthetic lines of the Annuaire Santé extract (`annuaire import`'s format,
    /// every column of the public file) to FILE (or stdout).
    GenAnnuaire { count: u64, file: Option<PathBuf> },
    /// Drive a server with warm keep-alive connections and print (and append to --json) the
    /// requests/s and latency percentiles of each operation.
    Load {
        #[command(flatten)]
        conn: ConnArgs,
        /// Operations and weights: droits, devis, pec, pec-chiffre, annulation, services, or
        /// alone handshake-full / handshake-resumed. E.g. `droits=4,pec=2,devis=1`.
        #[arg(long, default_value = "droits")]
        mix: String,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds run before measuring.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Open loop at this total rate (requests/s) instead of closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// Beneficiaries 0..N of the synthetic population exist on the server.
        #[arg(long, default_value_t = 1_000_000)]
        population: u64,
        /// Label of the system measured, for the report (server, nginx).
        #[arg(long, default_value = "server")]
        system: String,
        /// Label of the CRL in use, for the report.
        #[arg(long, default_value = "")]
        crl: String,
        /// A process of the system measured (repeat for several, e.g. nginx's workers): its CPU
        /// per request is reported beside the generator's and the rest of the machine's.
        #[arg(long = "system-pid")]
        system_pids: Vec<u32>,
        /// Append the records to this JSON Lines file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Hold COUNT idle keep-alive connections and report the server's memory per connection.
    Idle {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Seconds to hold them before reading the memory.
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
        /// The server's process id.
        #[arg(long)]
        server_pid: u32,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run the transaction of one exchange with pgbench (the server's statements, generated
    /// into a script) and record it as that exchange's ceiling.
    Ceiling {
        /// The exchange: droits, devis or pec.
        #[arg(long)]
        op: String,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        duration: u32,
        /// Connection string for pgbench (libpq keywords or URL).
        #[arg(long, env = "VD_BENCH_PGURL")]
        database: String,
        /// pgbench -D variables, NAME=VALUE (repeat).
        #[arg(long = "define")]
        defines: Vec<String>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Print the pgbench script of a ceiling (droits, devis, pec), as `ceiling` runs it.
    CeilingScript {
        #[arg(long)]
        op: String,
    },
    /// Write report.md and latency.svg into --out from the records of --input.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "")]
        commit: String,
        /// One line about the data set and settings.
        #[arg(long, default_value = "")]
        context: String,
    },
}

async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::GenDroits { count, file } => {
            let mut out: Box<dyn Write> = match &file {
                Some(f) => Box::new(std::fs::File::create(f)?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut out);
            population::write_csv(count, &mut out)?;
            out.flush()?;
        }
        BenchCommand::GenAnnuaire { count, file } => {
            let mut out: Box<dyn Write> = match &file {
                Some(f) => Box::new(std::fs::File::create(f)?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut out);
            population::write_directory(count, &mut out)?;
            out.flush()?;
        }
        BenchCommand::Load {
            conn,
            mix,
            connections,
            duration,
            warmup,
            rate,
            population,
            system,
            crl,
            system_pids,
            json,
        } => {
            let tls = conn.tls.clone();
            let target = target(&conn, population)?;
            let plan = Plan {
                mix: load::parse_mix(&mix)?,
                connections,
                warmup: Duration::from_secs_f64(warmup),
                duration: Duration::from_secs_f64(duration),
                pace: rate.map_or(Pace::Closed, |rate| Pace::Open { rate }),
                system_pids,
            };
            let outcome = load::run(target, plan).await?;
            let records = report::records(&outcome, &system, &tls, &crl);
            for r in &records {
                println!(
                    "{:<18} {:>5} conns {:>9.1}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms  ok {} errors {}",
                    r.op, r.connections, r.per_second, r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms, r.ok, r.errors
                );
                if let Some(c) = &r.cpu {
                    println!("{:<18} {}", "", cpu_line(c, &system, "generator"));
                }
            }
            for e in &outcome.errors {
                eprintln!("error: {e}");
            }
            append(json.as_ref(), &records)?;
        }
        BenchCommand::Idle {
            conn,
            connections,
            hold,
            server_pid,
            json,
        } => {
            let tls = conn.tls.clone();
            let target = target(&conn, 0)?;
            let o = load::idle(
                target,
                connections,
                Duration::from_secs_f64(hold),
                server_pid,
            )
            .await?;
            println!(
                "{} idle connections: server RSS {} → {} KiB, {:.1} KiB per connection, {} alive after the hold",
                o.connections,
                o.rss_before_kib,
                o.rss_after_kib,
                o.per_connection_bytes as f64 / 1024.0,
                o.alive_after_hold
            );
            append(json.as_ref(), &[report::idle_record(&o, &tls)])?;
        }
        BenchCommand::CeilingScript { op } => print!("{}", ceiling_script(&op)?),
        BenchCommand::Ceiling {
            op,
            clients,
            duration,
            database,
            defines,
            json,
        } => {
            let script = std::env::temp_dir()
                .join(format!("visiodroits-bench-{}-{op}.sql", std::process::id()));
            std::fs::write(&script, ceiling_script(&op)?)
                .with_context(|| format!("cannot write {}", script.display()))?;
            let mut cmd = Command::new("pgbench");
            cmd.args(["-n", "-M", "prepared"])
                .arg(format!("-c{clients}"))
                .arg(format!("-j{}", clients.min(2)))
                .arg(format!("-T{duration}"))
                .arg("-f")
                .arg(&script);
            for d in &defines {
                cmd.arg("-D").arg(d);
            }
            let before = Sample::now(&[], Driver::WaitedChildren);
            let ceiling = visiodroits_bench::ceiling::Ceiling::parse(&op)
                .with_context(|| format!("no ceiling for {op}"))?;
            let out = cmd
                .arg(visiodroits_bench::ceiling::pool_url(
                    &database,
                    ceiling.role(),
                ))
                .output()
                .context("pgbench does not run (apt-get install postgresql-client)")?;
            let after = Sample::now(&[], Driver::WaitedChildren);
            let _ = std::fs::remove_file(&script);
            let stdout = String::from_utf8_lossy(&out.stdout);
            anyhow::ensure!(
                out.status.success(),
                "pgbench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut r = report::pgbench_record(&op, clients, &stdout)?;
            r.cpu = before
                .ok()
                .zip(after.ok())
                .and_then(|(b, a)| b.per_exchange(&a, r.ok + r.errors));
            println!(
                "ceiling {:<12} {:>5} clients {:>9.1} tx/s  avg {:>7.2} ms  failed {}",
                r.op, r.connections, r.per_second, r.mean_ms, r.errors
            );
            if let Some(c) = &r.cpu {
                println!("{:<20} {}", "", cpu_line(c, "", "pgbench"));
            }
            append(json.as_ref(), &[r])?;
        }
        BenchCommand::Report {
            input,
            out,
            commit,
            context,
        } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let records = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str::<Record>)
                .collect::<Result<Vec<_>, _>>()
                .context("a record of the input is not valid")?;
            report::write(&out, &records, &commit, &context)?;
            println!("{}", out.join("report.md").display());
        }
    }
    Ok(())
}

/// The generated pgbench script of the ceiling `op`, for today's prescriptions.
fn ceiling_script(op: &str) -> anyhow::Result<String> {
    let ceiling = Ceiling::parse(op)
        .with_context(|| format!("no ceiling for {op:?} (droits, devis or pec)"))?;
    ceiling.script(chrono::Utc::now().date_naive())
}

/// `CPU ms per request: server 0.250, generator 0.080, rest of the machine 0.800 (total 1.130)`.
fn cpu_line(c: &CpuPerExchange, system: &str, driver: &str) -> String {
    let system = c
        .system_ms
        .map(|ms| format!("{system} {ms:.3}, "))
        .unwrap_or_default();
    format!(
        "CPU ms per request: {system}{driver} {:.3}, rest of the machine {:.3} (total {:.3})",
        c.driver_ms,
        c.rest_ms,
        c.total_ms()
    )
}

fn target(conn: &ConnArgs, population: u64) -> anyhow::Result<Arc<Target>> {
    let e = conn.resolve()?;
    Ok(Arc::new(Target {
        addr: e.addr,
        server_name: e.host,
        tls: e.config,
        messages: e.messages,
        population,
    }))
}

fn append(path: Option<&PathBuf>, records: &[Record]) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    for r in records {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
    }
    Ok(())
}
