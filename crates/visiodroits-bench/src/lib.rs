//! The load generator: N warm mTLS keep-alive connections driving a mix of exchanges for a fixed
//! time, closed loop (each connection sends as soon as it has its answer) or open loop (requests
//! scheduled at a fixed total rate, latency measured from the scheduled time so that a slow
//! server cannot hide its queue: no coordinated omission). Also full and resumed handshakes, and
//! the memory of idle connections. Latencies go to HDR histograms (µs, 3 significant digits);
//! the CPU a request cost the server, the generator and the rest of the machine comes from /proc
//! (`cpu`).

pub mod ceiling;
pub mod cpu;
mod op;
pub mod population;
pub mod report;
mod worker;

pub use op::{parse_mix, prescription, Op};

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rustls::ClientConfig;
use serde::Serialize;

use visiodroits_client::encrypt::Recipient;
use visiodroits_client::messages::{field, Messages};
use visiodroits_client::SoapConnection;
use worker::Worker;

/// Where and as whom to connect.
pub struct Target {
    pub addr: SocketAddr,
    pub server_name: String,
    /// With resumption enabled (used for everything except full handshakes).
    pub tls: Arc<ClientConfig>,
    pub messages: Messages,
    /// Beneficiaries 0..population of [`population`] exist on the server.
    pub population: u64,
}

impl Target {
    async fn connect(&self, full_handshake: bool) -> anyhow::Result<SoapConnection> {
        let config = if full_handshake {
            let mut c = (*self.tls).clone();
            c.resumption = rustls::client::Resumption::disabled();
            Arc::new(c)
        } else {
            self.tls.clone()
        };
        SoapConnection::connect(self.addr, &self.server_name, config).await
    }
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Pace {
    /// Each connection sends its next request as soon as it has the answer.
    Closed,
    /// Requests are due at a fixed total rate (per second), whatever the answers.
    Open { rate: f64 },
}

/// A run: which mix, how many connections, how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mix: Vec<(Op, u32)>,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub pace: Pace,
    /// Processes of the system measured (the server's, or nginx's master and workers), whose
    /// CPU is reported per request; none: only the generator's and the machine's.
    pub system_pids: Vec<u32>,
}

/// Latencies and counts of one operation.
pub struct OpStats {
    pub ok: u64,
    pub errors: u64,
    pub latency_us: Histogram<u64>,
}

impl OpStats {
    fn new() -> Self {
        OpStats {
            ok: 0,
            errors: 0,
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        }
    }

    fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency_us
            .add(&other.latency_us)
            .expect("same bounds on every histogram");
    }
}

/// What a run measured.
pub struct Outcome {
    pub plan: Plan,
    /// The measured window (after warm-up).
    pub measured: Duration,
    pub per_op: Vec<(Op, OpStats)>,
    /// Connections lost and re-opened during the run.
    pub reconnects: u64,
    /// The first few distinct error descriptions (codes and transport errors, never content).
    pub errors: Vec<String>,
    /// CPU per request over the measured window (`None` when /proc could not be read).
    pub cpu: Option<cpu::CpuPerExchange>,
}

/// Shared by the workers of one run.
struct Run {
    plan: Plan,
    wheel: Vec<Op>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    next: AtomicU64,
    recipient: Option<Arc<Recipient>>,
    prescription_ids: AtomicU64,
}

impl Run {
    /// The operation of request `k`: the mix's weights spread evenly.
    fn op(&self, k: u64) -> Op {
        self.wheel[(k % self.wheel.len() as u64) as usize]
    }
}

/// Runs `plan` against `target`.
pub async fn run(target: Arc<Target>, plan: Plan) -> anyhow::Result<Outcome> {
    anyhow::ensure!(plan.connections > 0, "at least one connection");
    // The mix's weights interleaved (a=2,b=1 → a,b,a) so that it never runs in long blocks of one
    // operation.
    let mut left: Vec<(Op, u32)> = plan.mix.clone();
    let mut wheel = Vec::new();
    while left.iter().any(|(_, w)| *w > 0) {
        for (op, w) in left.iter_mut().filter(|(_, w)| *w > 0) {
            wheel.push(*op);
            *w -= 1;
        }
    }

    let recipient = if plan.mix.iter().any(|(o, _)| *o == Op::PecEncrypted) {
        Some(Arc::new(published_recipient(&target).await?))
    } else {
        None
    };

    // Warm connections (and their dossiers) before the clock starts, 64 set-ups at a time.
    let handshakes = plan.mix.iter().any(|(o, _)| o.is_handshake());
    let needs_dossier = plan.mix.iter().any(|(o, _)| o.needs_dossier());
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut setups = tokio::task::JoinSet::new();
    for index in 0..plan.connections {
        let target = target.clone();
        let gate = gate.clone();
        setups.spawn(async move {
            let _slot = gate.acquire().await;
            Worker::prepare(index, target, !handshakes, needs_dossier).await
        });
    }
    let mut workers = Vec::with_capacity(plan.connections);
    while let Some(w) = setups.join_next().await {
        workers.push(w.context("worker set-up panicked")??);
    }

    let start = Instant::now();
    let run = Arc::new(Run {
        wheel,
        start,
        measure_from: start + plan.warmup,
        end: start + plan.warmup + plan.duration,
        next: AtomicU64::new(0),
        recipient,
        prescription_ids: AtomicU64::new(1),
        plan: plan.clone(),
    });
    // CPU samples at the start and the end of the measured window.
    let sampler = {
        let pids = plan.system_pids.clone();
        let (from, end) = (run.measure_from, run.end);
        tokio::spawn(async move {
            let sample = || cpu::Sample::now(&pids, cpu::Driver::OwnProcess).ok();
            tokio::time::sleep_until(from.into()).await;
            let first = sample();
            tokio::time::sleep_until(end.into()).await;
            first.zip(sample())
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for w in workers {
        let run = run.clone();
        tasks.spawn(async move { w.drive(&run).await });
    }
    let mut per_op: Vec<(Op, OpStats)> = Vec::new();
    let mut reconnects = 0;
    let mut errors: Vec<String> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let done = done.context("worker panicked")?;
        reconnects += done.reconnects;
        for (op, stats) in done.stats {
            match per_op.iter_mut().find(|(o, _)| *o == op) {
                Some((_, s)) => s.merge(&stats),
                None => per_op.push((op, stats)),
            }
        }
        for e in done.errors {
            if errors.len() < 5 && !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
    per_op.sort_by_key(|(o, _)| *o);
    let requests = per_op.iter().map(|(_, s)| s.ok + s.errors).sum();
    let cpu = sampler
        .await
        .context("CPU sampler panicked")?
        .and_then(|(first, last)| first.per_exchange(&last, requests));
    Ok(Outcome {
        plan,
        measured: run.end.saturating_duration_since(run.measure_from),
        per_op,
        reconnects,
        errors,
        cpu,
    })
}

/// The trusted third party's certificate as `ServicesOuverts` publishes it.
async fn published_recipient(target: &Target) -> anyhow::Result<Recipient> {
    let mut conn = target.connect(false).await?;
    let body = target.messages.services(uuid::Uuid::new_v4(), None);
    let reply = conn.soap(target.messages.version, body).await?;
    let b64 = field(&reply.body, "certificat_chiffrement")
        .context("the server publishes no encryption certificate (VD_TTP_CERT/VD_TTP_KEY)")?;
    Recipient::from_published(&b64)
}

/// Memory of idle keep-alive connections, read from the server's `/proc/PID/status`.
#[derive(Debug, Serialize)]
pub struct IdleOutcome {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub per_connection_bytes: u64,
    /// Connections that still answered a request after the hold.
    pub alive_after_hold: usize,
}

/// Opens `count` connections (each makes one request, then idles), holds them for `hold`, and
/// reports the server's resident memory per connection.
pub async fn idle(
    target: Arc<Target>,
    count: usize,
    hold: Duration,
    server_pid: u32,
) -> anyhow::Result<IdleOutcome> {
    let before = rss_kib(server_pid)?;
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut setups = tokio::task::JoinSet::new();
    for _ in 0..count {
        let target = target.clone();
        let gate = gate.clone();
        setups.spawn(async move {
            let _slot = gate.acquire().await;
            let mut conn = target.connect(false).await?;
            conn.get("/bench-idle").await?;
            anyhow::Ok(conn)
        });
    }
    let mut conns = Vec::with_capacity(count);
    while let Some(c) = setups.join_next().await {
        conns.push(c.context("connection set-up panicked")??);
    }
    tokio::time::sleep(hold).await;
    let after = rss_kib(server_pid)?;
    let mut alive = 0;
    for c in conns.iter_mut().step_by((count / 100).max(1)) {
        if c.get("/bench-idle").await.is_ok() {
            alive += 1;
        }
    }
    let sampled = count.div_ceil((count / 100).max(1));
    Ok(IdleOutcome {
        connections: count,
        rss_before_kib: before,
        rss_after_kib: after,
        per_connection_bytes: after.saturating_sub(before) * 1024 / count.max(1) as u64,
        alive_after_hold: alive * count / sampled.max(1),
    })
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no process {pid}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}
