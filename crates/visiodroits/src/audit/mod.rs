//! The audit: one row per exchange, refused handshake and operator action, chained by a sealer.
//!
//! A low room: TLS, HTTP, the exchanges and the admin commands call it downwards; it uses only the
//! store's pool and roles. An exchange's row is written in the exchange's transaction (by the
//! statement that writes its data, see [`record::after`]); refusals and business errors, which
//! write nothing else, write theirs alone.

pub mod chain;
pub mod handshake;
mod rate;
pub mod record;

use std::sync::LazyLock;
use std::time::Duration;

use sqlx::PgConnection;

pub use record::{AuditRecord, ClientCertificate};

use crate::store::{Role, Store};

/// The audit row's INSERT with nothing before it.
static INSERT: LazyLock<String> = LazyLock::new(|| record::after("", 0));

/// Writes `rec` in the caller's transaction (whose role may insert into the journal).
pub async fn insert(tx: &mut PgConnection, rec: &AuditRecord) -> sqlx::Result<()> {
    rec.bind(sqlx::query(INSERT.as_str()))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Writes `rec` in a transaction of its own, as `vd_audit_writer`.
pub(crate) async fn insert_alone(store: &Store, rec: &AuditRecord) -> sqlx::Result<()> {
    let mut tx = store.begin_as(Role::AuditWriter).await?;
    insert(&mut tx, rec).await?;
    tx.commit().await
}

/// Writes an audit row in its own transaction, bounded in time: an audit that cannot be written
/// (database down) is logged, and the answer already decided is not delayed further.
pub(crate) async fn write_alone(store: &Store, rec: AuditRecord) {
    match tokio::time::timeout(Duration::from_secs(2), insert_alone(store, &rec)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(operation = rec.operation, code = rec.code, error = %e, "audit row not written")
        }
        Err(_) => tracing::error!(
            operation = rec.operation,
            code = rec.code,
            "audit row not written: timeout"
        ),
    }
}

/// [`write_alone`], off the caller's path (refusals before any exchange).
pub(crate) fn spawn_alone(store: &Store, rec: AuditRecord) {
    let store = store.clone();
    tokio::spawn(async move { write_alone(&store, rec).await });
}
