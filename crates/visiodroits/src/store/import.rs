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

// Each merge leaves out first the rows the database already holds as the file has them: ON
// CONFLICT would lock them (a write) even where its WHERE then leaves them unchanged.

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

const COPY_STAGING: &str = "COPY vd_import_ligne FROM STDIN (FORMAT text)";

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

/// Also counts the chunk's beneficiaries (the last line of each).
const MERGE_BENEFICIARIES: &str = "WITH d AS (
    SELECT DISTINCT ON (numero_amc, ref_externe)
           numero_amc, ref_externe, nir, cle_nir, date_naissance, rang, nom, prenom
      FROM vd_import_ligne ORDER BY numero_amc, ref_externe, n DESC),
w AS (
    INSERT INTO identite.beneficiaire AS t
           (numero_amc, ref_externe, nir, cle_nir, date_naissance, rang, nom, prenom)
    SELECT * FROM d
     WHERE NOT EXISTS (
           SELECT 1 FROM identite.beneficiaire t
            WHERE t.numero_amc = d.numero_amc AND t.ref_externe = d.ref_externe
              AND (t.nir, t.cle_nir, t.date_naissance, t.rang, t.nom, t.prenom)
                  IS NOT DISTINCT FROM (d.nir, d.cle_nir, d.date_naissance, d.rang, d.nom, d.prenom))
     ORDER BY numero_amc, ref_externe
    ON CONFLICT (numero_amc, ref_externe) DO UPDATE SET nir = EXCLUDED.nir,
           cle_nir = EXCLUDED.cle_nir, date_naissance = EXCLUDED.date_naissance,
           rang = EXCLUDED.rang, nom = EXCLUDED.nom, prenom = EXCLUDED.prenom
     WHERE (t.nir, t.cle_nir, t.date_naissance, t.rang, t.nom, t.prenom)
           IS DISTINCT FROM (EXCLUDED.nir, EXCLUDED.cle_nir, EXCLUDED.date_naissance,
                             EXCLUDED.rang, EXCLUDED.nom, EXCLUDED.prenom)
    RETURNING xmax = 0 AS ajout)
SELECT count(*) FILTER (WHERE ajout), count(*) FILTER (WHERE NOT ajout), (SELECT count(*) FROM d)
  FROM w";

/// The insured persons of the chunk's beneficiaries, as their last line has them: the positions
/// that differ (or that the line leaves empty) are removed, then the missing ones written.
macro_rules! last_insured {
    () => {
        "WITH d AS (
    SELECT DISTINCT ON (numero_amc, ref_externe) numero_amc, ref_externe, nir_1, cle_1, nir_2, cle_2
      FROM vd_import_ligne ORDER BY numero_amc, ref_externe, n DESC)"
    };
}

const DROP_INSURED: &str = concat!(
    last_insured!(),
    "
DELETE FROM identite.ouvrant_droit o
 USING d JOIN identite.beneficiaire b
           ON b.numero_amc = d.numero_amc AND b.ref_externe = d.ref_externe
 WHERE o.beneficiaire_id = b.id
   AND (o.nir, o.cle_nir) IS DISTINCT FROM
       (CASE o.position WHEN 1 THEN d.nir_1 ELSE d.nir_2 END,
        CASE o.position WHEN 1 THEN d.cle_1 ELSE d.cle_2 END)"
);

const ADD_INSURED: &str = concat!(
    last_insured!(),
    ",
x AS (
    SELECT b.id, d.nir_1, d.cle_1, d.nir_2, d.cle_2 FROM d
      JOIN identite.beneficiaire b ON b.numero_amc = d.numero_amc AND b.ref_externe = d.ref_externe
     WHERE d.nir_1 IS NOT NULL OR d.nir_2 IS NOT NULL)
INSERT INTO identite.ouvrant_droit (beneficiaire_id, position, nir, cle_nir)
SELECT id, 1, nir_1, cle_1 FROM x WHERE nir_1 IS NOT NULL
UNION ALL
SELECT id, 2, nir_2, cle_2 FROM x WHERE nir_2 IS NOT NULL
ORDER BY 1, 2
ON CONFLICT (beneficiaire_id, position) DO NOTHING"
);

const MERGE_CONTRACTS: &str = "INSERT INTO identite.contrat AS t
       (numero_amc, numero_contrat, numero_adherent, responsable)
    SELECT * FROM (
        SELECT DISTINCT ON (numero_amc, numero_contrat)
               numero_amc, numero_contrat, numero_adherent, responsable
          FROM vd_import_ligne ORDER BY numero_amc, numero_contrat, n DESC) d
     WHERE NOT EXISTS (
           SELECT 1 FROM identite.contrat t
            WHERE t.numero_amc = d.numero_amc AND t.numero_contrat = d.numero_contrat
              AND (t.numero_adherent, t.responsable)
                  IS NOT DISTINCT FROM (d.numero_adherent, d.responsable))
     ORDER BY numero_amc, numero_contrat
    ON CONFLICT (numero_amc, numero_contrat) DO UPDATE
       SET numero_adherent = EXCLUDED.numero_adherent, responsable = EXCLUDED.responsable
     WHERE (t.numero_adherent, t.responsable)
           IS DISTINCT FROM (EXCLUDED.numero_adherent, EXCLUDED.responsable)";

const MERGE_GUARANTEES: &str = "WITH w AS (
    INSERT INTO identite.garantie AS t (beneficiaire_id, contrat_id, domaine, libelle,
           code_garantie, priorite, reseau, debut, fin, bareme_id)
    SELECT * FROM (
        SELECT DISTINCT ON (b.id, c.id, s.domaine, s.debut)
               b.id AS beneficiaire_id, c.id AS contrat_id, s.domaine, s.libelle,
               s.code_garantie, s.priorite, s.reseau, s.debut, s.fin, r.id AS bareme_id
          FROM vd_import_ligne s
          JOIN identite.beneficiaire b
            ON b.numero_amc = s.numero_amc AND b.ref_externe = s.ref_externe
          JOIN identite.contrat c
            ON c.numero_amc = s.numero_amc AND c.numero_contrat = s.numero_contrat
          JOIN identite.bareme r ON r.empreinte = s.empreinte
         ORDER BY b.id, c.id, s.domaine, s.debut, s.n DESC) d
     WHERE NOT EXISTS (
           SELECT 1 FROM identite.garantie t
            WHERE t.beneficiaire_id = d.beneficiaire_id AND t.contrat_id = d.contrat_id
              AND t.domaine = d.domaine AND t.debut = d.debut
              AND (t.libelle, t.code_garantie, t.priorite, t.reseau, t.fin, t.bareme_id)
                  IS NOT DISTINCT FROM (d.libelle, d.code_garantie, d.priorite, d.reseau, d.fin,
                                        d.bareme_id))
     ORDER BY beneficiaire_id, contrat_id, domaine, debut
    ON CONFLICT (beneficiaire_id, contrat_id, domaine, debut) DO UPDATE SET
           libelle = EXCLUDED.libelle, code_garantie = EXCLUDED.code_garantie,
           priorite = EXCLUDED.priorite, reseau = EXCLUDED.reseau, fin = EXCLUDED.fin,
           bareme_id = EXCLUDED.bareme_id
     WHERE (t.libelle, t.code_garantie, t.priorite, t.reseau, t.fin, t.bareme_id)
           IS DISTINCT FROM (EXCLUDED.libelle, EXCLUDED.code_garantie, EXCLUDED.priorite,
                             EXCLUDED.reseau, EXCLUDED.fin, EXCLUDED.bareme_id)
    RETURNING xmax = 0 AS ajout)
SELECT count(*) FILTER (WHERE ajout), count(*) FILTER (WHERE NOT ajout) FROM w";

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

/// An import under way: its transaction, the staged chunk, and what it wrote so far.
pub(crate) struct Import {
    tx: Transaction<'static, Postgres>,
    full: bool,
    /// The staged chunk, in COPY's text format, and its line count.
    buffer: Vec<u8>,
    staged: usize,
    /// AMCs (with the name last staged) and rule sets written by this import, and those
    /// waiting for the next merge.
    amcs: HashMap<String, String>,
    new_amcs: HashMap<String, String>,
    sets: HashSet<[u8; 32]>,
    new_sets: Vec<([u8; 32], Vec<Rule>)>,
    /// Whether the chunk names insured persons, and whether the table may hold some.
    insured_in_chunk: bool,
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
            buffer: Vec::with_capacity(CHUNK * 200),
            staged: 0,
            amcs: HashMap::new(),
            new_amcs: HashMap::new(),
            sets: HashSet::new(),
            new_sets: Vec::new(),
            insured_in_chunk: false,
            insured_in_table,
            merged: Merged::default(),
        })
    }

    /// Stages line `number`; a full chunk is merged.
    pub(crate) async fn add(&mut self, number: u64, l: RightsLine) -> sqlx::Result<()> {
        // A later line's name wins, as for every other field, in this chunk or a later one.
        if self.amcs.get(l.amc.as_str()) != Some(&l.amc_name) {
            self.amcs
                .insert(l.amc.as_str().to_string(), l.amc_name.clone());
            self.new_amcs
                .insert(l.amc.as_str().to_string(), l.amc_name.clone());
        }
        let key = rule_set_key(&l.rules);
        self.insured_in_chunk |= !l.insured.is_empty();
        stage(&mut self.buffer, number, &l, &key);
        if self.sets.insert(key) {
            self.new_sets.push((key, l.rules));
        }
        self.staged += 1;
        if self.staged >= CHUNK {
            self.merge().await?;
        }
        Ok(())
    }

    /// Merges the staged chunk into `identite`.
    async fn merge(&mut self) -> sqlx::Result<()> {
        if self.staged == 0 {
            return Ok(());
        }
        let tx = &mut *self.tx;
        if !self.new_amcs.is_empty() {
            let (numbers, names): (Vec<String>, Vec<String>) = self.new_amcs.drain().unzip();
            sqlx::query(MERGE_AMCS)
                .bind(&numbers)
                .bind(&names)
                .execute(&mut *tx)
                .await?;
            sqlx::query(OPEN_SERVICES)
                .bind(&numbers)
                .execute(&mut *tx)
                .await?;
        }
        if !self.new_sets.is_empty() {
            merge_sets(tx, &std::mem::take(&mut self.new_sets)).await?;
        }
        let mut copy = tx.copy_in_raw(COPY_STAGING).await?;
        copy.send(self.buffer.as_slice()).await?;
        copy.finish().await?;
        self.buffer.clear();
        self.staged = 0;

        let (added, changed, named): (i64, i64, i64) = sqlx::query_as(MERGE_BENEFICIARIES)
            .fetch_one(&mut *tx)
            .await?;
        self.merged.beneficiaries_added += added as u64;
        self.merged.beneficiaries_updated += changed as u64;
        // Beneficiaries new in this chunk have no insured persons to remove.
        if self.insured_in_table && added < named {
            sqlx::query(DROP_INSURED).execute(&mut *tx).await?;
        }
        if self.insured_in_chunk {
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
        sqlx::query("TRUNCATE vd_import_ligne")
            .execute(&mut *tx)
            .await?;
        self.insured_in_chunk = false;
        Ok(())
    }

    /// Merges what is staged, ends (`full`) what the file no longer holds, and commits.
    pub(crate) async fn commit(mut self) -> sqlx::Result<Merged> {
        self.merge().await?;
        if self.full {
            let amcs: Vec<String> = self.amcs.keys().cloned().collect();
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
