//! Cancellation SQL (role `vd_tarif`, schema `dispensation` only): the PEC a cancellation names,
//! locked, and giving back exactly what it consumed.

use anyhow::Context;
use sqlx::PgConnection;
use uuid::Uuid;

use super::tarification::Recorded;
use crate::audit::AuditRecord;
use crate::domain::{AccreditationNumber, StructureNumber};

/// A PEC that may be cancelled.
#[derive(Debug)]
pub(crate) struct Commitment {
    pub id: i64,
    pub structure: StructureNumber,
    /// `ACTIVE`, `ANNULEE` or `REVOQUEE`: only an active one may be cancelled.
    pub active: bool,
}

/// What a cancellation finds, in one round trip: the response already given to its
/// `id_requete`, and the PEC of (dossier, accreditation, prescription), locked.
pub(crate) struct CancellationState {
    pub stored: Option<(Vec<u8>, String)>,
    pub commitment: Option<Commitment>,
    /// The dossier's AMC has its `ANNULATION` service open now.
    pub service_open: bool,
}

#[derive(sqlx::FromRow)]
struct CancellationRow {
    empreinte: Option<Vec<u8>>,
    reponse: Option<String>,
    id: Option<i64>,
    structure: Option<String>,
    statut: Option<String>,
    ouvert: bool,
}

/// The state of the cancellation `request_id` of `structure` (retry keys are the structure's own).
pub(crate) async fn cancellation_state(
    tx: &mut PgConnection,
    structure: &StructureNumber,
    request_id: Uuid,
    dossier: Uuid,
    accreditation: &AccreditationNumber,
    prescription: i32,
) -> anyhow::Result<CancellationState> {
    let r: CancellationRow = sqlx::query_as(
        "SELECT r.empreinte, r.reponse, t.id, t.structure, t.statut,
                coalesce((SELECT s.actif FROM dispensation.dossier d
                            JOIN dispensation.amc_service s
                              ON s.numero_amc = d.numero_amc AND s.service = 'ANNULATION'
                           WHERE d.numero_dossier = $2), false) AS ouvert
           FROM (SELECT 1) AS one
           LEFT JOIN dispensation.reponse r ON r.structure = $5 AND r.id_requete = $1
           LEFT JOIN LATERAL (
               SELECT id, structure, statut FROM dispensation.tarification
                WHERE numero_dossier = $2 AND numero_accreditation = $3
                  AND id_prescription = $4 AND mode = 'PEC'
                  FOR UPDATE) t ON true",
    )
    .bind(request_id)
    .bind(dossier)
    .bind(accreditation.as_str())
    .bind(prescription)
    .bind(structure.as_str())
    .fetch_one(&mut *tx)
    .await?;
    Ok(CancellationState {
        stored: r.empreinte.zip(r.reponse),
        commitment: match (r.id, r.structure, r.statut) {
            (Some(id), Some(structure), Some(statut)) => Some(Commitment {
                id,
                structure: StructureNumber::parse(&structure)
                    .context("a tarification's structure")?,
                active: statut == super::accreditation::Status::Active.as_str(),
            }),
            _ => None,
        },
        service_open: r.ouvert,
    })
}

/// What gives back exactly what the PEC `$1` consumed (rows locked in key order): the first CTEs
/// of a cancellation and of a revocation.
pub(super) const GIVE_BACK: &str = "WITH given AS (
                 SELECT cle_plafond, code_garantie, code_prestation, annee, montant
                   FROM dispensation.consommation_pec WHERE tarification_id = $1),
             locked AS (
                 SELECT c.cle_plafond, c.code_garantie, c.code_prestation, c.annee
                   FROM dispensation.consommation c
                   JOIN given g USING (cle_plafond, code_garantie, code_prestation, annee)
                  ORDER BY c.code_garantie, c.code_prestation, c.annee FOR UPDATE OF c),
             back AS (
                 UPDATE dispensation.consommation c SET consomme = c.consomme - g.montant
                   FROM given g, locked l
                  WHERE c.cle_plafond = g.cle_plafond AND c.code_garantie = g.code_garantie
                    AND c.code_prestation = g.code_prestation AND c.annee = g.annee
                    AND l.cle_plafond = g.cle_plafond AND l.code_garantie = g.code_garantie
                    AND l.code_prestation = g.code_prestation AND l.annee = g.annee)";

/// Cancels a PEC and gives back exactly what it consumed, stores the response for retries and
/// writes the exchange's audit row: one statement.
pub(crate) async fn cancel(
    tx: &mut PgConnection,
    tarification: i64,
    structure: &StructureNumber,
    request_id: Uuid,
    fingerprint: &[u8],
    response: &str,
    audit: &AuditRecord,
) -> sqlx::Result<Recorded> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        crate::audit::record::after(
            &format!(
                "{GIVE_BACK},
             cancelled AS (
                 UPDATE dispensation.tarification SET statut = 'ANNULEE', statut_le = now()
                  WHERE id = $1),
             stored AS (
                 INSERT INTO dispensation.reponse (structure, id_requete, empreinte, reponse)
                 VALUES ($5, $2, $3, $4))"
            ),
            5,
        )
    });
    let data = sqlx::query(&SQL)
        .bind(tarification)
        .bind(request_id)
        .bind(fingerprint)
        .bind(response)
        .bind(structure.as_str());
    match audit.bind(data).execute(&mut *tx).await {
        Ok(_) => Ok(Recorded::Done),
        Err(e) if e.as_database_error().and_then(|d| d.constraint()) == Some("reponse_pkey") => {
            Ok(Recorded::RequestRaced)
        }
        Err(e) => Err(e),
    }
}
