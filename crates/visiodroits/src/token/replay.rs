//! Replay: the `jti`s seen, each until its token expires. A `jti` seen with another token is
//! refused (a forged or re-minted token); a token that must be single-use (a subject token of the
//! exchange, an unbound token) is refused when seen before. A certificate-bound token may be
//! presented again on the connections of its certificate until it expires: the TLS handshake
//! proves possession of the key each time, which is what RFC 8705 binding is for.
//!
//! Kept in memory, per instance; bounded (the table refuses new tokens rather than grow without
//! end, after dropping the expired ones).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::{Refused, TokenIdentity};

const MAX_ENTRIES: usize = 1_000_000;

struct Entry {
    expires: i64,
    sha256: String,
    single_use: bool,
}

#[derive(Default)]
pub(crate) struct Seen {
    map: Mutex<HashMap<(String, String), Entry>>,
}

impl Seen {
    /// Records `token`'s use; `Err` when it is a replay.
    pub(crate) fn check(&self, token: &TokenIdentity, single_use: bool) -> Result<(), Refused> {
        let now = chrono::Utc::now().timestamp();
        let id = token.jti.clone().unwrap_or_else(|| token.sha256.clone());
        let key = (token.issuer.clone(), id);
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get_mut(&key) {
            if e.expires >= now {
                if e.sha256 != token.sha256 {
                    return Err(Refused("token_jti_reused"));
                }
                if single_use || e.single_use {
                    return Err(Refused("token_replayed"));
                }
                return Ok(());
            }
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.expires >= now);
            if map.len() >= MAX_ENTRIES {
                return Err(Refused("token_replay_table_full"));
            }
        }
        // Kept past `exp` by the leeway a token may still be accepted in.
        map.insert(
            key,
            Entry {
                expires: token.expires + 60,
                sha256: token.sha256.clone(),
                single_use,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(jti: &str, sha: &str) -> TokenIdentity {
        TokenIdentity {
            issuer: "https://psc".into(),
            jti: Some(jti.into()),
            sha256: sha.into(),
            ps_id: "810001234565".into(),
            structures: vec![],
            thumbprint: None,
            acr: None,
            expires: chrono::Utc::now().timestamp() + 120,
            ours: false,
        }
    }

    #[test]
    fn single_use_tokens_pass_once_and_bound_ones_until_they_expire() {
        let seen = Seen::default();
        assert_eq!(seen.check(&token("a", "1"), true), Ok(()));
        assert_eq!(
            seen.check(&token("a", "1"), true),
            Err(Refused("token_replayed"))
        );
        assert_eq!(seen.check(&token("b", "2"), false), Ok(()));
        assert_eq!(seen.check(&token("b", "2"), false), Ok(()));
        assert_eq!(
            seen.check(&token("b", "3"), false),
            Err(Refused("token_jti_reused"))
        );
        // A bound token once exchanged goes no further.
        assert_eq!(
            seen.check(&token("b", "2"), true),
            Err(Refused("token_replayed"))
        );
        let mut old = token("c", "4");
        old.expires = chrono::Utc::now().timestamp() - 120;
        assert_eq!(seen.check(&old, true), Ok(()));
        assert_eq!(
            seen.check(&old, true),
            Ok(()),
            "an expired entry is forgotten"
        );
    }
}
