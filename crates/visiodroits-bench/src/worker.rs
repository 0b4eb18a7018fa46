//! One connection of the load: its dossier, its last PEC, and the loop that sends requests.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use super::{population, Op, OpStats, Pace, Run, Target};
use visiodroits_client::messages::{
    field, prescription_document, Payload, Prescription, RightsRequest,
};
use visiodroits_client::SoapConnection;

pub(super) struct Worker {
    target: Arc<Target>,
    conn: Option<SoapConnection>,
    dossier: Option<String>,
    /// (accreditation, prescription) of this connection's last PEC, for cancellations.
    last_pec: Option<(String, u32)>,
    rng: u64,
    today: String,
}

pub(super) struct Done {
    pub stats: Vec<(Op, OpStats)>,
    pub reconnects: u64,
    pub errors: Vec<String>,
}

impl Worker {
    /// Connects (unless the run measures handshakes) and gets a dossier when the mix needs one.
    pub(crate) async fn prepare(
        index: usize,
        target: Arc<Target>,
        keep_connection: bool,
        needs_dossier: bool,
    ) -> anyhow::Result<Worker> {
        let mut w = Worker {
            conn: None,
            dossier: None,
            last_pec: None,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            today: chrono::Utc::now().date_naive().to_string(),
            target,
        };
        if keep_connection {
            w.conn = Some(w.target.connect(false).await?);
        } else {
            // Fills the client's session cache for resumed handshakes.
            let mut c = w.target.connect(false).await?;
            c.get("/bench-handshake").await?;
        }
        if needs_dossier {
            let body = w.rights_request();
            let reply = w.send(body).await.map_err(|e| anyhow::anyhow!(e))?;
            w.dossier = Some(
                field(&reply, "numero_dossier")
                    .ok_or_else(|| anyhow::anyhow!("no dossier for the load's beneficiary"))?,
            );
        }
        Ok(w)
    }

    pub(crate) async fn drive(mut self, run: &Run) -> Done {
        let mut stats: Vec<(Op, OpStats)> = Vec::new();
        let mut done = Done {
            stats: Vec::new(),
            reconnects: 0,
            errors: Vec::new(),
        };
        loop {
            let k = run.next.fetch_add(1, Ordering::Relaxed);
            let due = match run.plan.pace {
                Pace::Closed => Instant::now(),
                Pace::Open { rate } => {
                    run.start + std::time::Duration::from_secs_f64(k as f64 / rate)
                }
            };
            if due >= run.end {
                break;
            }
            if matches!(run.plan.pace, Pace::Open { .. }) {
                tokio::time::sleep_until(due.into()).await;
            }
            let op = run.op(k);
            // Open loop: latency counts from the scheduled time. Closed loop: from the send
            // (after any preparation the operation needs).
            let mut from = due;
            let result = self
                .execute(
                    op,
                    run,
                    matches!(run.plan.pace, Pace::Closed),
                    &mut from,
                    &mut done,
                )
                .await;
            let took = from.elapsed();
            if due < run.measure_from {
                continue;
            }
            let s = match stats.iter_mut().find(|(o, _)| *o == op) {
                Some((_, s)) => s,
                None => {
                    stats.push((op, OpStats::new()));
                    &mut stats.last_mut().expect("just pushed").1
                }
            };
            match result {
                Ok(()) => {
                    s.ok += 1;
                    s.latency_us
                        .saturating_record((took.as_micros() as u64).max(1));
                }
                Err(e) => {
                    s.errors += 1;
                    if done.errors.len() < 5 && !done.errors.contains(&e) {
                        done.errors.push(e);
                    }
                }
            }
        }
        done.stats = stats;
        done
    }

    async fn execute(
        &mut self,
        op: Op,
        run: &Run,
        closed: bool,
        from: &mut Instant,
        done: &mut Done,
    ) -> Result<(), String> {
        if op.is_handshake() {
            let full = op == Op::HandshakeFull;
            let mut c = self
                .target
                .connect(full)
                .await
                .map_err(|e| format!("{}: {e}", op.name()))?;
            let reply = c
                .get("/bench-handshake")
                .await
                .map_err(|e| format!("{}: {e}", op.name()))?;
            if reply.status != http::StatusCode::NOT_FOUND {
                return Err(format!("{}: HTTP {}", op.name(), reply.status));
            }
            if !full && !c.resumed {
                return Err("handshake-resumed: the session was not resumed".into());
            }
            return Ok(());
        }
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            done.reconnects += 1;
            self.conn = Some(
                self.target
                    .connect(false)
                    .await
                    .map_err(|e| format!("connect: {e}"))?,
            );
        }
        let target = self.target.clone();
        let messages = &target.messages;
        let body = match op {
            Op::Services => messages.services(Uuid::new_v4(), None),
            Op::Rights => self.rights_request(),
            Op::Devis | Op::Pec => {
                let p = self.prescription(run);
                let dossier = self.dossier.as_deref().unwrap_or_default();
                messages.tarification(Uuid::new_v4(), dossier, op == Op::Pec, &Payload::Clear(p))
            }
            Op::PecEncrypted => {
                let p = self.prescription(run);
                let recipient = run.recipient.as_ref().ok_or("no recipient certificate")?;
                let der = recipient
                    .encrypt(prescription_document(&p).as_bytes())
                    .map_err(|e| format!("encrypt: {e}"))?;
                let payload = Payload::Encrypted {
                    der,
                    fingerprint: Some(recipient.fingerprint.clone()),
                };
                let dossier = self.dossier.as_deref().unwrap_or_default();
                messages.tarification(Uuid::new_v4(), dossier, true, &payload)
            }
            Op::Cancellation => {
                if self.last_pec.is_none() {
                    let p = self.prescription(run);
                    let dossier = self.dossier.as_deref().unwrap_or_default();
                    let body =
                        messages.tarification(Uuid::new_v4(), dossier, true, &Payload::Clear(p));
                    self.send(body).await?;
                    if closed {
                        *from = Instant::now();
                    }
                }
                let (accreditation, prescription) = self
                    .last_pec
                    .take()
                    .ok_or("the PEC to cancel has no accreditation")?;
                let dossier = self.dossier.as_deref().unwrap_or_default();
                messages.cancellation(Uuid::new_v4(), dossier, &accreditation, prescription)
            }
            Op::HandshakeFull | Op::HandshakeResumed => unreachable!("handled above"),
        };
        self.send(body).await.map(|_| ())
    }

    /// Sends on the kept connection; `Ok` with the body when the code is 0000. Remembers a PEC's
    /// accreditation.
    async fn send(&mut self, body: String) -> Result<String, String> {
        let version = self.target.messages.version;
        let conn = self.conn.as_mut().ok_or("no connection")?;
        let reply = match conn.soap(version, body).await {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(format!("transport: {e}"));
            }
        };
        match field(&reply.body, "code").as_deref() {
            Some("0000") => {}
            Some(code) => return Err(format!("HTTP {} code {code}", reply.status.as_u16())),
            None => return Err(format!("HTTP {} without a code", reply.status.as_u16())),
        }
        if let (Some(a), Some(p)) = (
            field(&reply.body, "numero_accreditation"),
            field(&reply.body, "id_prescription"),
        ) {
            self.last_pec = p.parse().ok().map(|p| (a, p));
        }
        Ok(reply.body)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn rights_request(&mut self) -> String {
        let i = self.next_random() % self.target.population.max(1);
        let (nir, key, birth) = population::person(i);
        let r = RightsRequest {
            nir,
            key,
            birth,
            rank: 1,
            amc: population::AMC.into(),
            adherent: None,
            date: self.today.clone(),
            domains: vec!["PHAR".into()],
        };
        self.target.messages.rights(Uuid::new_v4(), &r)
    }

    /// The load's prescription with a new id each time, so that PECs never collide (7009).
    fn prescription(&self, run: &Run) -> Prescription {
        let id = run.prescription_ids.fetch_add(1, Ordering::Relaxed) as u32;
        crate::prescription(id, &self.today)
    }
}
