//! Bulk load of rights lines (`import`): the valid lines are streamed by `COPY` into a staging
//! table of the import's transaction, then merged by a fixed number of set-based statements,
//! whatever the file's size. Rows that do not change are not written again (a nightly file that
//! changed little costs little), and later lines win over earlier ones for the same
//! beneficiary, contract or guarantee. One transaction: exchanges see the portfolio before or
//! after the import, never a beneficiary half updated.

use std::fmt::Write as _;

use chrono::NaiveDate;
use sqlx::PgConnection;

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

/// The staging table, dropped with the import's transaction.
pub(crate) const CREATE_STAGING: &str = "CREATE TEMP TABLE vd_import (
    n bigint NOT NULL, amc text NOT NULL, amc_name text NOT NULL, ref text NOT NULL, nir text,
    cle text, naissance text NOT NULL, rang smallint NOT NULL, nom text NOT NULL,
    prenom text NOT NULL, insured_nir text[] NOT NULL, insured_cle text[] NOT NULL,
    contrat text NOT NULL, adherent text, responsable boolean NOT NULL, domaine text NOT NULL,
    libelle text NOT NULL, code_garantie text NOT NULL, priorite smallint NOT NULL, reseau text,
    debut date NOT NULL, fin date NOT NULL, r_code text[] NOT NULL, r_unite text[] NOT NULL,
    r_valeur bigint[] NOT NULL, r_plafond bigint[] NOT NULL
) ON COMMIT DROP";

/// The `COPY` that fills it (text format: tab-separated, `\\N` for NULL).
pub(crate) const COPY_STAGING: &str = "COPY vd_import FROM STDIN";

/// Appends line `n` as one row of [`COPY_STAGING`]'s text format.
pub(crate) fn encode(n: u64, l: &RightsLine, out: &mut Vec<u8>) {
    fn text(out: &mut Vec<u8>, v: &str) {
        for b in v.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
    }
    fn opt(out: &mut Vec<u8>, v: Option<&str>) {
        match v {
            Some(v) => text(out, v),
            None => out.extend_from_slice(b"\\N"),
        }
    }
    /// An array literal of quoted text elements (`"` and `\\` escaped), then COPY-escaped.
    fn array<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = Option<&'a str>>) {
        let mut lit = String::from("{");
        for (i, item) in items.enumerate() {
            if i > 0 {
                lit.push(',');
            }
            match item {
                None => lit.push_str("NULL"),
                Some(v) => {
                    lit.push('"');
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            lit.push('\\');
                        }
                        lit.push(c);
                    }
                    lit.push('"');
                }
            }
        }
        lit.push('}');
        text(out, &lit);
    }
    let tab = |out: &mut Vec<u8>| out.push(b'\t');
    let _ = write!(Buf(out), "{n}");
    tab(out);
    text(out, l.amc.as_str());
    tab(out);
    text(out, &l.amc_name);
    tab(out);
    text(out, &l.reference);
    tab(out);
    opt(out, l.nir.as_ref().map(|n| n.as_str()));
    tab(out);
    opt(out, l.nir.as_ref().map(|n| n.key()).as_deref());
    tab(out);
    text(out, l.birth.as_str());
    tab(out);
    let _ = write!(Buf(out), "{}", l.rank.get());
    tab(out);
    text(out, &l.last_name);
    tab(out);
    text(out, &l.first_name);
    tab(out);
    array(out, l.insured.iter().map(|n| Some(n.as_str())));
    tab(out);
    let keys: Vec<String> = l.insured.iter().map(|n| n.key()).collect();
    array(out, keys.iter().map(|k| Some(k.as_str())));
    tab(out);
    text(out, &l.contract);
    tab(out);
    opt(out, l.adherent.as_deref());
    tab(out);
    out.push(if l.responsible { b't' } else { b'f' });
    tab(out);
    text(out, l.domain.as_str());
    tab(out);
    text(out, &l.label);
    tab(out);
    text(out, &l.guarantee);
    tab(out);
    let _ = write!(Buf(out), "{}", l.priority);
    tab(out);
    opt(out, l.network.as_deref());
    tab(out);
    let _ = write!(Buf(out), "{}\t{}", l.start, l.end);
    tab(out);
    array(out, l.rules.iter().map(|r| Some(r.code.as_str())));
    tab(out);
    array(out, l.rules.iter().map(|r| Some(r.unit.as_str())));
    tab(out);
    let values: Vec<String> = l.rules.iter().map(|r| r.value.get().to_string()).collect();
    array(out, values.iter().map(|v| Some(v.as_str())));
    tab(out);
    let ceilings: Vec<Option<String>> = l
        .rules
        .iter()
        .map(|r| r.annual_ceiling.map(|c| c.get().to_string()))
        .collect();
    array(out, ceilings.iter().map(|c| c.as_deref()));
    out.push(b'\n');
}

/// `write!` into the byte buffer.
struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// What a merge changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    pub beneficiaries_added: u64,
    pub beneficiaries_changed: u64,
    pub guarantees_added: u64,
    pub guarantees_changed: u64,
    /// Guarantees the file no longer holds (`--full`), ended the day before or removed when they
    /// had not begun.
    pub guarantees_ended: u64,
}

async fn counts(tx: &mut PgConnection, sql: &str) -> sqlx::Result<(u64, u64)> {
    let (a, c): (i64, i64) = sqlx::query_as(sql).fetch_one(&mut *tx).await?;
    Ok((a as u64, c as u64))
}

/// Merges the staging table into `identite`, in the caller's transaction. With `full`, the
/// guarantees of the file's AMCs that the file does not hold are ended (or removed when they
/// begin later): the database then equals the file for those AMCs. Dossiers already issued keep
/// their own copy of the rules.
pub(crate) async fn merge(tx: &mut PgConnection, full: bool) -> sqlx::Result<Merged> {
    let mut m = Merged::default();
    sqlx::query("ANALYZE vd_import").execute(&mut *tx).await?;
    // AMCs (a new AMC opens every service; operators close them as needed).
    sqlx::query(
        "INSERT INTO identite.amc AS a (numero_amc, nom)
         SELECT DISTINCT ON (amc) amc, amc_name FROM vd_import ORDER BY amc, n DESC
         ON CONFLICT (numero_amc) DO UPDATE SET nom = EXCLUDED.nom, updated_at = now()
           WHERE a.nom IS DISTINCT FROM EXCLUDED.nom",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO identite.amc_service (numero_amc, service, actif)
         SELECT n, s, true FROM (SELECT DISTINCT amc FROM vd_import) a(n)
           CROSS JOIN UNNEST(ARRAY['DROITS', 'TARIFICATION', 'TARIFICATION_CHIFFREE',
                                 'ANNULATION', 'CONSULTATION']) s
         ON CONFLICT DO NOTHING",
    )
    .execute(&mut *tx)
    .await?;

    // Beneficiaries, by (AMC, reference): the last line of each.
    (m.beneficiaries_added, m.beneficiaries_changed) = counts(
        tx,
        "WITH up AS (
           INSERT INTO identite.beneficiaire AS b
                  (numero_amc, ref_externe, nir, cle_nir, date_naissance, rang, nom, prenom)
           SELECT DISTINCT ON (amc, ref) amc, ref, nir, cle, naissance, rang, nom, prenom
             FROM vd_import ORDER BY amc, ref, n DESC
           ON CONFLICT (numero_amc, ref_externe) DO UPDATE SET nir = EXCLUDED.nir,
               cle_nir = EXCLUDED.cle_nir, date_naissance = EXCLUDED.date_naissance,
               rang = EXCLUDED.rang, nom = EXCLUDED.nom, prenom = EXCLUDED.prenom
             WHERE (b.nir, b.cle_nir, b.date_naissance, b.rang, b.nom, b.prenom)
                   IS DISTINCT FROM (EXCLUDED.nir, EXCLUDED.cle_nir, EXCLUDED.date_naissance,
                                     EXCLUDED.rang, EXCLUDED.nom, EXCLUDED.prenom)
           RETURNING xmax = 0 AS added)
         SELECT count(*) FILTER (WHERE added), count(*) FILTER (WHERE NOT added) FROM up",
    )
    .await?;

    // Insured persons (ouvrant droit): each beneficiary's, as its last line gives them.
    sqlx::query(
        "CREATE TEMP TABLE vd_import_benef ON COMMIT DROP AS
         SELECT b.id, s.insured_nir, s.insured_cle
           FROM (SELECT DISTINCT ON (amc, ref) amc, ref, insured_nir, insured_cle
                   FROM vd_import ORDER BY amc, ref, n DESC) s
           JOIN identite.beneficiaire b ON b.numero_amc = s.amc AND b.ref_externe = s.ref",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO identite.ouvrant_droit AS o (beneficiaire_id, position, nir, cle_nir)
         SELECT w.id, u.pos::smallint, u.nir, u.cle
           FROM vd_import_benef w,
                unnest(w.insured_nir, w.insured_cle) WITH ORDINALITY AS u(nir, cle, pos)
         ON CONFLICT (beneficiaire_id, position) DO UPDATE SET nir = EXCLUDED.nir,
             cle_nir = EXCLUDED.cle_nir
           WHERE (o.nir, o.cle_nir) IS DISTINCT FROM (EXCLUDED.nir, EXCLUDED.cle_nir)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM identite.ouvrant_droit o USING vd_import_benef w
          WHERE o.beneficiaire_id = w.id AND o.position > cardinality(w.insured_nir)",
    )
    .execute(&mut *tx)
    .await?;

    // Contracts, by (AMC, number).
    sqlx::query(
        "INSERT INTO identite.contrat AS c (numero_amc, numero_contrat, numero_adherent, responsable)
         SELECT DISTINCT ON (amc, contrat) amc, contrat, adherent, responsable
           FROM vd_import ORDER BY amc, contrat, n DESC
         ON CONFLICT (numero_amc, numero_contrat) DO UPDATE SET
             numero_adherent = EXCLUDED.numero_adherent, responsable = EXCLUDED.responsable
           WHERE (c.numero_adherent, c.responsable)
                 IS DISTINCT FROM (EXCLUDED.numero_adherent, EXCLUDED.responsable)",
    )
    .execute(&mut *tx)
    .await?;

    // Guarantees, by (beneficiary, contract, domain, start).
    sqlx::query(
        "CREATE TEMP TABLE vd_import_garantie ON COMMIT DROP AS
         SELECT b.id AS beneficiaire_id, c.id AS contrat_id, s.domaine, s.debut, s.libelle,
                s.code_garantie, s.priorite, s.reseau, s.fin, s.r_code, s.r_unite, s.r_valeur,
                s.r_plafond
           FROM (SELECT DISTINCT ON (amc, ref, contrat, domaine, debut) *
                   FROM vd_import ORDER BY amc, ref, contrat, domaine, debut, n DESC) s
           JOIN identite.beneficiaire b ON b.numero_amc = s.amc AND b.ref_externe = s.ref
           JOIN identite.contrat c ON c.numero_amc = s.amc AND c.numero_contrat = s.contrat",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("ANALYZE vd_import_garantie")
        .execute(&mut *tx)
        .await?;
    (m.guarantees_added, m.guarantees_changed) = counts(
        tx,
        "WITH up AS (
           INSERT INTO identite.garantie AS g (beneficiaire_id, contrat_id, domaine, libelle,
                  code_garantie, priorite, reseau, debut, fin)
           SELECT beneficiaire_id, contrat_id, domaine, libelle, code_garantie, priorite, reseau,
                  debut, fin
             FROM vd_import_garantie
           ON CONFLICT (beneficiaire_id, contrat_id, domaine, debut) DO UPDATE SET
               libelle = EXCLUDED.libelle, code_garantie = EXCLUDED.code_garantie,
               priorite = EXCLUDED.priorite, reseau = EXCLUDED.reseau, fin = EXCLUDED.fin
             WHERE (g.libelle, g.code_garantie, g.priorite, g.reseau, g.fin)
                   IS DISTINCT FROM (EXCLUDED.libelle, EXCLUDED.code_garantie, EXCLUDED.priorite,
                                     EXCLUDED.reseau, EXCLUDED.fin)
           RETURNING xmax = 0 AS added)
         SELECT count(*) FILTER (WHERE added), count(*) FILTER (WHERE NOT added) FROM up",
    )
    .await?;

    // Rules: each guarantee's, as its last line gives them.
    sqlx::query(
        "CREATE TEMP TABLE vd_import_regle ON COMMIT DROP AS
         SELECT g.id AS garantie_id, w.r_code, w.r_unite, w.r_valeur, w.r_plafond
           FROM vd_import_garantie w
           JOIN identite.garantie g USING (beneficiaire_id, contrat_id, domaine, debut)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO identite.prestation AS p (garantie_id, code, unite, valeur, plafond_annuel)
         SELECT r.garantie_id, u.code, u.unite, u.valeur, u.plafond
           FROM vd_import_regle r,
                unnest(r.r_code, r.r_unite, r.r_valeur, r.r_plafond) AS u(code, unite, valeur, plafond)
         ON CONFLICT (garantie_id, code) DO UPDATE SET unite = EXCLUDED.unite,
             valeur = EXCLUDED.valeur, plafond_annuel = EXCLUDED.plafond_annuel
           WHERE (p.unite, p.valeur, p.plafond_annuel)
                 IS DISTINCT FROM (EXCLUDED.unite, EXCLUDED.valeur, EXCLUDED.plafond_annuel)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM identite.prestation p USING vd_import_regle r
          WHERE p.garantie_id = r.garantie_id AND NOT (p.code = ANY (r.r_code))",
    )
    .execute(&mut *tx)
    .await?;

    if full {
        m.guarantees_ended = end_absent(tx).await?;
    }
    Ok(m)
}

/// `--full`: the guarantees of the file's AMCs that the file does not hold end yesterday (those
/// already ended are left as they are), and those that had not begun are removed.
async fn end_absent(tx: &mut PgConnection) -> sqlx::Result<u64> {
    sqlx::query(
        "CREATE TEMP TABLE vd_import_absente ON COMMIT DROP AS
         SELECT g.id, g.debut, g.fin
           FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
          WHERE b.numero_amc IN (SELECT DISTINCT amc FROM vd_import)
            AND NOT EXISTS (SELECT 1 FROM vd_import_garantie w
                             WHERE w.beneficiaire_id = g.beneficiaire_id
                               AND w.contrat_id = g.contrat_id
                               AND w.domaine = g.domaine AND w.debut = g.debut)
            AND g.fin >= current_date",
    )
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
