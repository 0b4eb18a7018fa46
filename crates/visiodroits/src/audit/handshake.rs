//! Refused handshakes and refused CRLs in the audit, rate-limited per peer and in total so that a
//! flood cannot fill the journal (the metrics still count every refusal).

use std::net::SocketAddr;

use super::rate::RateLimit;
use super::{spawn_alone, AuditRecord, ClientCertificate};
use crate::code::Code;
use crate::store::Store;

/// At most this many audited refusals per peer address, and in total, per minute.
const PER_PEER_PER_MINUTE: u32 = 20;
const TOTAL_PER_MINUTE: u32 = 600;

/// The audit of what the TLS layer refuses.
pub(crate) struct HandshakeAudit {
    store: Store,
    instance: String,
    limit: RateLimit,
}

impl HandshakeAudit {
    pub(crate) fn new(store: Store, instance: String) -> Self {
        HandshakeAudit {
            store,
            instance,
            limit: RateLimit::per_minute(PER_PEER_PER_MINUTE, TOTAL_PER_MINUTE),
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
        if !self.limit.allow(peer.ip()) {
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
}
