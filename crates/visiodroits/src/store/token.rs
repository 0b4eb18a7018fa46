//! The `jti`s seen by every instance (`audit.jeton_vu`, through `audit.vd_jeton_vu`): replay is
//! decided in one statement, as the audit writer.

use super::{Role, Store};

/// What the database says of a token's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    First,
    /// Seen before, and this use or the first one is single use.
    Replayed,
    /// The `jti` came with another token.
    JtiReused,
}

/// Records a use of the token `(issuer, jti)` whose SHA-256 is `sha256`, valid until `expires`.
pub(crate) async fn record_use(
    store: &Store,
    (issuer, jti, sha256): (&str, &str, &str),
    expires: chrono::DateTime<chrono::Utc>,
    single_use: bool,
) -> sqlx::Result<Use> {
    let mut tx = store.begin_as(Role::AuditWriter).await?;
    let verdict: String = sqlx::query_scalar("SELECT audit.vd_jeton_vu($1, $2, $3, $4, $5)")
        .bind(issuer)
        .bind(jti)
        .bind(sha256)
        .bind(expires)
        .bind(single_use)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(match verdict.as_str() {
        "ok" => Use::First,
        "jti_reused" => Use::JtiReused,
        _ => Use::Replayed,
    })
}
