//! Replay: the `jti`s seen, each until its token expires, across instances (`audit.jeton_vu`).
//! A `jti` seen with another token is refused (a forged or re-minted token); a token that must be
//! single-use (a subject token of the exchange, an unbound token) is refused when seen before. A
//! certificate-bound token may be presented again on the connections of its certificate until it
//! expires: the TLS handshake proves possession of the key each time, which is what RFC 8705
//! binding is for.
//!
//! Each instance remembers the bound tokens it admitted, so that their later uses cost no round
//! trip; every first sighting and every single-use token is decided by the database.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::{Refused, TokenError, TokenIdentity};
use crate::store::token::{record_use, Use};
use crate::store::Store;

const MAX_ENTRIES: usize = 100_000;

/// Bound tokens this instance admitted: (issuer, jti) → (SHA-256, expiry).
#[derive(Default)]
pub(crate) struct Seen {
    admitted: Mutex<HashMap<(String, String), (String, i64)>>,
}

impl Seen {
    /// Records `token`'s use; a refusal when it is a replay.
    pub(crate) async fn check(
        &self,
        store: &Store,
        token: &TokenIdentity,
        single_use: bool,
    ) -> Result<(), TokenError> {
        let now = chrono::Utc::now().timestamp();
        let id = token.jti.clone().unwrap_or_else(|| token.sha256.clone());
        let key = (token.issuer.clone(), id);
        let lock = || self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        if !single_use {
            if let Some((sha, expires)) = lock().get(&key) {
                if *expires >= now && *sha == token.sha256 {
                    return Ok(());
                }
            }
        }
        // Kept past `exp` by the leeway a token may still be accepted in.
        let until = token.expires + 60;
        let expires =
            chrono::DateTime::from_timestamp(until, 0).ok_or(Refused("token_malformed"))?;
        let verdict = record_use(store, (&key.0, &key.1, &token.sha256), expires, single_use)
            .await
            .map_err(|e| {
                TokenError::Unavailable(anyhow::Error::from(e).context("token replay table"))
            })?;
        match verdict {
            Use::First if !single_use => {
                let mut m = lock();
                if m.len() >= MAX_ENTRIES {
                    m.retain(|_, (_, e)| *e >= now);
                    if m.len() >= MAX_ENTRIES {
                        m.clear();
                    }
                }
                m.insert(key, (token.sha256.clone(), until));
                Ok(())
            }
            Use::First => Ok(()),
            Use::Replayed => Err(Refused("token_replayed").into()),
            Use::JtiReused => Err(Refused("token_jti_reused").into()),
        }
    }
}
