//! Retention (spec/data.md): expired dossiers' pairing rows go after a delay, tarification data
//! after another; audit rows stay. Deletions run in batches so that no lock is held long.

use sqlx::PgPool;

/// What a purge deleted (or would delete).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Purged {
    pub pairings: u64,
    pub tarifications: u64,
    pub dossiers: u64,
    pub responses: u64,
}

const COUNT_PAIRINGS: &str =
    "SELECT count(*) FROM identite.appariement a JOIN dispensation.dossier d USING (numero_dossier)
    WHERE d.expiration < now() - make_interval(days => $1)";
const DELETE_PAIRINGS: &str = "DELETE FROM identite.appariement WHERE numero_dossier IN (
    SELECT a.numero_dossier FROM identite.appariement a JOIN dispensation.dossier d USING (numero_dossier)
     WHERE d.expiration < now() - make_interval(days => $1) LIMIT $2)";
const COUNT_TARIFICATIONS: &str = "SELECT count(*) FROM dispensation.tarification t JOIN dispensation.dossier d USING (numero_dossier)
    WHERE d.expiration < now() - make_interval(days => $1)";
const DELETE_TARIFICATIONS: &str = "DELETE FROM dispensation.tarification WHERE id IN (
    SELECT t.id FROM dispensation.tarification t JOIN dispensation.dossier d USING (numero_dossier)
     WHERE d.expiration < now() - make_interval(days => $1) LIMIT $2)";
const DOSSIERS_WHERE: &str = "d.expiration < now() - make_interval(days => $1)
    AND NOT EXISTS (SELECT 1 FROM dispensation.tarification t WHERE t.numero_dossier = d.numero_dossier)
    AND NOT EXISTS (SELECT 1 FROM identite.appariement a WHERE a.numero_dossier = d.numero_dossier)";
const COUNT_RESPONSES: &str =
    "SELECT count(*) FROM dispensation.reponse WHERE cree_le < now() - make_interval(days => $1)";
const DELETE_RESPONSES: &str = "DELETE FROM dispensation.reponse WHERE (structure, id_requete) IN (
    SELECT structure, id_requete FROM dispensation.reponse WHERE cree_le < now() - make_interval(days => $1) LIMIT $2)";

async fn count(pool: &PgPool, sql: &str, days: i32) -> sqlx::Result<u64> {
    let n: i64 = sqlx::query_scalar(sql).bind(days).fetch_one(pool).await?;
    Ok(n as u64)
}

/// Deletes in batches of `batch` until nothing is left; each batch is its own transaction.
async fn drain(pool: &PgPool, sql: &str, days: i32, batch: i64) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let n = sqlx::query(sql)
            .bind(days)
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected();
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Runs the purge with an owner connection. With `dry_run`, counts only.
pub(crate) async fn purge(
    pool: &PgPool,
    pairing_days: u32,
    tarification_days: u32,
    dry_run: bool,
    batch: i64,
) -> sqlx::Result<Purged> {
    let (p, t) = (pairing_days as i32, tarification_days as i32);
    let dossiers_count =
        format!("SELECT count(*) FROM dispensation.dossier d WHERE {DOSSIERS_WHERE}");
    if dry_run {
        return Ok(Purged {
            pairings: count(pool, COUNT_PAIRINGS, p).await?,
            tarifications: count(pool, COUNT_TARIFICATIONS, t).await?,
            // Dossiers go once their pairing and tarifications are gone.
            dossiers: count(pool, &dossiers_count, t).await?,
            responses: count(pool, COUNT_RESPONSES, t).await?,
        });
    }
    let pairings = drain(pool, DELETE_PAIRINGS, p, batch).await?;
    let tarifications = drain(pool, DELETE_TARIFICATIONS, t, batch).await?;
    let delete_dossiers = format!(
        "DELETE FROM dispensation.dossier WHERE numero_dossier IN (SELECT d.numero_dossier FROM dispensation.dossier d WHERE {DOSSIERS_WHERE} LIMIT $2)"
    );
    let dossiers = drain(pool, &delete_dossiers, t, batch).await?;
    let responses = drain(pool, DELETE_RESPONSES, t, batch).await?;
    Ok(Purged {
        pairings,
        tarifications,
        dossiers,
        responses,
    })
}
