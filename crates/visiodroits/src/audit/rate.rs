//! A per-minute budget of audit rows, per peer address and in total: what keeps a flood of refused
//! handshakes from filling the journal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct RateLimit {
    per_peer: u32,
    total: u32,
    state: Mutex<Window>,
}

/// The minute being counted.
struct Window {
    started: Instant,
    total: u32,
    per_peer: HashMap<IpAddr, u32>,
}

impl RateLimit {
    /// At most `per_peer` rows per address and `total` rows in all, per minute.
    pub(crate) fn per_minute(per_peer: u32, total: u32) -> Self {
        RateLimit {
            per_peer,
            total,
            state: Mutex::new(Window {
                started: Instant::now(),
                total: 0,
                per_peer: HashMap::new(),
            }),
        }
    }

    /// Whether one more row for `peer` fits this minute's budget (and counts it when it does).
    pub(crate) fn allow(&self, peer: IpAddr) -> bool {
        let mut w = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.started.elapsed() >= Duration::from_secs(60) {
            w.started = Instant::now();
            w.total = 0;
            w.per_peer.clear();
        }
        if w.total >= self.total {
            return false;
        }
        let n = w.per_peer.entry(peer).or_insert(0);
        if *n >= self.per_peer {
            return false;
        }
        *n += 1;
        w.total += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_share_and_the_total_caps_everyone() {
        let limit = RateLimit::per_minute(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limit.allow(a));
        assert!(limit.allow(a));
        assert!(!limit.allow(a), "a's share is spent");
        assert!(limit.allow(b));
        assert!(!limit.allow(b), "the total is spent");
    }
}
