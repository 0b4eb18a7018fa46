//! Refused handshakes and refused CRLs in the audit, rate-limited per peer and in total so that a
//! flood cannot fill the journal (the metrics still count every refusal).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{spawn_alone, AuditRecord, ClientCertificate};
use crate::code::Code;
use crate::store::Store;

/// At most this many audited refusals per peer address, and in total, per minute.
const PER_PEER_PER_MINUTE: u32 = 20;
const TOTAL_PER_MINUTE: u32 = 600;

struct RateState {
    window: Instant,
    total: u32,
    per_peer: HashMap<IpAddr, u32>,
}

/// The audit of what the TLS layer refuses.
pub(crate) struct HandshakeAudit {
    store: Store,
    instance: String,
    limits: Mutex<RateState>,
}

impl HandshakeAudit {
    pub(crate) fn new(store: Store, instance: String) -> Self {
        HandshakeAudit {
            store,
            instance,
            limits: Mutex::new(RateState {
                window: Instant::now(),
                total: 0,
                per_peer: HashMap::new(),
            }),
        }
    }

    /// Audits a refused handshake (its reason, the certificate when one was read); `false` when
    /// the rate limit left it out.
    pub(crate) fn refused(
        &self,
        peer: SocketAddr,
        cert: Option<&ClientCertificate>,
        reason: String,
    ) -> bool {
        if !self.allow(peer.ip()) {
            return false;
        }
        let mut rec = AuditRecord {
            instance: self.instance.clone(),
            operation: "handshake",
            code: Code::CertificatePolicy.as_str(),
            peer: Some(peer.to_string()),
            reason: Some(reason),
            ..Default::default()
        };
        if let Some(c) = cert {
            rec.certificate(c);
        }
        spawn_alone(&self.store, rec);
        true
    }

    /// Audits a CRL refused at reload (the reason names the file, never request data).
    pub(crate) fn crl_refused(&self, reason: &str) {
        let rec = AuditRecord {
            instance: self.instance.clone(),
            operation: "crl",
            code: Code::Technical.as_str(),
            reason: Some(reason.chars().take(500).collect()),
            ..Default::default()
        };
        spawn_alone(&self.store, rec);
    }

    fn allow(&self, peer: IpAddr) -> bool {
        let mut s = self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.window.elapsed() >= Duration::from_secs(60) {
            s.window = Instant::now();
            s.total = 0;
            s.per_peer.clear();
        }
        if s.total >= TOTAL_PER_MINUTE {
            return false;
        }
        let n = s.per_peer.entry(peer).or_insert(0);
        if *n >= PER_PEER_PER_MINUTE {
            return false;
        }
        *n += 1;
        s.total += 1;
        true
    }
}
