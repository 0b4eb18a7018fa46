//! Set-based upserts of rights lines (`import`): a few statements per batch, whatever its size,
//! all the batches of a file in one transaction (exchanges see a beneficiary as it was before the
//! import or as the file has it, never half). With `--full`, the guarantees each batch wrote are
//! noted in a temporary table, and those of the file's AMCs that it did not write are ended.

use std::collections::HashMap;

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

/// What an import wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    pub beneficiaries_added: u64,
    /// Beneficiaries already there, written again with the file's values.
    pub beneficiaries_updated: u64,
    pub guarantees_added: u64,
    pub guarantees_updated: u64,
    /// Guarantees the file no longer holds (`--full`), ended yesterday or removed when they had
    /// not begun.
    pub guarantees_ended: u64,
}

/// The guarantees written by a `--full` import, dropped with its transaction.
pub(crate) const CREATE_SEEN: &str =
    "CREATE TEMP TABLE vd_import_vu (id bigint PRIMARY KEY, numero_amc text NOT NULL) ON COMMIT DROP";

/// Upserts a batch in the caller's transaction. Later lines win over earlier ones for the same
/// beneficiary, contract or guarantee; the insured NIRs and the rules of the lines' beneficiaries
/// and guarantees are replaced. With `seen`, the guarantees written are noted for `--full`.
pub(crate) async fn upsert_batch(
    tx: &mut PgConnection,
    lines: &[RightsLine],
    seen: bool,
    merged: &mut Merged,
) -> sqlx::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    // AMCs (a new AMC opens every service; operators close them as needed).
    let mut amcs: HashMap<&str, &str> = HashMap::new();
    for l in lines {
        amcs.insert(l.amc.as_str(), &l.amc_name);
    }
    let (numbers, names): (Vec<&str>, Vec<&str>) = amcs.into_iter().unzip();
    sqlx::query(
        "INSERT INTO identite.amc (numero_amc, nom)
         SELECT * FROM UNNEST($1::text[], $2::text[])
         ON CONFLICT (numero_amc) DO UPDATE SET nom = EXCLUDED.nom, updated_at = now()
           WHERE identite.amc.nom IS DISTINCT FROM EXCLUDED.nom",
    )
    .bind(&numbers)
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO identite.amc_service (numero_amc, service, actif)
         SELECT n, s, true FROM UNNEST($1::text[]) n
           CROSS JOIN UNNEST(ARRAY['DROITS', 'TARIFICATION', 'TARIFICATION_CHIFFREE',
                                 'ANNULATION', 'CONSULTATION']) s
         ON CONFLICT DO NOTHING",
    )
    .bind(&numbers)
    .execute(&mut *tx)
    .await?;

    // Beneficiaries, by (AMC, reference).
    let mut benef: HashMap<(&str, &str), &RightsLine> = HashMap::new();
    for l in lines {
        benef.insert((l.amc.as_str(), l.reference.as_str()), l);
    }
    let b: Vec<&RightsLine> = benef.values().copied().collect();
    let rows: Vec<(i64, String, String, bool)> = sqlx::query_as(
        "INSERT INTO identite.beneficiaire (numero_amc, ref_externe, nir, cle_nir, date_naissance, rang, nom, prenom)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[], $7::text[], $8::text[])
         ON CONFLICT (numero_amc, ref_externe) DO UPDATE SET nir = EXCLUDED.nir, cle_nir = EXCLUDED.cle_nir,
             date_naissance = EXCLUDED.date_naissance, rang = EXCLUDED.rang, nom = EXCLUDED.nom,
             prenom = EXCLUDED.prenom
         RETURNING id, numero_amc, ref_externe, xmax = 0",
    )
    .bind(b.iter().map(|l| l.amc.as_str()).collect::<Vec<_>>())
    .bind(b.iter().map(|l| l.reference.as_str()).collect::<Vec<_>>())
    .bind(b.iter().map(|l| l.nir.as_ref().map(|n| n.as_str().to_string())).collect::<Vec<_>>())
    .bind(b.iter().map(|l| l.nir.as_ref().map(|n| n.key())).collect::<Vec<_>>())
    .bind(b.iter().map(|l| l.birth.as_str()).collect::<Vec<_>>())
    .bind(b.iter().map(|l| i16::from(l.rank.get())).collect::<Vec<_>>())
    .bind(b.iter().map(|l| l.last_name.as_str()).collect::<Vec<_>>())
    .bind(b.iter().map(|l| l.first_name.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let added = rows.iter().filter(|r| r.3).count() as u64;
    merged.beneficiaries_added += added;
    merged.beneficiaries_updated += rows.len() as u64 - added;
    let benef_id: HashMap<(String, String), i64> =
        rows.into_iter().map(|(id, a, r, _)| ((a, r), id)).collect();
    let id_of = |l: &RightsLine| benef_id[&(l.amc.as_str().to_string(), l.reference.clone())];

    // Insured persons (ouvrant droit): replaced for the batch's beneficiaries.
    let ids: Vec<i64> = b.iter().map(|l| id_of(l)).collect();
    sqlx::query("DELETE FROM identite.ouvrant_droit WHERE beneficiaire_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let (mut ob, mut op, mut on, mut ok) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for l in &b {
        for (i, n) in l.insured.iter().enumerate() {
            ob.push(id_of(l));
            op.push(i as i16 + 1);
            on.push(n.as_str().to_string());
            ok.push(n.key());
        }
    }
    if !ob.is_empty() {
        sqlx::query(
            "INSERT INTO identite.ouvrant_droit (beneficiaire_id, position, nir, cle_nir)
             SELECT * FROM UNNEST($1::bigint[], $2::smallint[], $3::text[], $4::text[])",
        )
        .bind(&ob)
        .bind(&op)
        .bind(&on)
        .bind(&ok)
        .execute(&mut *tx)
        .await?;
    }

    // Contracts, by (AMC, number).
    let mut contracts: HashMap<(&str, &str), &RightsLine> = HashMap::new();
    for l in lines {
        contracts.insert((l.amc.as_str(), l.contract.as_str()), l);
    }
    let c: Vec<&RightsLine> = contracts.values().copied().collect();
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO identite.contrat (numero_amc, numero_contrat, numero_adherent, responsable)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[])
         ON CONFLICT (numero_amc, numero_contrat) DO UPDATE SET numero_adherent = EXCLUDED.numero_adherent,
             responsable = EXCLUDED.responsable
         RETURNING id, numero_amc, numero_contrat",
    )
    .bind(c.iter().map(|l| l.amc.as_str()).collect::<Vec<_>>())
    .bind(c.iter().map(|l| l.contract.as_str()).collect::<Vec<_>>())
    .bind(c.iter().map(|l| l.adherent.as_deref()).collect::<Vec<_>>())
    .bind(c.iter().map(|l| l.responsible).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let contract_id: HashMap<(String, String), i64> =
        rows.into_iter().map(|(id, a, n)| ((a, n), id)).collect();
    let cid_of = |l: &RightsLine| contract_id[&(l.amc.as_str().to_string(), l.contract.clone())];

    // Guarantees, by (beneficiary, contract, domain, start).
    let mut guarantees: HashMap<(i64, i64, &str, NaiveDate), &RightsLine> = HashMap::new();
    for l in lines {
        guarantees.insert((id_of(l), cid_of(l), l.domain.as_str(), l.start), l);
    }
    let keys: Vec<(i64, i64, &str, NaiveDate)> = guarantees.keys().copied().collect();
    let g: Vec<&RightsLine> = keys.iter().map(|k| guarantees[k]).collect();
    let rows: Vec<(i64, i64, i64, String, NaiveDate, bool)> = sqlx::query_as(
        "INSERT INTO identite.garantie (beneficiaire_id, contrat_id, domaine, libelle, code_garantie,
                                        priorite, reseau, debut, fin)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                              $6::smallint[], $7::text[], $8::date[], $9::date[])
         ON CONFLICT (beneficiaire_id, contrat_id, domaine, debut) DO UPDATE SET
             libelle = EXCLUDED.libelle, code_garantie = EXCLUDED.code_garantie,
             priorite = EXCLUDED.priorite, reseau = EXCLUDED.reseau, fin = EXCLUDED.fin
         RETURNING id, beneficiaire_id, contrat_id, domaine, debut, xmax = 0",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
    .bind(g.iter().map(|l| l.label.as_str()).collect::<Vec<_>>())
    .bind(g.iter().map(|l| l.guarantee.as_str()).collect::<Vec<_>>())
    .bind(g.iter().map(|l| l.priority).collect::<Vec<_>>())
    .bind(g.iter().map(|l| l.network.as_deref()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.3).collect::<Vec<_>>())
    .bind(g.iter().map(|l| l.end).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let added = rows.iter().filter(|r| r.5).count() as u64;
    merged.guarantees_added += added;
    merged.guarantees_updated += rows.len() as u64 - added;
    let guarantee_id: HashMap<(i64, i64, String, NaiveDate), i64> = rows
        .into_iter()
        .map(|(id, b, c, d, s, _)| ((b, c, d, s), id))
        .collect();
    if seen {
        let amc_of: Vec<&str> = g.iter().map(|l| l.amc.as_str()).collect();
        let ids: Vec<i64> = keys
            .iter()
            .map(|k| guarantee_id[&(k.0, k.1, k.2.to_string(), k.3)])
            .collect();
        sqlx::query(
            "INSERT INTO vd_import_vu (id, numero_amc)
             SELECT * FROM UNNEST($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&ids)
        .bind(&amc_of)
        .execute(&mut *tx)
        .await?;
    }

    // Rules: replaced for the batch's guarantees.
    let gids: Vec<i64> = guarantee_id.values().copied().collect();
    sqlx::query("DELETE FROM identite.prestation WHERE garantie_id = ANY($1)")
        .bind(&gids)
        .execute(&mut *tx)
        .await?;
    let (mut pg, mut pc, mut pu, mut pv, mut pp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, l) in keys.iter().zip(&g) {
        let gid = guarantee_id[&(k.0, k.1, k.2.to_string(), k.3)];
        for r in &l.rules {
            pg.push(gid);
            pc.push(r.code.as_str());
            pu.push(r.unit.as_str());
            pv.push(r.value.get());
            pp.push(r.annual_ceiling.map(|c| c.get()));
        }
    }
    if !pg.is_empty() {
        sqlx::query(
            "INSERT INTO identite.prestation (garantie_id, code, unite, valeur, plafond_annuel)
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])",
        )
        .bind(&pg)
        .bind(&pc)
        .bind(&pu)
        .bind(&pv)
        .bind(&pp)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// `--full`: the guarantees of the file's AMCs (`amcs`) that the import did not write end
/// yesterday (those already ended are left as they are), and those that had not begun are
/// removed. Dossiers already issued keep their own copy of the rules.
pub(crate) async fn end_absent(tx: &mut PgConnection, amcs: &[String]) -> sqlx::Result<u64> {
    sqlx::query(
        "CREATE TEMP TABLE vd_import_absente ON COMMIT DROP AS
         SELECT g.id, g.debut
           FROM identite.garantie g
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
          WHERE b.numero_amc = ANY ($1)
            AND g.fin >= current_date
            AND NOT EXISTS (SELECT 1 FROM vd_import_vu v WHERE v.id = g.id)",
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
