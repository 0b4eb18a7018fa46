//! Prometheus metrics, kept in memory and rendered in the text exposition format on `/metrics`.
//!
//! Hand-written rather than a metrics crate: a handful of counters and histograms do not justify
//! a second HTTP stack in the dependency tree.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    exchanges: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    handshakes_full: AtomicU64,
    handshakes_resumed: AtomicU64,
    handshakes_refused: Mutex<BTreeMap<String, u64>>,
    connections_refused: Mutex<BTreeMap<&'static str, u64>>,
    connections_open: AtomicI64,
    crl_fetch_ok: AtomicU64,
    crl_fetch_refused: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Extra gauges sampled at scrape time.
pub(crate) struct Sampled<'a> {
    pub crls: &'a crate::tls::crl::CrlSet,
    pub now: i64,
    /// Each pool: its login role, its connections open and idle.
    pub pools: &'a [(&'a str, u32, usize)],
    /// The database hosts of `DATABASE_URL`, the one in use, and how often connections moved.
    pub db_hosts: &'a crate::store::Hosts,
    pub crl_allow_missing: bool,
    pub crl_allow_stale: bool,
}

impl Metrics {
    pub fn exchange(&self, operation: &'static str, code: &'static str, took: Duration) {
        *self
            .exchanges
            .lock()
            .expect("metrics lock")
            .entry((operation, code))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut lat = self.latency.lock().expect("metrics lock");
        let h = lat.entry(operation).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
    }

    pub(crate) fn handshake_done(&self, resumed: bool) {
        let c = if resumed {
            &self.handshakes_resumed
        } else {
            &self.handshakes_full
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_refused(&self, reason: &str) {
        *self
            .handshakes_refused
            .lock()
            .expect("metrics lock")
            .entry(reason.to_string())
            .or_default() += 1;
    }

    pub(crate) fn connection_refused(&self, reason: &'static str) {
        *self
            .connections_refused
            .lock()
            .expect("metrics lock")
            .entry(reason)
            .or_default() += 1;
    }

    pub(crate) fn crl_fetched(&self, ok: u64, refused: u64) {
        self.crl_fetch_ok.fetch_add(ok, Ordering::Relaxed);
        self.crl_fetch_refused.fetch_add(refused, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn connections_open(&self) -> i64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, s: &Sampled<'_>) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(out, "# HELP vd_exchanges_total Exchanges by operation and response code.\n# TYPE vd_exchanges_total counter");
        for ((op, code), n) in self.exchanges.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "vd_exchanges_total{{operation=\"{op}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP vd_exchange_seconds Exchange latency, from request received to response built.\n# TYPE vd_exchange_seconds histogram");
        for (op, h) in self.latency.lock().expect("metrics lock").iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "vd_exchange_seconds_bucket{{operation=\"{op}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "vd_exchange_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "vd_exchange_seconds_sum{{operation=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "vd_exchange_seconds_count{{operation=\"{op}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(out, "# HELP vd_tls_handshakes_total Completed TLS handshakes by kind.\n# TYPE vd_tls_handshakes_total counter");
        let _ = writeln!(
            out,
            "vd_tls_handshakes_total{{kind=\"full\"}} {}",
            self.handshakes_full.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "vd_tls_handshakes_total{{kind=\"resumed\"}} {}",
            self.handshakes_resumed.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP vd_tls_handshakes_refused_total Refused TLS handshakes by reason.\n# TYPE vd_tls_handshakes_refused_total counter");
        for (reason, n) in self.handshakes_refused.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "vd_tls_handshakes_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP vd_connections_refused_total Connections dropped before the handshake.\n# TYPE vd_connections_refused_total counter");
        for (reason, n) in self
            .connections_refused
            .lock()
            .expect("metrics lock")
            .iter()
        {
            let _ = writeln!(
                out,
                "vd_connections_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP vd_connections_open Open client connections.\n# TYPE vd_connections_open gauge\nvd_connections_open {}", self.connections_open());
        // Same-name CAs (a re-keyed intermediate) are told apart by their key; a CA may have a
        // base and a delta CRL.
        let labels = |c: &crate::tls::crl::CrlInfo| {
            format!(
                "issuer=\"{}\",key=\"{}\",crl=\"{}\"",
                escape_label(&c.issuer),
                c.ca.short(),
                if c.delta_of.is_some() {
                    "delta"
                } else {
                    "base"
                }
            )
        };
        let _ = writeln!(out, "# HELP vd_crl_age_seconds Age of each CRL in force (now - thisUpdate).\n# TYPE vd_crl_age_seconds gauge");
        for c in &s.crls.crls {
            let _ = writeln!(
                out,
                "vd_crl_age_seconds{{{}}} {}",
                labels(c),
                s.now - c.this_update
            );
        }
        let _ = writeln!(out, "# HELP vd_crl_seconds_to_next_update Seconds until each CRL's nextUpdate, or thisUpdate + the refresh period without one (negative: stale).\n# TYPE vd_crl_seconds_to_next_update gauge");
        for c in &s.crls.crls {
            let _ = writeln!(
                out,
                "vd_crl_seconds_to_next_update{{{}}} {}",
                labels(c),
                c.valid_until - s.now
            );
        }
        let _ = writeln!(out, "# HELP vd_crl_entries Revoked serials listed by each CRL in force.\n# TYPE vd_crl_entries gauge");
        for c in &s.crls.crls {
            let _ = writeln!(out, "vd_crl_entries{{{}}} {}", labels(c), c.entries);
        }
        let _ = writeln!(out, "# HELP vd_crl_degraded Degraded CRL modes switched on by configuration (1 = on).\n# TYPE vd_crl_degraded gauge");
        let _ = writeln!(
            out,
            "vd_crl_degraded{{mode=\"allow_missing\"}} {}",
            u8::from(s.crl_allow_missing)
        );
        let _ = writeln!(
            out,
            "vd_crl_degraded{{mode=\"allow_stale\"}} {}",
            u8::from(s.crl_allow_stale)
        );
        let _ = writeln!(out, "# HELP vd_crl_fetch_total CRL downloads by result (refused: kept the previous CRL).\n# TYPE vd_crl_fetch_total counter");
        let _ = writeln!(
            out,
            "vd_crl_fetch_total{{result=\"updated\"}} {}",
            self.crl_fetch_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "vd_crl_fetch_total{{result=\"refused\"}} {}",
            self.crl_fetch_refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP vd_db_pool_connections Database pool connections, by pool (its login role).\n# TYPE vd_db_pool_connections gauge");
        for (login, open, idle) in s.pools {
            let login = escape_label(login);
            let _ = writeln!(
                out,
                "vd_db_pool_connections{{pool=\"{login}\",state=\"open\"}} {open}"
            );
            let _ = writeln!(
                out,
                "vd_db_pool_connections{{pool=\"{login}\",state=\"idle\"}} {idle}"
            );
        }
        let _ = writeln!(out, "# HELP vd_db_host Database hosts of DATABASE_URL: 1 for the one new connections go to.\n# TYPE vd_db_host gauge");
        let current = s.db_hosts.current();
        for host in s.db_hosts.labels() {
            let _ = writeln!(
                out,
                "vd_db_host{{host=\"{}\"}} {}",
                escape_label(host),
                u8::from(current == Some(host))
            );
        }
        let _ = writeln!(out, "# HELP vd_db_failovers_total Times new database connections moved to another host.\n# TYPE vd_db_failovers_total counter");
        let _ = writeln!(out, "vd_db_failovers_total {}", s.db_hosts.switches());
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
