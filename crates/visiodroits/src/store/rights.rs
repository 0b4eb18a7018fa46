//! The rights exchange's SQL (role `vd_droits`): finding a beneficiary, reading the guarantees,
//! issuing a dossier.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::domain::{AmcNumber, BirthDate, BirthRank, Hundredths, Nir, StructureNumber};

pub use crate::domain::rights::Guarantee;
pub use crate::domain::rules::{Rule, Unit};

/// What the rights exchange needs to decide, read in one round trip: the AMC (number, name,
/// whether its rights service is open; `None` when unknown), the beneficiary (AMC, birth date,
/// rank, and a NIR that is the beneficiary's own or an insured person's) and that beneficiary's
/// guarantees (as [`guarantees`]).
pub(crate) struct Lookup {
    pub amc: Option<(String, String, bool)>,
    pub beneficiary: Option<i64>,
    pub guarantees: Vec<Guarantee>,
}

#[derive(sqlx::FromRow)]
struct LookupRow {
    numero_amc: String,
    nom_amc: String,
    droits_ouverts: bool,
    beneficiaire: Option<i64>,
    contrat_id: Option<i64>,
    numero_contrat: Option<String>,
    numero_adherent: Option<String>,
    responsable: Option<bool>,
    domaine: Option<String>,
    libelle: Option<String>,
    code_garantie: Option<String>,
    priorite: Option<i16>,
    reseau: Option<String>,
    debut: Option<NaiveDate>,
    fin: Option<NaiveDate>,
    codes: Option<Vec<String>>,
    unites: Option<Vec<String>>,
    valeurs: Option<Vec<i64>>,
    plafonds: Option<Vec<Option<i64>>>,
}

/// The statement of [`lookup_by_nir`].
pub(super) static LOOKUP_BY_NIR: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH a AS (
         SELECT a.numero_amc, a.nom,
                coalesce(bool_or(s.actif) FILTER (WHERE s.service = 'DROITS'), false) AS droits_ouverts
           FROM identite.amc a LEFT JOIN identite.amc_service s USING (numero_amc)
          WHERE a.numero_amc = $3
          GROUP BY a.numero_amc),
     b AS (
         SELECT id FROM (
             SELECT b.id FROM identite.beneficiaire b
              WHERE b.nir = $1 AND b.cle_nir = $2
                AND b.numero_amc = $3 AND b.date_naissance = $4 AND b.rang = $5
             UNION
             SELECT b.id FROM identite.ouvrant_droit o
               JOIN identite.beneficiaire b ON b.id = o.beneficiaire_id
              WHERE o.nir = $1 AND o.cle_nir = $2
                AND b.numero_amc = $3 AND b.date_naissance = $4 AND b.rang = $5
         ) m ORDER BY id LIMIT 1)
     SELECT a.numero_amc, a.nom AS nom_amc, a.droits_ouverts, b.id AS beneficiaire, g.*
       FROM a
       LEFT JOIN b ON true
       LEFT JOIN LATERAL (
           {}) g ON true
      ORDER BY g.priorite, g.domaine, g.debut",
        guarantees_of("b.id")
    )
});

/// The AMC, the beneficiary by NIR and the guarantees, in one statement.
pub(crate) async fn lookup_by_nir(
    tx: &mut PgConnection,
    amc: &AmcNumber,
    nir: &Nir,
    birth: &BirthDate,
    rank: BirthRank,
) -> sqlx::Result<Lookup> {
    let rows: Vec<LookupRow> = sqlx::query_as(&LOOKUP_BY_NIR)
        .bind(nir.as_str())
        .bind(nir.key())
        .bind(amc.as_str())
        .bind(birth.as_str())
        .bind(i16::from(rank.get()))
        .fetch_all(&mut *tx)
        .await?;
    let Some(first) = rows.first() else {
        return Ok(Lookup {
            amc: None,
            beneficiary: None,
            guarantees: Vec::new(),
        });
    };
    let amc = Some((
        first.numero_amc.clone(),
        first.nom_amc.clone(),
        first.droits_ouverts,
    ));
    let beneficiary = first.beneficiaire;
    let guarantees = rows
        .into_iter()
        .filter_map(|r| {
            Some(GuaranteeRow {
                contrat_id: r.contrat_id?,
                numero_contrat: r.numero_contrat?,
                numero_adherent: r.numero_adherent,
                responsable: r.responsable?,
                domaine: r.domaine?,
                libelle: r.libelle?,
                code_garantie: r.code_garantie?,
                priorite: r.priorite?,
                reseau: r.reseau,
                debut: r.debut?,
                fin: r.fin?,
                codes: r.codes?,
                unites: r.unites?,
                valeurs: r.valeurs?,
                plafonds: r.plafonds?,
            })
        })
        .map(GuaranteeRow::into_guarantee)
        .collect();
    Ok(Lookup {
        amc,
        beneficiary,
        guarantees,
    })
}

/// The fallback search: (AMC, birth date, rank, adherent number of one of the person's contracts).
pub(crate) async fn find_by_adherent(
    tx: &mut PgConnection,
    amc: &AmcNumber,
    birth: &BirthDate,
    rank: BirthRank,
    adherent: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT b.id FROM identite.contrat c
           JOIN identite.garantie g ON g.contrat_id = c.id
           JOIN identite.beneficiaire b ON b.id = g.beneficiaire_id
          WHERE c.numero_amc = $1 AND c.numero_adherent = $2
            AND b.numero_amc = $1 AND b.date_naissance = $3 AND b.rang = $4
          ORDER BY b.id LIMIT 1",
    )
    .bind(amc.as_str())
    .bind(adherent)
    .bind(birth.as_str())
    .bind(i16::from(rank.get()))
    .fetch_optional(&mut *tx)
    .await
}

#[derive(sqlx::FromRow)]
struct GuaranteeRow {
    contrat_id: i64,
    numero_contrat: String,
    numero_adherent: Option<String>,
    responsable: bool,
    domaine: String,
    libelle: String,
    code_garantie: String,
    priorite: i16,
    reseau: Option<String>,
    debut: NaiveDate,
    fin: NaiveDate,
    codes: Vec<String>,
    unites: Vec<String>,
    valeurs: Vec<i64>,
    plafonds: Vec<Option<i64>>,
}

/// The guarantees of the beneficiary `beneficiary` (a parameter or a column), one row each with its
/// contract and its rule set's parallel arrays (the columns of [`GuaranteeRow`]).
fn guarantees_of(beneficiary: &str) -> String {
    format!(
        "SELECT g.contrat_id, c.numero_contrat, c.numero_adherent, c.responsable, g.domaine,
                g.libelle, g.code_garantie, g.priorite, g.reseau, g.debut, g.fin,
                r.codes, r.unites, r.valeurs, r.plafonds
           FROM identite.garantie g
           JOIN identite.contrat c ON c.id = g.contrat_id
           JOIN identite.bareme r ON r.id = g.bareme_id
          WHERE g.beneficiaire_id = {beneficiary}"
    )
}

/// Every guarantee of a beneficiary, with its contract and rule set, in one round trip.
pub(crate) async fn guarantees(
    tx: &mut PgConnection,
    beneficiary: i64,
) -> sqlx::Result<Vec<Guarantee>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{} ORDER BY g.priorite, g.domaine, g.debut",
            guarantees_of("$1")
        )
    });
    let rows: Vec<GuaranteeRow> = sqlx::query_as(&SQL)
        .bind(beneficiary)
        .fetch_all(&mut *tx)
        .await?;
    Ok(rows.into_iter().map(GuaranteeRow::into_guarantee).collect())
}

impl GuaranteeRow {
    fn into_guarantee(self) -> Guarantee {
        let rules = self
            .codes
            .into_iter()
            .zip(self.unites)
            .zip(self.valeurs)
            .zip(self.plafonds)
            .filter_map(|(((code, unit), value), ceiling)| {
                Some(Rule {
                    code,
                    unit: Unit::parse(&unit)?,
                    value: Hundredths::from_hundredths(value),
                    annual_ceiling: ceiling.map(Hundredths::from_hundredths),
                })
            })
            .collect();
        Guarantee {
            contract_id: self.contrat_id,
            contract_number: self.numero_contrat,
            adherent_number: self.numero_adherent,
            responsible: self.responsable,
            domain: self.domaine,
            label: self.libelle,
            code: self.code_garantie,
            priority: self.priorite,
            network: self.reseau,
            start: self.debut,
            end: self.fin,
            rules,
        }
    }
}

/// A dossier to issue: the pairing (identite) and the tarification view (dispensation).
pub(crate) struct NewDossier<'a> {
    pub number: Uuid,
    pub beneficiary: i64,
    pub contract: i64,
    pub amc: &'a str,
    pub structure: &'a StructureNumber,
    pub expiration: DateTime<Utc>,
    pub ceiling_key: &'a [u8],
    /// JSON snapshot of the guarantee rules, no identity in it.
    pub rules: &'a str,
}

/// The statement of [`issue_dossier`].
pub(super) static ISSUE_DOSSIER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    crate::audit::record::after(
        "WITH pairing AS (
             INSERT INTO identite.appariement (numero_dossier, beneficiaire_id, contrat_id)
             VALUES ($1, $2, $3)),
         dossier AS (
             INSERT INTO dispensation.dossier (numero_dossier, numero_amc, structure, expiration,
                                               cle_plafond, regles)
             VALUES ($1, $4, $5, $6, $7, $8::jsonb))",
        8,
    )
});

/// Writes both rows of a dossier and the exchange's audit row, in one statement of the caller's
/// transaction.
pub(crate) async fn issue_dossier(
    tx: &mut PgConnection,
    d: &NewDossier<'_>,
    audit: &AuditRecord,
) -> sqlx::Result<()> {
    let data = sqlx::query(&ISSUE_DOSSIER)
        .bind(d.number)
        .bind(d.beneficiary)
        .bind(d.contract)
        .bind(d.amc)
        .bind(d.structure.as_str())
        .bind(d.expiration)
        .bind(d.ceiling_key)
        .bind(d.rules);
    audit.bind(data).execute(&mut *tx).await?;
    Ok(())
}
