//! Bulk import of rights lines (`import`): the valid lines are streamed by COPY into a temporary
//! staging table, a chunk at a time, and each chunk is merged into `identite` by a fixed number of
//! set-based statements, in key order (so the indexes are walked in order). Rows equal to the file
//! are not written again, so a nightly file that changed little costs little. Every chunk goes in
//! one transaction: exchanges see a beneficiary as it was before the import or as the file has
//! it, never half, and a failure writes nothing.
//!
//! Rule sets are shared: a guarantee points to its `identite.bareme` row, keyed by the SHA-256 of
//! the set's canonical form (the migration's `identite.vd_empreinte`, which the table checks).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::domain::{AmcNumber, BirthDate, BirthRank, DomainCode, Nir};
use crate::store::rights::Rule;

/// One valid line: one beneficiary × contract × domain guarantee.
#[derive(Debug, Clone)]
pub(crate) struct RightsLine {
    pub amc: AmcNumber,
    pub amc_name: String,
    pub reference: String,
    pub nir: Option<Nir>,
    pub birth: BirthDate,
    pub rank: BirthRank,
    pub last_name: String,
    pub first_name: String,
    pub insured: Vec<Nir>,
    pub contract: String,
    pub adherent: Option<String>,
    pub responsible: bool,
    pub domain: DomainCode,
    pub label: String,
    pub guarantee: String,
    pub priority: i16,
    pub network: Option<String>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub rules: Vec<Rule>,
}

/// What an import wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    pub beneficiaries_added: u64,
    /// Beneficiaries already there whose values the file changed (a beneficiary added by one
    /// chunk and changed by a later line of the same file counts in both).
    pub beneficiaries_updated: u64,
    pub guarantees_added: u64,
    /// Guarantees already there whose values (period end, label, rules…) the file changed.
    pub guarantees_updated: u64,
    /// Guarantees the file no longer holds (`--full`), ended yesterday or removed when they had
    /// not begun.
    pub guarantees_ended: u64,
}

// Each merge finds the rows already there one staged key at a time, through the table's unique
// index and in key order (a `LATERAL … OFFSET 0` look-up, which the planner cannot turn into a
// hash of the whole table), then inserts the new rows and updates only those the file changed:
// a row equal to the file is not written again. The ids of the chunk's beneficiaries and contracts
// are kept in two small indexed tables, so the later statements need not look them up again.
// Hash and merge joins are off while a chunk merges: every join there is a look-up by index, and
// a hash would read the whole target table once per chunk.

/// Lines staged before a merge: enough for the statements to be worth their planning, few enough
/// for a chunk's sorts to stay in memory.
pub const CHUNK: usize = 100_000;

/// The staging table, one row per valid line (`n` its line number: a later line wins).
const CREATE_STAGING: &str = "CREATE TEMP TABLE vd_import_ligne (
    n bigint NOT NULL, numero_amc text NOT NULL, ref_externe text NOT NULL, nir text,
    cle_nir text, date_naissance text NOT NULL, rang smallint NOT NULL, nom text NOT NULL,
    prenom text NOT NULL, nir_1 text, cle_1 text, nir_2 text, cle_2 text,
    numero_contrat text NOT NULL, numero_adherent text, responsable boolean NOT NULL,
    domaine text NOT NULL, libelle text NOT NULL, code_garantie text NOT NULL,
    priorite smallint NOT NULL, reseau text, debut date NOT NULL, fin date NOT NULL,
    empreinte bytea NOT NULL
) ON COMMIT DROP";

/// The ids of the chunk's beneficiaries and contracts, by key.
const CREATE_IDS: [&str; 2] = [
    "CREATE TEMP TABLE vd_import_beneficiaire (
    numero_amc text, ref_externe text, id bigint NOT NULL, PRIMARY KEY (numero_amc, ref_externe)
) ON COMMIT DROP",
    "CREATE TEMP TABLE vd_import_contrat (
    numero_amc text, numero_contrat text, id bigint NOT NULL,
    PRIMARY KEY (numero_amc, numero_contrat)
) ON COMMIT DROP",
];

const CLEAR_CHUNK: &str = "TRUNCATE vd_import_ligne, vd_import_beneficiaire, vd_import_contrat";

const COPY_STAGING: &str = "COPY vd_import_ligne FROM STDIN (FORMAT text)";

/// While chunks merge: look-ups by index only, and no JIT (a chunk's statements are short; the
/// compilation cost more than it saved).
const INDEX_PLANS: [&str; 3] = [
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
    "SET LOCAL jit = off",
];

/// `--full`'s final sweep reads whole tables: hash joins are right there.
const WHOLE_TABLE_PLANS: [&str; 2] = ["RESET enable_hashjoin", "RESET enable_mergejoin"];

/// `--full`: the keys of every guarantee the file holds.
const CREATE_KEYS: &str = "CREATE TEMP TABLE vd_import_cle (
    numero_amc text, ref_externe text, numero_contrat text, domaine text, debut date
) ON COMMIT DROP";

const KEEP_KEYS: &str = "INSERT INTO vd_import_cle
    SELECT numero_amc, ref_externe, numero_contrat, domaine, debut FROM vd_import_ligne";

const MERGE_AMCS: &str = "INSERT INTO identite.amc AS t (numero_amc, nom)
    SELECT * FROM UNNEST($1::text[], $2::text[])
    ON CONFLICT (numero_amc) DO UPDATE SET nom = EXCLUDED.nom, updated_at = now()
      WHERE t.nom IS DISTINCT FROM EXCLUDED.nom";

/// A new AMC opens every service; operators close them as needed.
const OPEN_SERVICES: &str = "INSERT INTO identite.amc_service (numero_amc, service, actif)
    SELECT n, s, true FROM UNNEST($1::text[]) n
      CROSS JOIN UNNEST(ARRAY['DROITS', 'TARIFICATION', 'TARIFICATION_CHIFFREE', 'ANNULATION',
                              'CONSULTATION']) s
    ON CONFLICT DO NOTHING";

/// The rule sets not seen yet, as flat arrays (`set` numbers the set of each rule; a set without
/// rules has one entry with a NULL code).
const MERGE_SETS: &str = "INSERT INTO identite.bareme (empreinte, codes, unites, valeurs, plafonds)
    SELECT e,
           coalesce(array_agg(c ORDER BY i) FILTER (WHERE c IS NOT NULL), '{}'),
           coalesce(array_agg(u ORDER BY i) FILTER (WHERE c IS NOT NULL), '{}'),
           coalesce(array_agg(v ORDER BY i) FILTER (WHERE c IS NOT NULL), '{}'),
           coalesce(array_agg(p ORDER BY i) FILTER (WHERE c IS NOT NULL), '{}')
      FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
           WITH ORDINALITY AS r (e, c, u, v, p, i)
     GROUP BY e
    ON CONFLICT (empreinte) DO NOTHING";

/// Returns how many beneficiaries were added and changed, and how many the chunk names (the last
/// line of each wins); keeps every one's id.
const MERGE_BENEFICIARIES: &str = "WITH d AS (
    SELECT DISTINCT ON (numero_amc, ref_externe)
           numero_amc, ref_externe, nir, cle_nir, date_naissance, rang, nom, prenom
      FROM vd_import_ligne ORDER BY numero_amc, ref_externe, n DESC),
x AS MATERIALIZED (
    SELECT d.*, t.id,
           (t.nir, t.cle_nir, t.date_naissance, t.rang, t.nom, t.prenom)
           IS NOT DISTINCT FROM (d.nir, d.cle_nir, d.date_naissance, d.rang, d.nom, d.prenom)
           AS pareil
      FROM d LEFT JOIN LATERAL (
           SELECT id, nir, cle_nir, date_naissance, rang, nom, prenom FROM identite.beneficiaire t
            WHERE t.numero_amc = d.numero_amc AND t.ref_externe = d.ref_externe OFFSET 0) t ON true),
ins AS (
    INSERT INTO identite.beneficiaire
           (numero_amc, ref_externe, nir, cle_nir, date_naissance, rang, nom, prenom)
    SELECT numero_amc, ref_externe, nir, cle_nir, date_naissance, rang, nom, prenom
      FROM x WHERE id IS NULL ORDER BY numero_amc, ref_externe
    RETURNING numero_amc, ref_externe, id),
upd AS (
    UPDATE identite.beneficiaire t SET nir = x.nir, cle_nir = x.cle_nir,
           date_naissance = x.date_naissance, rang = x.rang, nom = x.nom, prenom = x.prenom
      FROM x WHERE t.id = x.id AND NOT x.pareil
    RETURNING t.id),
k AS (
    INSERT INTO vd_import_beneficiaire (numero_amc, ref_externe, id)
    SELECT numero_amc, ref_externe, id FROM x WHERE id IS NOT NULL
    UNION ALL SELECT numero_amc, ref_externe, id FROM ins
    RETURNING id)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd), (SELECT count(*) FROM k)";

/// The insured persons of the chunk's beneficiaries, as their last line has them: the positions
/// that differ (or that the line leaves empty) are removed, then the missing ones written.
macro_rules! last_insured {
    () => {
        "WITH d AS (
    SELECT DISTINCT ON (s.numero_amc, s.ref_externe) b.id, s.nir_1, s.cle_1, s.nir_2, s.cle_2
      FROM vd_import_ligne s
      JOIN vd_import_beneficiaire b ON b.numero_amc = s.numero_amc AND b.ref_externe = s.ref_externe
     ORDER BY s.numero_amc, s.ref_externe, s.n DESC)"
    };
}

const DROP_INSURED: &str = concat!(
    last_insured!(),
    "
DELETE FROM identite.ouvrant_droit o USING d
 WHERE o.beneficiaire_id = d.id
   AND (o.nir, o.cle_nir) IS DISTINCT FROM
       (CASE o.position WHEN 1 THEN d.nir_1 ELSE d.nir_2 END,
        CASE o.position WHEN 1 THEN d.cle_1 ELSE d.cle_2 END)"
);

const ADD_INSURED: &str = concat!(
    last_insured!(),
    "
INSERT INTO identite.ouvrant_droit (beneficiaire_id, position, nir, cle_nir)
SELECT id, 1, nir_1, cle_1 FROM d WHERE nir_1 IS NOT NULL
UNION ALL
SELECT id, 2, nir_2, cle_2 FROM d WHERE nir_2 IS NOT NULL
ORDER BY 1, 2
ON CONFLICT (beneficiaire_id, position) DO NOTHING"
);

/// Keeps every contract's id.
const MERGE_CONTRACTS: &str = "WITH d AS (
    SELECT DISTINCT ON (numero_amc, numero_contrat)
           numero_amc, numero_contrat, numero_adherent, responsable
      FROM vd_import_ligne ORDER BY numero_amc, numero_contrat, n DESC),
x AS MATERIALIZED (
    SELECT d.*, t.id,
           (t.numero_adherent, t.responsable) IS NOT DISTINCT FROM (d.numero_adherent, d.responsable)
           AS pareil
      FROM d LEFT JOIN LATERAL (
           SELECT id, numero_adherent, responsable FROM identite.contrat t
            WHERE t.numero_amc = d.numero_amc AND t.numero_contrat = d.numero_contrat
           OFFSET 0) t ON true),
ins AS (
    INSERT INTO identite.contrat (numero_amc, numero_contrat, numero_adherent, responsable)
    SELECT numero_amc, numero_contrat, numero_adherent, responsable
      FROM x WHERE id IS NULL ORDER BY numero_amc, numero_contrat
    RETURNING numero_amc, numero_contrat, id),
upd AS (
    UPDATE identite.contrat t
       SET numero_adherent = x.numero_adherent, responsable = x.responsable
      FROM x WHERE t.id = x.id AND NOT x.pareil)
INSERT INTO vd_import_contrat (numero_amc, numero_contrat, id)
SELECT numero_amc, numero_contrat, id FROM x WHERE id IS NOT NULL
UNION ALL SELECT numero_amc, numero_contrat, id FROM ins";

/// Returns how many guarantees were added and changed.
const MERGE_GUARANTEES: &str = "WITH d AS (
    SELECT DISTINCT ON (b.id, c.id, s.domaine, s.debut)
           b.id AS beneficiaire_id, c.id AS contrat_id, s.domaine, s.libelle,
           s.code_garantie, s.priorite, s.reseau, s.debut, s.fin, r.id AS bareme_id
      FROM vd_import_ligne s
      JOIN vd_import_beneficiaire b
        ON b.numero_amc = s.numero_amc AND b.ref_externe = s.ref_externe
      JOIN vd_import_contrat c
        ON c.numero_amc = s.numero_amc AND c.numero_contrat = s.numero_contrat
      JOIN identite.bareme r ON r.empreinte = s.empreinte
     ORDER BY b.id, c.id, s.domaine, s.debut, s.n DESC),
x AS MATERIALIZED (
    SELECT d.*, t.id,
           (t.libelle, t.code_garantie, t.priorite, t.reseau, t.fin, t.bareme_id)
           IS NOT DISTINCT FROM (d.libelle, d.code_garantie, d.priorite, d.reseau, d.fin,
                                 d.bareme_id) AS pareil
      FROM d LEFT JOIN LATERAL (
           SELECT id, libelle, code_garantie, priorite, reseau, fin, bareme_id
             FROM identite.garantie t
            WHERE t.beneficiaire_id = d.beneficiaire_id AND t.contrat_id = d.contrat_id
              AND t.domaine = d.domaine AND t.debut = d.debut OFFSET 0) t ON true),
ins AS (
    INSERT INTO identite.garantie (beneficiaire_id, contrat_id, domaine, libelle,
           code_garantie, priorite, reseau, debut, fin, bareme_id)
    SELECT beneficiaire_id, contrat_id, domaine, libelle, code_garantie, priorite, reseau,
           debut, fin, bareme_id
      FROM x WHERE id IS NULL ORDER BY beneficiaire_id, contrat_id, domaine, debut
    RETURNING 1),
upd AS (
    UPDATE identite.garantie t SET libelle = x.libelle, code_garantie = x.code_garantie,
           priorite = x.priorite, reseau = x.reseau, fin = x.fin, bareme_id = x.bareme_id
      FROM x WHERE t.id = x.id AND NOT x.pareil
    RETURNING 1)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)";

/// The SHA-256 of a rule set's canonical form, as `identite.vd_empreinte` computes it: per rule,
/// in code order, the code in hexadecimal, the unit, the value and the ceiling (empty for none),
/// joined by ':', the rules by ';'.
pub(crate) fn rule_set_key(rules: &[Rule]) -> [u8; 32] {
    let mut h = Sha256::new();
    for (i, r) in rules.iter().enumerate() {
        if i > 0 {
            h.update(b";");
        }
        h.update(hex::encode(r.code.as_bytes()).as_bytes());
        h.update(b":");
        h.update(r.unit.as_str().as_bytes());
        h.update(b":");
        h.update(r.value.get().to_string().as_bytes());
        h.update(b":");
        if let Some(c) = r.annual_ceiling {
            h.update(c.get().to_string().as_bytes());
        }
    }
    h.finalize().into()
}

/// A chunk of valid lines ready to merge: the staging rows in COPY's text format, and the AMCs and
/// rule sets it names that earlier chunks did not.
pub(crate) struct Chunk {
    rows: Vec<u8>,
    lines: usize,
    amcs: Vec<(String, String)>,
    sets: Vec<([u8; 32], Vec<Rule>)>,
    /// Whether a line names insured persons.
    insured: bool,
}

/// Turns valid lines into chunks; runs apart from the database work, so the next chunk is
/// prepared while the last one merges.
pub(crate) struct Stager {
    chunk: Chunk,
    /// The name last staged for each AMC, and the rule sets staged so far.
    amcs: HashMap<String, String>,
    sets: HashSet<[u8; 32]>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            rows: Vec::with_capacity(CHUNK * 200),
            lines: 0,
            amcs: Vec::new(),
            sets: Vec::new(),
            insured: false,
        }
    }
}

impl Stager {
    pub(crate) fn new() -> Stager {
        Stager {
            chunk: Chunk::new(),
            amcs: HashMap::new(),
            sets: HashSet::new(),
        }
    }

    /// Stages line `number`; returns the chunk once it is full.
    pub(crate) fn add(&mut self, number: u64, l: RightsLine) -> Option<Chunk> {
        // A later line's name wins, as for every other field, in this chunk or a later one.
        if self.amcs.get(l.amc.as_str()) != Some(&l.amc_name) {
            self.amcs
                .insert(l.amc.as_str().to_string(), l.amc_name.clone());
            self.chunk
                .amcs
                .push((l.amc.as_str().to_string(), l.amc_name.clone()));
        }
        let key = rule_set_key(&l.rules);
        self.chunk.insured |= !l.insured.is_empty();
        stage(&mut self.chunk.rows, number, &l, &key);
        if self.sets.insert(key) {
            self.chunk.sets.push((key, l.rules));
        }
        self.chunk.lines += 1;
        (self.chunk.lines >= CHUNK).then(|| std::mem::replace(&mut self.chunk, Chunk::new()))
    }

    /// What is left staged, if anything.
    pub(crate) fn finish(self) -> Option<Chunk> {
        (self.chunk.lines > 0).then_some(self.chunk)
    }
}

/// An import under way: its transaction and what it wrote so far.
pub(crate) struct Import {
    tx: Transaction<'static, Postgres>,
    full: bool,
    /// Every AMC the file names.
    amcs: HashSet<String>,
    /// Whether the table may hold insured persons.
    insured_in_table: bool,
    merged: Merged,
}

impl Import {
    /// Opens the import's transaction and its staging tables.
    pub(crate) async fn begin(pool: &PgPool, full: bool) -> sqlx::Result<Import> {
        let mut tx = pool.begin().await?;
        // One import at a time: a second one waits for the first to commit (two at once would
        // wait on each other's new rule sets, and each would miss the other's insured persons).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('visiodroits import'))")
            .execute(&mut *tx)
            .await?;
        // A chunk's sorts in memory.
        sqlx::query("SET LOCAL work_mem = '64MB'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(CREATE_STAGING).execute(&mut *tx).await?;
        for q in CREATE_IDS.into_iter().chain(INDEX_PLANS) {
            sqlx::query(q).execute(&mut *tx).await?;
        }
        if full {
            sqlx::query(CREATE_KEYS).execute(&mut *tx).await?;
        }
        let insured_in_table: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM identite.ouvrant_droit)")
                .fetch_one(&mut *tx)
                .await?;
        Ok(Import {
            tx,
            full,
            amcs: HashSet::new(),
            insured_in_table,
            merged: Merged::default(),
        })
    }

    /// Merges a chunk into `identite`.
    pub(crate) async fn merge(&mut self, chunk: Chunk) -> sqlx::Result<()> {
        let tx = &mut *self.tx;
        if !chunk.amcs.is_empty() {
            let (numbers, names): (Vec<String>, Vec<String>) = chunk.amcs.into_iter().unzip();
            sqlx::query(MERGE_AMCS)
                .bind(&numbers)
                .bind(&names)
                .execute(&mut *tx)
                .await?;
            sqlx::query(OPEN_SERVICES)
                .bind(&numbers)
                .execute(&mut *tx)
                .await?;
            self.amcs.extend(numbers);
        }
        if !chunk.sets.is_empty() {
            merge_sets(tx, &chunk.sets).await?;
        }
        let mut copy = tx.copy_in_raw(COPY_STAGING).await?;
        copy.send(chunk.rows.as_slice()).await?;
        copy.finish().await?;

        let (added, changed, named): (i64, i64, i64) = sqlx::query_as(MERGE_BENEFICIARIES)
            .fetch_one(&mut *tx)
            .await?;
        self.merged.beneficiaries_added += added as u64;
        self.merged.beneficiaries_updated += changed as u64;
        // Beneficiaries new in this chunk have no insured persons to remove.
        if self.insured_in_table && added < named {
            sqlx::query(DROP_INSURED).execute(&mut *tx).await?;
        }
        if chunk.insured {
            sqlx::query(ADD_INSURED).execute(&mut *tx).await?;
            self.insured_in_table = true;
        }
        sqlx::query(MERGE_CONTRACTS).execute(&mut *tx).await?;
        let (added, changed): (i64, i64) =
            sqlx::query_as(MERGE_GUARANTEES).fetch_one(&mut *tx).await?;
        self.merged.guarantees_added += added as u64;
        self.merged.guarantees_updated += changed as u64;
        if self.full {
            sqlx::query(KEEP_KEYS).execute(&mut *tx).await?;
        }
        sqlx::query(CLEAR_CHUNK).execute(&mut *tx).await?;
        Ok(())
    }

    /// Ends (`full`) what the file no longer holds, and commits.
    pub(crate) async fn commit(mut self) -> sqlx::Result<Merged> {
        if self.full {
            for q in WHOLE_TABLE_PLANS {
                sqlx::query(q).execute(&mut *self.tx).await?;
            }
            let amcs: Vec<String> = self.amcs.into_iter().collect();
            self.merged.guarantees_ended = end_absent(&mut self.tx, &amcs).await?;
        }
        self.tx.commit().await?;
        Ok(self.merged)
    }
}

/// Writes the rule sets not in the database yet (a set already there is left as it is: its key is
/// its content).
async fn merge_sets(tx: &mut PgConnection, sets: &[([u8; 32], Vec<Rule>)]) -> sqlx::Result<()> {
    let (mut e, mut c, mut u, mut v, mut p) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, rules) in sets {
        if rules.is_empty() {
            e.push(key.to_vec());
            c.push(None);
            u.push(None);
            v.push(None);
            p.push(None);
        }
        for r in rules {
            e.push(key.to_vec());
            c.push(Some(r.code.as_str()));
            u.push(Some(r.unit.as_str()));
            v.push(Some(r.value.get()));
            p.push(r.annual_ceiling.map(|x| x.get()));
        }
    }
    sqlx::query(MERGE_SETS)
        .bind(&e)
        .bind(&c)
        .bind(&u)
        .bind(&v)
        .bind(&p)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// One staging row in COPY's text format.
fn stage(out: &mut Vec<u8>, number: u64, l: &RightsLine, key: &[u8; 32]) {
    use std::io::Write;
    let _ = write!(out, "{number}");
    field(out, Some(l.amc.as_str()));
    field(out, Some(&l.reference));
    field(out, l.nir.as_ref().map(Nir::as_str));
    field(out, l.nir.as_ref().map(Nir::key).as_deref());
    field(out, Some(l.birth.as_str()));
    let _ = write!(out, "\t{}", l.rank.get());
    field(out, Some(&l.last_name));
    field(out, Some(&l.first_name));
    for i in 0..2 {
        let n = l.insured.get(i);
        field(out, n.map(Nir::as_str));
        field(out, n.map(Nir::key).as_deref());
    }
    field(out, Some(&l.contract));
    field(out, l.adherent.as_deref());
    out.extend_from_slice(if l.responsible { b"\tt" } else { b"\tf" });
    field(out, Some(l.domain.as_str()));
    field(out, Some(&l.label));
    field(out, Some(&l.guarantee));
    let _ = write!(out, "\t{}", l.priority);
    field(out, l.network.as_deref());
    let _ = write!(out, "\t{}\t{}\t\\\\x", l.start, l.end);
    out.extend_from_slice(hex::encode(key).as_bytes());
    out.push(b'\n');
}

/// A tab and a text field of COPY's text format (`\N` for NULL; backslash, tab, newline and
/// carriage return escaped).
fn field(out: &mut Vec<u8>, value: Option<&str>) {
    out.push(b'\t');
    let Some(s) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// `--full`: the current guarantees of the file's AMCs (`amcs`) whose key (beneficiary, contract,
/// domain, start) the file does not hold end yesterday, and those that had not begun are removed.
/// Dossiers already issued keep their own copy of the rules.
async fn end_absent(tx: &mut PgConnection, amcs: &[String]) -> sqlx::Result<u64> {
    sqlx::query(
        "CREATE TEMP TABLE vd_import_absente ON COMMIT DROP AS
         SELECT g.id, g.debut
           FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
           JOIN identite.contrat c ON c.id = g.contrat_id
          WHERE b.numero_amc = ANY ($1)
            AND g.fin >= current_date
            AND NOT EXISTS (
                SELECT 1 FROM vd_import_cle k
                 WHERE k.numero_amc = b.numero_amc AND k.ref_externe = b.ref_externe
                   AND k.numero_contrat = c.numero_contrat AND k.domaine = g.domaine
                   AND k.debut = g.debut)",
    )
    .bind(amcs)
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query(
        "DELETE FROM identite.garantie g USING vd_import_absente a
          WHERE g.id = a.id AND a.debut >= current_date",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let ended = sqlx::query(
        "UPDATE identite.garantie g SET fin = current_date - 1 FROM vd_import_absente a
          WHERE g.id = a.id AND a.debut < current_date",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(removed + ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_what_the_text_format_reads_as_separators() {
        let mut out = Vec::new();
        field(&mut out, Some("a\\b\tc\nd\re"));
        field(&mut out, None);
        assert_eq!(out, b"\ta\\\\b\\tc\\nd\\re\t\\N");
    }
}
