//! TLS session tickets sealed with keys from a file shared by several instances, so that a
//! session opened on one resumes on any other (spec/operations.md "Scale").
//!
//! The file holds one key per line, 64 hexadecimal characters (32 bytes): the first line seals new
//! tickets, every line opens them. Rotation: put a new key on the first line and keep the old one
//! below it for a ticket lifetime, then remove it; the file is reread on reload (SIGHUP, change).

use std::fmt;
use std::path::Path;

use anyhow::Context;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use rustls::server::ProducesTickets;
use sha2::{Digest, Sha256};

/// Ticket lifetime announced to clients, seconds (12 hours).
const LIFETIME: u32 = 12 * 3600;
const NONCE: usize = 12;
const TAG: usize = 16;
const KEY_ID: usize = 8;

struct Key {
    id: [u8; KEY_ID],
    key: [u8; 32],
}

/// AES-256-GCM tickets: key id (8) ‖ nonce (12) ‖ ciphertext ‖ tag (16).
pub struct SharedTicketer {
    keys: Vec<Key>,
}

impl fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedTicketer({} key(s), [redacted])", self.keys.len())
    }
}

impl SharedTicketer {
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("VD_TICKET_KEY_FILE: cannot read {}", path.display()))?;
        let mut keys = Vec::new();
        for (i, line) in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .enumerate()
        {
            let bytes = hex::decode(line)
                .ok()
                .filter(|b| b.len() == 32)
                .with_context(|| {
                    format!(
                        "VD_TICKET_KEY_FILE: key {} is not 64 hexadecimal characters",
                        i + 1
                    )
                })?;
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes);
            let digest = Sha256::digest(key);
            let mut id = [0u8; KEY_ID];
            id.copy_from_slice(&digest[..KEY_ID]);
            keys.push(Key { id, key });
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "VD_TICKET_KEY_FILE: no key in {}",
            path.display()
        );
        Ok(SharedTicketer { keys })
    }

    /// A new key line for the file (for operators and tests).
    pub fn new_key_line() -> String {
        let mut key = [0u8; 32];
        openssl::rand::rand_bytes(&mut key).expect("the OS random source is available");
        hex::encode(key)
    }
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let k = &self.keys[0];
        let mut nonce = [0u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce).ok()?;
        let mut tag = [0u8; TAG];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            &k.key,
            Some(&nonce),
            &k.id,
            plain,
            &mut tag,
        )
        .ok()?;
        let mut out = Vec::with_capacity(KEY_ID + NONCE + sealed.len() + TAG);
        out.extend_from_slice(&k.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out.extend_from_slice(&tag);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < KEY_ID + NONCE + TAG {
            return None;
        }
        let (id, rest) = cipher.split_at(KEY_ID);
        let (nonce, rest) = rest.split_at(NONCE);
        let (sealed, tag) = rest.split_at(rest.len() - TAG);
        let k = self.keys.iter().find(|k| k.id == id)?;
        decrypt_aead(Cipher::aes_256_gcm(), &k.key, Some(nonce), id, sealed, tag).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_with_any_key_of_the_file_and_only_with_them() {
        let dir = std::env::temp_dir().join(format!("vd-tickets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (
            SharedTicketer::new_key_line(),
            SharedTicketer::new_key_line(),
        );
        std::fs::write(dir.join("a"), format!("{old}\n")).unwrap();
        std::fs::write(dir.join("b"), format!("# rotated\n{new}\n{old}\n")).unwrap();
        std::fs::write(dir.join("c"), format!("{new}\n")).unwrap();
        let a = SharedTicketer::from_file(&dir.join("a")).unwrap();
        let b = SharedTicketer::from_file(&dir.join("b")).unwrap();
        let c = SharedTicketer::from_file(&dir.join("c")).unwrap();
        let t = a.encrypt(b"session").unwrap();
        assert_eq!(
            b.decrypt(&t).unwrap(),
            b"session",
            "the old key still opens"
        );
        assert!(c.decrypt(&t).is_none(), "a removed key no longer opens");
        let mut tampered = t.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(a.decrypt(&tampered).is_none());
        assert!(!format!("{a:?}").contains(&old));
        std::fs::write(dir.join("d"), "not hex\n").unwrap();
        assert!(SharedTicketer::from_file(&dir.join("d")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
