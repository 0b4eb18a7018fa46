//! `audit verify`: walk the hash chain and name the first broken row.

use crate::audit::chain as audit;
use crate::config::Secret;

/// Verifies the chain; `Ok(report)` when intact, `Err` naming the first broken row otherwise.
pub async fn verify(url: &Secret<String>) -> anyhow::Result<String> {
    let pool = super::migrate::admin_pool(url).await?;
    let v = audit::verify(&pool).await?;
    pool.close().await;
    match v.broken {
        None => Ok(format!(
            "audit chain intact: {} sealed row(s), {} row(s) not yet sealed",
            v.sealed, v.unsealed
        )),
        Some((position, id)) => anyhow::bail!(
            "audit chain broken at position {position} (audit.journal id {id}); {} row(s) verified before it",
            v.sealed
        ),
    }
}
