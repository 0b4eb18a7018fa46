//! Benchmark records (one JSON line per measurement) and the report made from them: a Markdown
//! table with the server/ceiling ratios and an SVG latency plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod svg;
mod targets;

use super::cpu::CpuPerExchange;
use super::{IdleOutcome, Outcome, Pace};

/// One measurement.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// `load` (the server through the load generator), `ceiling` (pgbench), `idle`.
    pub kind: String,
    /// What was measured: `server`, `nginx`, `pgbench`.
    pub system: String,
    pub op: String,
    pub connections: usize,
    /// Conditions: TLS version, CRL size, pacing.
    pub tls: String,
    pub crl: String,
    pub pace: String,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub per_second: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// (percentile, ms) points of the latency distribution, for the plot.
    pub curve: Vec<(f64, f64)>,
    pub reconnects: u64,
    pub notes: Vec<String>,
    /// Idle connections: bytes of server memory per connection.
    pub bytes_per_connection: Option<u64>,
    /// CPU per exchange over the measured window (a run of one operation only).
    pub cpu: Option<CpuPerExchange>,
}

const CURVE: &[f64] = &[
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

/// One record per operation of `outcome`.
pub fn records(outcome: &Outcome, system: &str, tls: &str, crl: &str) -> Vec<Record> {
    let seconds = outcome.measured.as_secs_f64();
    let pace = match outcome.plan.pace {
        Pace::Closed => "closed".to_string(),
        Pace::Open { rate } => format!("open {rate}/s"),
    };
    outcome
        .per_op
        .iter()
        .map(|(op, s)| {
            let h = &s.latency_us;
            let ms = |us: u64| us as f64 / 1000.0;
            let empty = h.is_empty();
            Record {
                kind: "load".into(),
                system: system.into(),
                op: op.name().into(),
                connections: outcome.plan.connections,
                tls: tls.into(),
                crl: crl.into(),
                pace: pace.clone(),
                seconds,
                ok: s.ok,
                errors: s.errors,
                per_second: s.ok as f64 / seconds.max(1e-9),
                mean_ms: if empty { 0.0 } else { h.mean() / 1000.0 },
                p50_ms: ms(h.value_at_quantile(0.50)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                p999_ms: ms(h.value_at_quantile(0.999)),
                max_ms: ms(h.max()),
                curve: CURVE
                    .iter()
                    .map(|p| (*p, ms(h.value_at_percentile(*p))))
                    .collect(),
                reconnects: outcome.reconnects,
                notes: outcome.errors.clone(),
                bytes_per_connection: None,
                // Measured for the whole run: an operation's own share is known when it ran alone.
                cpu: outcome.cpu.filter(|_| outcome.per_op.len() == 1),
            }
        })
        .collect()
}

/// The record of an idle-connection measurement.
pub fn idle_record(o: &IdleOutcome, tls: &str) -> Record {
    Record {
        kind: "idle".into(),
        system: "server".into(),
        op: "idle".into(),
        connections: o.connections,
        tls: tls.into(),
        ok: o.alive_after_hold as u64,
        bytes_per_connection: Some(o.per_connection_bytes),
        notes: vec![format!(
            "server RSS {} KiB before, {} KiB with the connections open",
            o.rss_before_kib, o.rss_after_kib
        )],
        ..Record::default()
    }
}

/// A pgbench run's record from its standard output (`-M prepared`, no `--progress`).
pub fn pgbench_record(op: &str, clients: usize, stdout: &str) -> anyhow::Result<Record> {
    let after = |prefix: &str| {
        stdout.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
    };
    let tps = after("tps = ").ok_or_else(|| anyhow::anyhow!("no tps in pgbench's output"))?;
    let latency = after("latency average = ").unwrap_or(0.0);
    let processed = after("number of transactions actually processed: ").unwrap_or(0.0);
    let failed = after("number of failed transactions: ").unwrap_or(0.0);
    let seconds = after("duration: ").unwrap_or(0.0);
    Ok(Record {
        kind: "ceiling".into(),
        system: "pgbench".into(),
        op: op.into(),
        connections: clients,
        pace: "closed".into(),
        seconds,
        ok: processed as u64,
        errors: failed as u64,
        per_second: tps,
        mean_ms: latency,
        ..Record::default()
    })
}

/// The machine the report was made on.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores ({model}), {:.1} GiB of memory",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

/// Writes `report.md` and `latency.svg` into `dir` from `records`.
pub fn write(dir: &Path, records: &[Record], commit: &str, context: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.md"), markdown(records, commit, context))?;
    std::fs::write(dir.join("latency.svg"), svg::plot(records))?;
    Ok(())
}

/// A server point of the exchanges table, with its ceiling (closed loop) and its round (from 1).
struct Point<'a> {
    r: &'a Record,
    ceiling: Option<&'a Record>,
    round: usize,
}

/// With several rounds (VD_BENCH_ROUNDS), the n-th server point of an operation and concurrency
/// is measured just before the n-th ceiling of the same: they are paired so.
fn paired<'a>(records: &'a [Record], loads: &[&'a Record]) -> Vec<Point<'a>> {
    let mut rounds: BTreeMap<(&str, usize, &str), usize> = BTreeMap::new();
    loads
        .iter()
        .map(|&r| {
            let round = rounds
                .entry((r.op.as_str(), r.connections, r.pace.as_str()))
                .or_default();
            let ceiling = records
                .iter()
                .filter(|c| c.kind == "ceiling" && c.op == r.op && c.connections == r.connections)
                .nth(*round)
                .filter(|c| r.pace == "closed" && c.per_second > 0.0 && c.mean_ms > 0.0);
            *round += 1;
            Point {
                r,
                ceiling,
                round: *round,
            }
        })
        .collect()
}

fn markdown(records: &[Record], commit: &str, context: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Visiodroits benchmark\n");
    let _ = writeln!(md, "- commit: `{commit}`");
    let _ = writeln!(
        md,
        "- machine: {} (server, PostgreSQL, load generator and pgbench share it)",
        machine()
    );
    let _ = writeln!(md, "- {context}\n");

    let loads: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == "load" && r.system == "server" && !r.op.starts_with("handshake"))
        .collect();
    let points = paired(records, &loads);
    md.push_str(&targets::table(records, &points));
    let mut cpu = String::new();
    if !loads.is_empty() {
        let _ = writeln!(md, "## Exchanges (warm mTLS keep-alive connections)\n");
        let _ = writeln!(
            md,
            "Ceiling: the same SQL transactions driven by pgbench (`-M prepared`) at the same concurrency on the same database; same durability (fsync and synchronous commit on).\n"
        );
        let _ = writeln!(md, "| operation | pace | conns | round | req/s | p50 ms | p99 ms | p99.9 ms | errors | ceiling tx/s | ceiling avg ms | server/ceiling | p50/ceiling avg | p99/ceiling avg |");
        let _ = writeln!(
            md,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for &Point {
            r,
            ceiling: c,
            round,
        } in &points
        {
            let (ctps, cavg, ratio, p50r, p99r) = match c {
                Some(c) => {
                    let [rate, p50, p99] = targets::EXCHANGE_TARGETS
                        .each_ref()
                        .map(|t| (t.ratio)(r, c));
                    (
                        format!("{:.0}", c.per_second),
                        format!("{:.2}", c.mean_ms),
                        format!("**{rate:.2}**"),
                        format!("{p50:.2}"),
                        format!("{p99:.2}"),
                    )
                }
                _ => ("–".into(), "–".into(), "–".into(), "–".into(), "–".into()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {ctps} | {cavg} | {ratio} | {p50r} | {p99r} |",
                r.op, r.pace, r.connections, round, r.per_second, r.p50_ms, r.p99_ms, r.p999_ms, r.errors
            );
            if let (Some(s), Some(c)) = (r.cpu, c.and_then(|c| c.cpu)) {
                let _ = writeln!(
                    cpu,
                    "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} |",
                    r.op,
                    r.connections,
                    round,
                    s.system_ms.unwrap_or(0.0),
                    s.driver_ms,
                    s.rest_ms,
                    s.total_ms(),
                    c.driver_ms,
                    c.rest_ms,
                    c.total_ms(),
                    c.total_ms() / s.total_ms().max(1e-9)
                );
            }
        }
        md.push('\n');
        if !cpu.is_empty() {
            let _ = writeln!(
                md,
                "### Where the CPU went (ms per exchange, from /proc over each measured window)\n"
            );
            let _ = writeln!(
                md,
                "With both cores busy, a rate is the cores' time divided by the CPU one exchange costs, so server/ceiling tends to the last column: the ceiling's CPU per exchange over the server's. \"rest\" is PostgreSQL, the kernel's own work (loopback TCP, scheduling) and anything else running.\n"
            );
            let _ = writeln!(md, "| operation | conns | round | server | load generator | rest | total | pgbench | rest | total | ceiling CPU / server CPU |");
            let _ = writeln!(
                md,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            md.push_str(&cpu);
            md.push('\n');
        }
    }

    let handshakes: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == "load" && r.op.starts_with("handshake"))
        .collect();
    if !handshakes.is_empty() {
        let _ = writeln!(md, "## Handshakes (new TCP + TLS connection with the client certificate, one small request)\n");
        let _ = writeln!(
            md,
            "| system | handshake | TLS | CRL | conns | per second | p50 ms | p99 ms | errors | CPU ms: system · generator · rest |"
        );
        let _ = writeln!(md, "|---|---|---|---|---:|---:|---:|---:|---:|---|");
        for r in &handshakes {
            let cpu = r.cpu.map_or("–".into(), |c| {
                format!(
                    "{} · {:.3} · {:.3}",
                    c.system_ms.map_or("–".into(), |ms| format!("{ms:.3}")),
                    c.driver_ms,
                    c.rest_ms
                )
            });
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {cpu} |",
                r.system,
                r.op.trim_start_matches("handshake-"),
                r.tls,
                r.crl,
                r.connections,
                r.per_second,
                r.p50_ms,
                r.p99_ms,
                r.errors
            );
        }
        md.push('\n');
    }

    for r in records.iter().filter(|r| r.kind == "idle") {
        let _ = writeln!(md, "## Idle keep-alive connections\n");
        let _ = writeln!(
            md,
            "{} connections held: **{:.1} KiB** of server memory each ({}); {} answered after the hold.\n",
            r.connections,
            r.bytes_per_connection.unwrap_or(0) as f64 / 1024.0,
            r.notes.join("; "),
            r.ok
        );
    }

    let notes: Vec<String> = records
        .iter()
        .filter(|r| !r.notes.is_empty() && r.kind == "load")
        .map(|r| {
            format!(
                "- {} {} × {}: {}",
                r.system,
                r.op,
                r.connections,
                r.notes.join("; ")
            )
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(md, "## Errors seen\n\n{}\n", notes.join("\n"));
    }
    let _ = writeln!(md, "![latency](latency.svg)");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGBENCH: &str = "pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: droits.sql
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 23456
number of failed transactions: 0 (0.000%)
latency average = 3.411 ms
initial connection time = 12.345 ms
tps = 2345.600000 (without initial connection time)
";

    #[test]
    fn pgbench_output_is_read() {
        let r = pgbench_record("droits", 8, PGBENCH).unwrap();
        assert_eq!(r.ok, 23456);
        assert_eq!(r.errors, 0);
        assert!((r.per_second - 2345.6).abs() < 1e-9);
        assert!((r.mean_ms - 3.411).abs() < 1e-9);
        assert!((r.seconds - 10.0).abs() < 1e-9);
        assert!(pgbench_record("droits", 8, "connection refused").is_err());
    }

    #[test]
    fn the_report_says_which_handshake_and_memory_targets_are_reached() {
        let hs = |system: &str, op: &str, crl: &str, per_second: f64| Record {
            kind: "load".into(),
            system: system.into(),
            op: op.into(),
            tls: "1.3".into(),
            crl: crl.into(),
            connections: 8,
            per_second,
            ..Record::default()
        };
        let idle = Record {
            kind: "idle".into(),
            connections: 10_000,
            bytes_per_connection: Some(70 * 1024),
            ..Record::default()
        };
        let md = markdown(
            &[
                hs("server", "handshake-full", "dev", 1000.0),
                hs("server", "handshake-resumed", "dev", 4000.0),
                hs("nginx", "handshake-full", "dev", 800.0),
                hs("server", "handshake-full", "big", 950.0),
                hs("nginx", "handshake-full", "big", 30.0),
                idle,
            ],
            "abc",
            "test",
        );
        for row in [
            "| full handshakes, TLS 1.3, dev: ≥ nginx | 1000 vs 800/s (1.25 ×) | yes |",
            "| resumed handshakes, TLS 1.3, dev: ≥ 5 × full | 4000 vs 1000/s (4.0 ×) | no |",
            "| full handshakes, TLS 1.3, big: ≥ 0.9 × with dev | 950 vs 1000/s (0.95 ×) | yes |",
            "| 10000 idle connections: < 64 KiB each | 70.0 KiB | no |",
        ] {
            assert!(md.contains(row), "{row}\n{md}");
        }
    }

    #[test]
    fn the_report_puts_the_server_beside_its_ceiling() {
        let server = Record {
            kind: "load".into(),
            system: "server".into(),
            op: "droits".into(),
            connections: 8,
            pace: "closed".into(),
            per_second: 2000.0,
            p50_ms: 3.0,
            p99_ms: 9.0,
            curve: vec![(50.0, 3.0), (99.0, 9.0), (100.0, 20.0)],
            ok: 100,
            cpu: Some(CpuPerExchange {
                system_ms: Some(0.25),
                driver_ms: 0.1,
                rest_ms: 0.85,
            }),
            ..Record::default()
        };
        let ceiling = Record {
            cpu: Some(CpuPerExchange {
                system_ms: None,
                driver_ms: 0.1,
                rest_ms: 0.8,
            }),
            ..pgbench_record("droits", 8, PGBENCH).unwrap()
        };
        // A second round: its server point is paired with its own ceiling, not the first one.
        let server2 = Record {
            per_second: 1000.0,
            ..server.clone()
        };
        let ceiling2 = Record {
            per_second: 2000.0,
            ..ceiling.clone()
        };
        let md = markdown(
            &[server.clone(), ceiling, server2.clone(), ceiling2],
            "abc",
            "test",
        );
        assert!(md.contains("| droits | closed | 8 | 1 | 2000 |"), "{md}");
        assert!(md.contains("**0.85**"), "{md}");
        assert!(md.contains("| droits | closed | 8 | 2 | 1000 |"), "{md}");
        assert!(md.contains("**0.50**"), "{md}");
        // The targets, from the same pairs: 2,000 / 2,345.6 = 0.85 is reached, 0.50 is not.
        assert!(
            md.contains("| DemandeDroits, 8 connections: req/s ≥ 0.85 × ceiling | 0.85 / 0.50 | 1 of 2 rounds |"),
            "{md}"
        );
        // Where the CPU went, each round beside its own ceiling: 0.9 ms against 1.2 ms.
        assert!(
            md.contains(
                "| droits | 8 | 1 | 0.250 | 0.100 | 0.850 | 1.200 | 0.100 | 0.800 | 0.900 | 0.75 |"
            ),
            "{md}"
        );
        let svg = svg::plot(&[server, server2]);
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
    }
}
