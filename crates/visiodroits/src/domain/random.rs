//! Random values for identifiers, read from the OS random source (getrandom(2)) a block at a time.
//!
//! Each exchange needs a response id and often a dossier or accreditation number: one system call
//! for each was two to three per request. The bytes come from the same source, are used once and
//! never shared between threads; the server never forks, so no two processes can hold one block.

use std::cell::RefCell;

use uuid::Uuid;

/// Bytes read per system call: 16 UUIDs' worth.
const BLOCK: usize = 256;

struct Pool {
    bytes: [u8; BLOCK],
    /// Bytes of `bytes` already handed out.
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; BLOCK], used: BLOCK }) };
}

/// Fills `out` (at most one block) with bytes never handed out before.
fn fill(out: &mut [u8]) -> Result<(), getrandom::Error> {
    debug_assert!(out.len() <= BLOCK);
    POOL.with_borrow_mut(|pool| {
        if BLOCK - pool.used < out.len() {
            getrandom::fill(&mut pool.bytes)?;
            pool.used = 0;
        }
        let start = pool.used;
        out.copy_from_slice(&pool.bytes[start..start + out.len()]);
        // What was handed out is wiped, so the buffer holds only what is still to come.
        pool.bytes[start..start + out.len()].fill(0);
        pool.used += out.len();
        Ok(())
    })
}

/// A random 64-bit value.
pub fn u64() -> Result<u64, getrandom::Error> {
    let mut b = [0u8; 8];
    fill(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// A random (version 4) UUID. Like `Uuid::new_v4`, it panics if the OS has no random source.
pub fn uuid_v4() -> Uuid {
    let mut b = [0u8; 16];
    fill(&mut b).expect("the OS random source is unavailable");
    uuid::Builder::from_random_bytes(b).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uuids_are_version_4_and_never_repeat_across_blocks() {
        let ids: HashSet<Uuid> = (0..10 * BLOCK).map(|_| uuid_v4()).collect();
        assert_eq!(ids.len(), 10 * BLOCK);
        assert!(ids
            .iter()
            .all(|u| u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122));
    }

    #[test]
    fn values_are_not_constant_when_a_block_is_refilled() {
        // 8-byte draws cross the 256-byte block boundary every 32 draws.
        let values: HashSet<u64> = (0..100).map(|_| u64().unwrap()).collect();
        assert_eq!(values.len(), 100);
    }

    #[test]
    fn threads_draw_different_values() {
        let here = uuid_v4();
        let there = std::thread::spawn(uuid_v4).join().unwrap();
        assert_ne!(here, there);
    }
}
