//! The cap per peer address on connections that have not yet completed a request
//! (`VD_MAX_PENDING_PER_PEER`): a client that opens connections and sends nothing useful holds at
//! most that many of the server's slots, whatever the global cap, while other addresses are
//! served. A slot is held from the accept (after the PROXY header, so that it counts the client's
//! address) until the connection's first complete request head, or its end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub(crate) struct PendingByPeer {
    cap: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl PendingByPeer {
    pub(crate) fn new(cap: u32) -> Arc<Self> {
        Arc::new(PendingByPeer {
            cap,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or `None` when it already holds `cap` unfinished connections. An IPv6
    /// client is counted by its /64 (what one site or one machine is given), an IPv4 one by its
    /// address.
    pub(crate) fn claim(self: &Arc<Self>, ip: IpAddr) -> Option<PendingSlot> {
        let ip = match ip.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
            v4 => v4,
        };
        let mut counts = self.counts.lock().expect("pending lock");
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(PendingSlot {
            owner: Some((self.clone(), ip)),
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().expect("pending lock");
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> u32 {
        self.counts.lock().unwrap().get(&ip).copied().unwrap_or(0)
    }
}

/// One unfinished connection of an address; released once, by [`PendingSlot::release`] or drop.
#[derive(Debug)]
pub(crate) struct PendingSlot {
    owner: Option<(Arc<PendingByPeer>, IpAddr)>,
}

impl PendingSlot {
    pub(crate) fn release(&mut self) {
        if let Some((owner, ip)) = self.owner.take() {
            owner.release(ip);
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_at_most_cap_slots_until_released() {
        let p = PendingByPeer::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut one = p.claim(a).unwrap();
        let two = p.claim(a).unwrap();
        assert!(p.claim(a).is_none(), "the third of one address");
        assert!(p.claim(b).is_some(), "another address");
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let _one = p.claim(v6("2001:db8:1:2::1")).unwrap();
        let _two = p.claim(v6("2001:db8:1:2::ffff")).unwrap();
        assert!(p.claim(v6("2001:db8:1:2:abcd::9")).is_none(), "one /64");
        assert!(p.claim(v6("2001:db8:1:3::1")).is_some(), "another /64");
        assert!(
            p.claim(v6("::ffff:192.0.2.2")).is_some(),
            "a mapped IPv4 is its IPv4"
        );
        one.release();
        one.release();
        assert_eq!(p.held(a), 1, "released once");
        let _three = p.claim(a).unwrap();
        drop(two);
        assert_eq!(p.held(a), 1);
    }
}
