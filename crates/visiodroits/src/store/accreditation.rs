//! Accreditations as stored (schema `dispensation`): a PEC by its number with its status, the
//! justification of its lines (role `vd_tarif`), and the operator's revocation (owner).

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::domain::rules::{Rule, Unit};
use crate::domain::tarification::CeilingUse;
use crate::domain::{AccreditationNumber, Hundredths, StructureNumber};

/// An accreditation's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    /// Cancelled by the pharmacy (`AnnulationTar`).
    Cancelled,
    /// Revoked by the operator (`accreditation revoke`).
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Cancelled => "ANNULEE",
            Status::Revoked => "REVOQUEE",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Status::Active, Status::Cancelled, Status::Revoked]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// A PEC found by its accreditation number.
#[derive(Debug)]
pub struct Pec {
    pub id: i64,
    pub dossier: Uuid,
    pub amc: String,
    pub structure: StructureNumber,
    pub prescription: i32,
    pub status: Status,
    pub status_time: DateTime<Utc>,
    pub reason: Option<String>,
    pub issued: DateTime<Utc>,
    pub total_billed: i64,
    pub total_amo: i64,
    pub total_amc: i64,
    pub total_patient: i64,
    /// The AMC has its `CONSULTATION` service open now.
    pub service_open: bool,
}

#[derive(sqlx::FromRow)]
struct PecRow {
    id: i64,
    numero_dossier: Uuid,
    numero_amc: String,
    structure: String,
    id_prescription: i32,
    statut: String,
    statut_le: DateTime<Utc>,
    motif_revocation: Option<String>,
    cree_le: DateTime<Utc>,
    total_facture: i64,
    total_ro: i64,
    total_amc: i64,
    total_reste_a_charge: i64,
    ouvert: bool,
}

/// The PEC numbered `accreditation`, if any (`FOR UPDATE` with `lock`: a revocation).
async fn find_as(
    tx: &mut PgConnection,
    accreditation: &AccreditationNumber,
    lock: bool,
) -> anyhow::Result<Option<Pec>> {
    macro_rules! find {
        ($tail:literal) => {
            concat!(
                "SELECT t.id, t.numero_dossier, d.numero_amc, t.structure, t.id_prescription, t.statut,
                t.statut_le, t.motif_revocation, t.cree_le, t.total_facture, t.total_ro,
                t.total_amc, t.total_reste_a_charge,
                coalesce((SELECT s.actif FROM dispensation.amc_service s
                           WHERE s.numero_amc = d.numero_amc AND s.service = 'CONSULTATION'),
                         false) AS ouvert
           FROM dispensation.tarification t
           JOIN dispensation.dossier d USING (numero_dossier)
          WHERE t.numero_accreditation = $1 AND t.mode = 'PEC'",
                $tail
            )
        };
    }
    let sql = if lock {
        find!(" FOR UPDATE OF t")
    } else {
        find!("")
    };
    let row: Option<PecRow> = sqlx::query_as(sql)
        .bind(accreditation.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    row.map(|r| {
        Ok(Pec {
            id: r.id,
            dossier: r.numero_dossier,
            amc: r.numero_amc,
            structure: StructureNumber::parse(&r.structure)
                .context("a tarification's structure")?,
            prescription: r.id_prescription,
            status: Status::parse(&r.statut).context("an accreditation's status")?,
            status_time: r.statut_le,
            reason: r.motif_revocation,
            issued: r.cree_le,
            total_billed: r.total_facture,
            total_amo: r.total_ro,
            total_amc: r.total_amc,
            total_patient: r.total_reste_a_charge,
            service_open: r.ouvert,
        })
    })
    .transpose()
}

/// The PEC numbered `accreditation`, if any.
pub(crate) async fn find(
    tx: &mut PgConnection,
    accreditation: &AccreditationNumber,
) -> anyhow::Result<Option<Pec>> {
    find_as(tx, accreditation, false).await
}

/// One line of a PEC with its justification, as computed when it was issued.
#[derive(Debug, PartialEq, Eq)]
pub struct JustifiedLine {
    pub id: i32,
    pub guarantee: Option<String>,
    /// `None` for `L01`, and for lines recorded before justifications were kept.
    pub rule: Option<Rule>,
    pub before_caps: Option<i64>,
    pub code: String,
    pub amc: i64,
    pub patient: i64,
    pub ceiling: Option<CeilingUse>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    id_ligne: i32,
    code_garantie: Option<String>,
    regle_code: Option<String>,
    regle_unite: Option<String>,
    regle_valeur: Option<i64>,
    montant_avant_plafonds: Option<i64>,
    code_ligne: String,
    montant_amc: i64,
    reste_a_charge: i64,
    plafond_annuel: Option<i64>,
    consomme_avant: Option<i64>,
    consomme_apres: Option<i64>,
}

/// The lines of the tarification `id`, in `id_ligne` order.
pub(crate) async fn justification(
    tx: &mut PgConnection,
    id: i64,
) -> anyhow::Result<Vec<JustifiedLine>> {
    let rows: Vec<LineRow> = sqlx::query_as(
        "SELECT id_ligne, code_garantie, regle_code, regle_unite, regle_valeur,
                montant_avant_plafonds, code_ligne, montant_amc, reste_a_charge, plafond_annuel,
                consomme_avant, consomme_apres
           FROM dispensation.ligne WHERE tarification_id = $1 ORDER BY id_ligne",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(|r| {
            let rule = match (r.regle_code, r.regle_unite, r.regle_valeur) {
                (Some(code), Some(unit), Some(value)) => Some(Rule {
                    code,
                    unit: Unit::parse(&unit).context("a line's rule unit")?,
                    value: Hundredths::from_hundredths(value),
                    annual_ceiling: r.plafond_annuel.map(Hundredths::from_hundredths),
                }),
                _ => None,
            };
            let ceiling = match (r.plafond_annuel, r.consomme_avant, r.consomme_apres) {
                (Some(ceiling), Some(before), Some(after)) => Some(CeilingUse {
                    ceiling,
                    before,
                    after,
                }),
                _ => None,
            };
            Ok(JustifiedLine {
                id: r.id_ligne,
                guarantee: r.code_garantie,
                rule,
                before_caps: r.montant_avant_plafonds,
                code: r.code_ligne,
                amc: r.montant_amc,
                patient: r.reste_a_charge,
                ceiling,
            })
        })
        .collect()
}

/// How a revocation ended.
#[derive(Debug)]
pub enum Revocation {
    Revoked(Pec),
    Unknown,
    /// Already cancelled or revoked: its status.
    NotActive(Status),
}

/// Revokes the active PEC `accreditation` for `reason` (owner connection): its status becomes
/// `REVOQUEE`, what it consumed of the ceilings is given back (the AMC no longer owes it), and the
/// audit row is written, all in `tx`.
pub async fn revoke(
    tx: &mut PgConnection,
    accreditation: &AccreditationNumber,
    reason: &str,
    audit: &mut AuditRecord,
) -> anyhow::Result<Revocation> {
    let Some(pec) = find_as(tx, accreditation, true).await? else {
        return Ok(Revocation::Unknown);
    };
    if pec.status != Status::Active {
        return Ok(Revocation::NotActive(pec.status));
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        crate::audit::record::after(
            &format!(
                "{},
             revoked AS (
                 UPDATE dispensation.tarification
                    SET statut = 'REVOQUEE', statut_le = now(), motif_revocation = $2
                  WHERE id = $1)",
                super::cancellation::GIVE_BACK
            ),
            2,
        )
    });
    audit.amc = Some(pec.amc.clone());
    audit.dossier = Some(pec.dossier);
    audit.structure = Some(pec.structure.to_string());
    audit
        .bind(sqlx::query(&SQL).bind(pec.id).bind(reason))
        .execute(&mut *tx)
        .await?;
    Ok(Revocation::Revoked(pec))
}
