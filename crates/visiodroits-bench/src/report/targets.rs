//! The targets of this machine, each with what the run measured: an exchange point against its
//! database ceiling, and the handshake and idle-memory figures.

use std::fmt::Write as _;

use super::{Point, Record};

/// A target of an exchange point against its ceiling.
pub(super) struct Check {
    what: &'static str,
    /// Server point, ceiling → the measured ratio.
    pub(super) ratio: fn(&Record, &Record) -> f64,
    bound: Bound,
}

pub(super) enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

impl Bound {
    fn holds(&self, v: f64) -> bool {
        match *self {
            Bound::AtLeast(b) => v >= b,
            Bound::AtMost(b) => v <= b,
        }
    }
}

/// Rate, p50 and p99 against the ceiling, in that order (the exchanges table shows the same
/// ratios).
pub(super) const EXCHANGE_TARGETS: [Check; 3] = [
    Check {
        what: "req/s ≥ 0.85 × ceiling",
        ratio: |r, c| r.per_second / c.per_second,
        bound: Bound::AtLeast(0.85),
    },
    Check {
        what: "p50 ≤ 1.3 × ceiling avg",
        ratio: |r, c| r.p50_ms / c.mean_ms,
        bound: Bound::AtMost(1.3),
    },
    Check {
        what: "p99 ≤ 3 × ceiling avg",
        ratio: |r, c| r.p99_ms / c.mean_ms,
        bound: Bound::AtMost(3.0),
    },
];

/// The targets of this machine, each with what the run measured.
pub(super) fn table(records: &[Record], points: &[Point]) -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    // Exchanges: one value per round, each against its own ceiling.
    for (op, name) in [("droits", "DemandeDroits"), ("pec", "DldTar PEC")] {
        for conns in [8, 32] {
            let pts: Vec<(&Record, &Record)> = points
                .iter()
                .filter(|p| p.r.op == op && p.r.connections == conns)
                .filter_map(|p| Some((p.r, p.ceiling?)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            for check in &EXCHANGE_TARGETS {
                let values: Vec<f64> = pts.iter().map(|(r, c)| (check.ratio)(r, c)).collect();
                let met = values.iter().filter(|v| check.bound.holds(**v)).count();
                rows.push((
                    format!("{name}, {conns} connections: {}", check.what),
                    values
                        .iter()
                        .map(|v| format!("{v:.2}"))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    format!("{met} of {} rounds", values.len()),
                ));
            }
        }
    }
    // Handshakes, per TLS version and CRL.
    let rate = |system: &str, op: &str, tls: &str, crl: &str| {
        records
            .iter()
            .find(|r| {
                r.kind == "load"
                    && r.system == system
                    && r.op == op
                    && r.tls == tls
                    && r.crl == crl
                    && r.per_second > 0.0
            })
            .map(|r| r.per_second)
    };
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.kind == "load" && r.op == "handshake-full")
    {
        if !cases.contains(&(r.tls.as_str(), r.crl.as_str())) {
            cases.push((r.tls.as_str(), r.crl.as_str()));
        }
    }
    let yes = |ok: bool| if ok { "yes" } else { "no" }.to_string();
    for &(tls, crl) in &cases {
        let full = rate("server", "handshake-full", tls, crl);
        if let (Some(s), Some(n)) = (full, rate("nginx", "handshake-full", tls, crl)) {
            rows.push((
                format!("full handshakes, TLS {tls}, {crl}: ≥ nginx"),
                format!("{s:.0} vs {n:.0}/s ({:.2} ×)", s / n),
                yes(s >= n),
            ));
        }
        // The first CRL measured is the small one the others are compared with.
        let (_, base_crl) = cases
            .iter()
            .find(|(t, _)| *t == tls)
            .expect("tls is a case");
        if *base_crl != crl {
            if let (Some(s), Some(b)) = (full, rate("server", "handshake-full", tls, base_crl)) {
                rows.push((
                    format!("full handshakes, TLS {tls}, {crl}: ≥ 0.9 × with {base_crl}"),
                    format!("{s:.0} vs {b:.0}/s ({:.2} ×)", s / b),
                    yes(s >= 0.9 * b),
                ));
            }
        }
        if let (Some(f), Some(r)) = (full, rate("server", "handshake-resumed", tls, crl)) {
            rows.push((
                format!("resumed handshakes, TLS {tls}, {crl}: ≥ 5 × full"),
                format!("{r:.0} vs {f:.0}/s ({:.1} ×)", r / f),
                yes(r >= 5.0 * f),
            ));
        }
    }
    for r in records.iter().filter(|r| r.kind == "idle") {
        let kib = r.bytes_per_connection.unwrap_or(0) as f64 / 1024.0;
        rows.push((
            format!("{} idle connections: < 64 KiB each", r.connections),
            format!("{kib:.1} KiB"),
            yes(kib < 64.0),
        ));
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "## Targets of this machine\n\nServer and ceiling in the same round; handshakes beside nginx in the same run.\n\n| target | measured | reached |\n|---|---|---|\n",
    );
    for (target, measured, reached) in rows {
        let _ = writeln!(md, "| {target} | {measured} | {reached} |");
    }
    md.push('\n');
    md
}
