//! TLS resumption state that ages out (spec/security.md "Sessions age out"): session-cache
//! entries and tickets carry the time they were issued and are refused once older than the ticket
//! lifetime (12 hours at most). rustls leaves a ticket's lifetime to key rotation, and a key file
//! shared by several instances is never rotated by the server itself.

use std::sync::Arc;

use rustls::server::{ProducesTickets, StoresServerSessions};

/// The longest a session may be resumed after its full handshake, seconds.
pub(crate) const MAX_AGE: u64 = 12 * 3600;

/// Seconds since the Unix epoch, as the clock of a [`Aged`] wrapper reads it.
pub type Clock = fn() -> u64;

fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Prefixes what it stores with the issue time and refuses what is older than `max_age`.
pub(crate) struct Aged<T: ?Sized> {
    inner: Arc<T>,
    max_age: u64,
    clock: Clock,
}

impl<T: ?Sized> Aged<T> {
    pub(crate) fn new(inner: Arc<T>, max_age: u64) -> Self {
        Self::with_clock(inner, max_age, system_clock)
    }

    pub(crate) fn with_clock(inner: Arc<T>, max_age: u64, clock: Clock) -> Self {
        Aged {
            inner,
            max_age,
            clock,
        }
    }

    fn stamp(&self, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + value.len());
        out.extend_from_slice(&(self.clock)().to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn unstamp(&self, stored: Vec<u8>) -> Option<Vec<u8>> {
        let issued = u64::from_be_bytes(stored.get(..8)?.try_into().ok()?);
        let now = (self.clock)();
        // A time in the future (clocks of instances sharing a key file) counts as issued now.
        if now.saturating_sub(issued) > self.max_age {
            return None;
        }
        Some(stored[8..].to_vec())
    }
}

impl<T: ?Sized> std::fmt::Debug for Aged<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aged(max {} s)", self.max_age)
    }
}

/// Tickets: the issue time travels inside the sealed ticket.
impl<T: ProducesTickets + ?Sized> ProducesTickets for Aged<T> {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime().min(self.max_age as u32)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&self.stamp(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.unstamp(self.inner.decrypt(cipher)?)
    }
}

/// The TLS 1.2 session-ID cache.
impl<T: StoresServerSessions + ?Sized> StoresServerSessions for Aged<T> {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, self.stamp(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.unstamp(self.inner.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.unstamp(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    static NOW: AtomicU64 = AtomicU64::new(1_000_000);

    fn clock() -> u64 {
        NOW.load(Ordering::SeqCst)
    }

    #[test]
    fn tickets_and_cache_entries_older_than_their_lifetime_are_refused() {
        let ticketer: Arc<dyn ProducesTickets> =
            rustls::crypto::aws_lc_rs::Ticketer::new().unwrap();
        let tickets = Aged::with_clock(ticketer, MAX_AGE, clock);
        assert!(tickets.lifetime() as u64 <= MAX_AGE);
        let cache = Aged::with_clock(
            rustls::server::ServerSessionMemoryCache::new(16),
            MAX_AGE,
            clock,
        );
        let t = tickets.encrypt(b"session").unwrap();
        assert!(cache.put(b"id".to_vec(), b"session".to_vec()));
        NOW.fetch_add(MAX_AGE, Ordering::SeqCst);
        assert_eq!(tickets.decrypt(&t).as_deref(), Some(&b"session"[..]));
        assert_eq!(cache.get(b"id").as_deref(), Some(&b"session"[..]));
        NOW.fetch_add(1, Ordering::SeqCst);
        assert_eq!(tickets.decrypt(&t), None, "a ticket past its lifetime");
        assert_eq!(cache.get(b"id"), None, "a cache entry past its lifetime");
        assert_eq!(cache.take(b"id"), None);
    }
}
