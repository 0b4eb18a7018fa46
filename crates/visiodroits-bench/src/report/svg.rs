//! The report's latency plot, SVG written by hand (no plotting crate).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Record;

/// Latency by percentile (log scale of 1/(1-p)) for each exchange and concurrency, closed loop.
pub(super) fn plot(records: &[Record]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 520.0;
    const L: f64 = 70.0;
    const R: f64 = 220.0;
    const T: f64 = 40.0;
    const B: f64 = 60.0;
    let mut plotted = std::collections::HashSet::new();
    let series: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == "load" && r.system == "server" && !r.curve.is_empty())
        .filter(|r| !r.op.starts_with("handshake") && r.pace == "closed" && r.ok > 0)
        // One curve per operation and concurrency: the first round's.
        .filter(|r| plotted.insert((r.op.as_str(), r.connections)))
        .collect();
    let x_of = |p: f64| {
        // 0 → 1, 90 → 10, 99 → 100, 99.99 → 10^4; 100 plotted at 10^5.
        let inv = if p >= 100.0 { 1e5 } else { 100.0 / (100.0 - p) };
        L + inv.log10() / 5.0 * (W - L - R)
    };
    let max_ms = series
        .iter()
        .flat_map(|r| r.curve.iter().map(|(_, v)| *v))
        .fold(1.0_f64, f64::max);
    let y_max = 10f64.powf(max_ms.log10().ceil());
    let y_min = 0.1_f64;
    let y_of = |ms: f64| {
        let v = ms.max(y_min);
        T + (1.0 - (v / y_min).log10() / (y_max / y_min).log10()) * (H - T - B)
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{L}" y="22" font-size="15">Latency by percentile, closed loop (ms, log scale)</text>"#
    );
    for (p, label) in [
        (0.0, "0%"),
        (90.0, "90%"),
        (99.0, "99%"),
        (99.9, "99.9%"),
        (99.99, "99.99%"),
        (100.0, "max"),
    ] {
        let x = x_of(p);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            H - B,
            H - B + 18.0
        );
    }
    let mut v = y_min;
    while v <= y_max * 1.001 {
        let y = y_of(v);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0
        );
        v *= 10.0;
    }
    const COLORS: &[&str] = &[
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &series {
        let n = ops.len();
        ops.entry(r.op.as_str()).or_insert(n);
    }
    let conns: Vec<usize> = {
        let mut c: Vec<usize> = series.iter().map(|r| r.connections).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    const DASHES: &[&str] = &["", "6,3", "2,3", "10,4,2,4", "1,6"];
    for (i, r) in series.iter().enumerate() {
        let color = COLORS[ops[r.op.as_str()] % COLORS.len()];
        let dash =
            DASHES[conns.iter().position(|c| *c == r.connections).unwrap_or(0) % DASHES.len()];
        let points: Vec<String> = r
            .curve
            .iter()
            .map(|(p, ms)| format!("{:.1},{:.1}", x_of(*p), y_of(*ms)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" stroke-dasharray="{dash}" points="{}"/>"#,
            points.join(" ")
        );
        let y = T + 14.0 * i as f64;
        let x = W - R + 14.0;
        let _ = write!(
            s,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}">{} × {}</text>"#,
            x + 28.0,
            x + 34.0,
            y + 4.0,
            r.op,
            r.connections
        );
    }
    s.push_str("</svg>\n");
    s
}
