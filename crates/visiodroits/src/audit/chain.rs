//! The hash chain: the sealer (one at a time across instances, by advisory lock) chains committed
//! rows in `audit.sceau` in the order it finds them, `hash = SHA-256(prev_hash || canonical(row))`;
//! `audit verify` walks it.

use std::borrow::Cow;
use std::io::Write as _;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{Role, Store};

/// Advisory lock key of the sealer ("vd-seal").
const SEALER_LOCK: i64 = 0x0076_642d_7365_616c;
/// A hole in the journal's ids wider than this is not transactions in flight (there are never
/// that many at once) but a jump of the sequence (a restore, a reset): not recorded as gaps.
const MAX_GAP: i64 = 10_000;
/// Gaps older than this are ids of rolled-back transactions: forgotten.
const GAP_TTL: &str = "1 hour";

/// A journal row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct JournalRow {
    pub id: i64,
    pub horodatage: DateTime<Utc>,
    pub instance: String,
    pub operation: String,
    pub code: String,
    pub duree_ms: i32,
    pub id_requete: Option<Uuid>,
    pub id_reponse: Option<Uuid>,
    pub horodatage_client: Option<DateTime<Utc>>,
    pub adresse_pair: Option<String>,
    pub cert_sujet: Option<String>,
    pub cert_emetteur: Option<String>,
    pub cert_serie: Option<String>,
    pub cert_empreinte: Option<String>,
    pub identifiant_ps: Option<String>,
    pub numero_structure: Option<String>,
    pub numero_amc: Option<String>,
    pub numero_dossier: Option<Uuid>,
    pub numero_accreditation: Option<String>,
    pub motif: Option<String>,
    pub profil_certificat: Option<String>,
    pub origine_structure: Option<String>,
    pub jeton_emetteur: Option<String>,
    pub jeton_jti: Option<String>,
    pub jeton_empreinte: Option<String>,
}

const COLUMNS: &str =
    "j.id, j.horodatage, j.instance, j.operation, j.code, j.duree_ms, j.id_requete,
    j.id_reponse, j.horodatage_client, j.adresse_pair, j.cert_sujet, j.cert_emetteur, j.cert_serie,
    j.cert_empreinte, j.identifiant_ps, j.numero_structure, j.numero_amc, j.numero_dossier,
    j.numero_accreditation, j.motif, j.profil_certificat, j.origine_structure, j.jeton_emetteur,
    j.jeton_jti, j.jeton_empreinte";

/// The canonical bytes of a row: every column in a fixed order, each as `len:value` (or `-` for
/// NULL), so that no two different rows share a canonical form. The columns added later
/// follow in groups — certificate profile and origin of the structure, then the bearer token's
/// issuer, `jti` and SHA-256 — each group only when it or a later one has a value, so that rows
/// chained before they existed keep their hash.
pub(crate) fn canonical(r: &JournalRow) -> Vec<u8> {
    fn ts(t: &DateTime<Utc>) -> Cow<'static, str> {
        Cow::Owned(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    }
    fn text(s: &Option<String>) -> Option<Cow<'_, str>> {
        s.as_deref().map(Cow::Borrowed)
    }
    fn uuid(u: Option<Uuid>) -> Option<Cow<'static, str>> {
        u.map(|u| Cow::Owned(u.to_string()))
    }
    // Borrowed where the row holds the text: the sealer runs this for every exchange.
    let fields: [Option<Cow<'_, str>>; 20] = [
        Some(Cow::Owned(r.id.to_string())),
        Some(ts(&r.horodatage)),
        Some(Cow::Borrowed(&r.instance)),
        Some(Cow::Borrowed(&r.operation)),
        Some(Cow::Borrowed(&r.code)),
        Some(Cow::Owned(r.duree_ms.to_string())),
        uuid(r.id_requete),
        uuid(r.id_reponse),
        r.horodatage_client.as_ref().map(ts),
        text(&r.adresse_pair),
        text(&r.cert_sujet),
        text(&r.cert_emetteur),
        text(&r.cert_serie),
        text(&r.cert_empreinte),
        text(&r.identifiant_ps),
        text(&r.numero_structure),
        text(&r.numero_amc),
        uuid(r.numero_dossier),
        text(&r.numero_accreditation),
        text(&r.motif),
    ];
    let groups: [&[&Option<String>]; 2] = [
        &[&r.profil_certificat, &r.origine_structure],
        &[&r.jeton_emetteur, &r.jeton_jti, &r.jeton_empreinte],
    ];
    let used = groups
        .iter()
        .rposition(|g| g.iter().any(|f| f.is_some()))
        .map_or(0, |last| last + 1);
    let later = groups[..used]
        .iter()
        .flat_map(|g| g.iter().map(|f| text(f)));
    let mut out = Vec::with_capacity(512);
    for f in fields.into_iter().chain(later) {
        match f {
            Some(v) => {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{}:", v.len());
                out.extend_from_slice(v.as_bytes());
            }
            None => out.push(b'-'),
        }
        out.push(b'\n');
    }
    out
}

pub(crate) fn chain_hash(prev: &[u8], row: &JournalRow) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical(row));
    h.finalize().to_vec()
}

/// Seals the committed rows not yet in the chain (up to `batch`); returns how many.
///
/// Rows come in id order, and ids are taken when a transaction writes its row, not when it
/// commits: a row may commit after later ones were chained. Each round therefore chains the
/// rows above the highest sealed id, records the ids missing below them as gaps
/// (`audit.lacune`), and chains the gaps whose row has committed since. Every statement is an
/// index range or key lookup, whatever the size of the journal.
pub(crate) async fn seal_pending(store: &Store, batch: i64) -> sqlx::Result<usize> {
    let mut tx = store.begin_as(Role::AuditSealer).await?;
    // One sealer at a time, across instances; the others skip this round.
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEALER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !got {
        return Ok(0);
    }
    let last: Option<(i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT position, (SELECT max(journal_id) FROM audit.sceau), hash
           FROM audit.sceau ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (mut position, highest, mut prev) = match last {
        Some((p, highest, h)) => (p, highest, h),
        None => (0, 0, vec![0u8; 32]),
    };
    let mut rows: Vec<JournalRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit.lacune l JOIN audit.journal j ON j.id = l.journal_id
          ORDER BY j.id LIMIT $1"
    ))
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let filled: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let recent: Vec<JournalRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit.journal j WHERE j.id > $1 ORDER BY j.id LIMIT $2"
    ))
    .bind(highest)
    .bind(batch - rows.len() as i64)
    .fetch_all(&mut *tx)
    .await?;
    let gaps = gaps_below(highest, recent.iter().map(|r| r.id));
    rows.extend(recent);
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }

    let mut positions = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    let mut prevs = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        position += 1;
        let hash = chain_hash(&prev, row);
        positions.push(position);
        ids.push(row.id);
        prevs.push(prev);
        prev = hash.clone();
        hashes.push(hash);
    }
    // Chain, record the new gaps, drop the filled and the expired ones: one statement.
    sqlx::query(&format!(
        "WITH sealed AS (
              INSERT INTO audit.sceau (position, journal_id, prev_hash, hash)
              SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])),
            opened AS (
              INSERT INTO audit.lacune (journal_id) SELECT unnest($5::bigint[])
              ON CONFLICT DO NOTHING)
         DELETE FROM audit.lacune
          WHERE journal_id = ANY($6::bigint[]) OR vue_le < now() - interval '{GAP_TTL}'"
    ))
    .bind(&positions)
    .bind(&ids)
    .bind(&prevs)
    .bind(&hashes)
    .bind(&gaps)
    .bind(&filled)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// The ids missing between `highest` (the highest sealed id, 0 before the first seal; ids
/// start at 1) and the ascending `ids` about to be sealed above it.
fn gaps_below(highest: i64, ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut gaps = Vec::new();
    let mut below = highest;
    for id in ids {
        if id - below - 1 > MAX_GAP {
            tracing::warn!(
                from = below + 1,
                to = id - 1,
                "audit ids jump: not waiting for rows in between"
            );
        } else {
            gaps.extend(below + 1..id);
        }
        below = id;
    }
    gaps
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub sealed: u64,
    pub unsealed: u64,
    /// The first broken link: (position, journal id).
    pub broken: Option<(i64, i64)>,
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    position: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    #[sqlx(flatten)]
    row: JournalRow,
}

/// Walks the chain in position order and recomputes every hash. Reads as `vd_auditeur` in one
/// repeatable-read snapshot.
pub async fn verify(pool: &PgPool) -> sqlx::Result<Verification> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL ROLE vd_auditeur")
        .execute(&mut *tx)
        .await?;
    let unsealed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.journal j WHERE NOT EXISTS (SELECT 1 FROM audit.sceau s WHERE s.journal_id = j.id)",
    )
    .fetch_one(&mut *tx)
    .await?;
    let sql = format!(
        "SELECT s.position, s.prev_hash, s.hash, {COLUMNS}
           FROM audit.sceau s JOIN audit.journal j ON j.id = s.journal_id
          ORDER BY s.position"
    );
    let mut stream = sqlx::query_as::<_, SealedRow>(&sql).fetch(&mut *tx);
    let mut prev = vec![0u8; 32];
    let mut expected_position = 1i64;
    let mut sealed = 0u64;
    let mut broken = None;
    while let Some(s) = stream.try_next().await? {
        let ok = s.position == expected_position
            && s.prev_hash == prev
            && s.hash == chain_hash(&prev, &s.row);
        if !ok {
            broken = Some((s.position, s.row.id));
            break;
        }
        prev = s.hash;
        expected_position += 1;
        sealed += 1;
    }
    drop(stream);
    tx.rollback().await?;
    Ok(Verification {
        sealed,
        unsealed: unsealed as u64,
        broken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row() -> JournalRow {
        JournalRow {
            id: 42,
            horodatage: Utc.with_ymd_and_hms(2026, 3, 15, 9, 30, 5).unwrap(),
            instance: "A".into(),
            operation: "droits".into(),
            code: "0".into(),
            duree_ms: 7,
            id_requete: Some(Uuid::from_u128(1)),
            id_reponse: None,
            horodatage_client: None,
            adresse_pair: Some("127.0.0.1".into()),
            cert_sujet: Some("CN=Pharmacie Légère".into()),
            cert_emetteur: None,
            cert_serie: None,
            cert_empreinte: None,
            identifiant_ps: None,
            numero_structure: None,
            numero_amc: Some("12345678".into()),
            numero_dossier: None,
            numero_accreditation: None,
            motif: None,
            profil_certificat: Some("cps".into()),
            origine_structure: None,
            jeton_emetteur: None,
            jeton_jti: None,
            jeton_empreinte: None,
        }
    }

    /// Auditors recompute the chain with their own tools: these bytes are the published form and
    /// must never change for a given row.
    #[test]
    fn the_canonical_form_is_length_prefixed_utf8_with_trailing_empty_groups_left_out() {
        let expected = "2:42\n27:2026-03-15T09:30:05.000000Z\n1:A\n6:droits\n1:0\n1:7\n\
            36:00000000-0000-0000-0000-000000000001\n-\n-\n9:127.0.0.1\n\
            21:CN=Pharmacie Légère\n-\n-\n-\n-\n-\n8:12345678\n-\n-\n-\n3:cps\n-\n";
        assert_eq!(String::from_utf8(canonical(&row())).unwrap(), expected);

        // A token field brings the second group, and the first one's empty fields, in.
        let mut with_token = row();
        with_token.jeton_jti = Some("j1".into());
        let text = String::from_utf8(canonical(&with_token)).unwrap();
        assert!(text.ends_with("3:cps\n-\n-\n2:j1\n-\n"), "{text}");
    }

    #[test]
    fn gaps_are_the_ids_missing_below_rows_about_to_be_sealed() {
        assert_eq!(gaps_below(0, [2, 3].into_iter()), vec![1]);
        assert_eq!(gaps_below(10, [11, 12].into_iter()), Vec::<i64>::new());
        assert_eq!(gaps_below(10, [13, 15].into_iter()), vec![11, 12, 14]);
        // A jump of the sequence (a restore, a truncated bench journal) is not transactions in
        // flight.
        let far = 10 + MAX_GAP + 2;
        assert_eq!(gaps_below(10, [far, far + 2].into_iter()), vec![far + 1]);
    }
}
