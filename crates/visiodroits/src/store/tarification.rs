//! Tarification SQL (role `vd_tarif`, schema `dispensation` only): dossiers, ceiling
//! consumption under row locks, results, accreditations, stored responses. A PEC's cancellation
//! is in [`super::cancellation`].

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::AuditRecord;
use crate::domain::dossier::Dossier;
use crate::domain::prescription::DispensedLine;
use crate::domain::tarification::{CeilingKey, Justification, LineResult, Outcome};
use crate::domain::{snapshot, AccreditationNumber, AmcNumber, StructureNumber};

/// What a tarification request finds, in one round trip: the response already given to its
/// `id_requete` (fingerprint, response), its dossier, whether a live PEC exists for its
/// prescription in that dossier, and what the ceilings of the dossier's beneficiary have consumed.
pub(crate) struct RequestState {
    pub stored: Option<(Vec<u8>, String)>,
    pub dossier: Option<Dossier>,
    pub live_commitment: bool,
    /// The dossier's AMC has its `TARIFICATION` service open now.
    pub service_open: bool,
    /// The dossier's AMC has its `TARIFICATION_CHIFFREE` service open now.
    pub encrypted_open: bool,
    /// Each ceiling's consumption for the dossier's beneficiary key, as read (no lock): a
    /// ceiling with no row has consumed nothing.
    pub consumption: BTreeMap<CeilingKey, i64>,
}

/// The row of [`REQUEST_STATE`].
#[derive(sqlx::FromRow)]
pub(crate) struct StateRow {
    empreinte: Option<Vec<u8>>,
    reponse: Option<String>,
    numero_amc: Option<String>,
    structure: Option<String>,
    expiration: Option<DateTime<Utc>>,
    statut: Option<String>,
    cle_plafond: Option<Vec<u8>>,
    regles: Option<String>,
    engagee: bool,
    ouvert: bool,
    chiffree_ouverte: bool,
    conso_garanties: Vec<String>,
    conso_prestations: Vec<String>,
    conso_annees: Vec<i16>,
    conso_montants: Vec<i64>,
}

/// The statement of [`request_state`].
pub(super) const REQUEST_STATE: &str =
    "SELECT r.empreinte, r.reponse, d.numero_amc, d.structure, d.expiration, d.statut,
                d.cle_plafond, d.regles::text AS regles,
                EXISTS (SELECT 1 FROM dispensation.tarification t
                         WHERE t.numero_dossier = $2 AND t.id_prescription = $3
                           AND t.mode = 'PEC' AND t.statut <> 'ANNULEE') AS engagee,
                coalesce((SELECT s.actif FROM dispensation.amc_service s
                           WHERE s.numero_amc = d.numero_amc AND s.service = 'TARIFICATION'),
                         false) AS ouvert,
                coalesce((SELECT s.actif FROM dispensation.amc_service s
                           WHERE s.numero_amc = d.numero_amc
                             AND s.service = 'TARIFICATION_CHIFFREE'), false) AS chiffree_ouverte,
                coalesce(k.garanties, '{}') AS conso_garanties,
                coalesce(k.prestations, '{}') AS conso_prestations,
                coalesce(k.annees, '{}') AS conso_annees,
                coalesce(k.montants, '{}') AS conso_montants
           FROM (SELECT 1) AS one
           LEFT JOIN dispensation.reponse r ON r.structure = $4 AND r.id_requete = $1
           LEFT JOIN dispensation.dossier d ON d.numero_dossier = $2
           LEFT JOIN LATERAL (
                SELECT array_agg(c.code_garantie) AS garanties,
                       array_agg(c.code_prestation) AS prestations,
                       array_agg(c.annee) AS annees, array_agg(c.consomme) AS montants
                  FROM dispensation.consommation c WHERE c.cle_plafond = d.cle_plafond) k ON true";

/// The state of the request `request_id` of `structure` (retry keys are the structure's own), as
/// read: [`StateRow::state`] makes it a [`RequestState`].
pub(crate) async fn request_state(
    conn: &mut PgConnection,
    structure: &StructureNumber,
    request_id: Uuid,
    dossier: Uuid,
    prescription: i32,
) -> sqlx::Result<StateRow> {
    sqlx::query_as(REQUEST_STATE)
        .bind(request_id)
        .bind(dossier)
        .bind(prescription)
        .bind(structure.as_str())
        .fetch_one(&mut *conn)
        .await
}

impl StateRow {
    /// The request's state, its dossier's columns read back into a [`Dossier`].
    pub(crate) fn state(self) -> anyhow::Result<RequestState> {
        let stored = self.empreinte.zip(self.reponse);
        // The dossier's columns are all there, or none is (no such dossier).
        let dossier = match (
            self.numero_amc,
            self.structure,
            self.expiration,
            self.statut,
            self.cle_plafond,
            self.regles,
        ) {
            (
                Some(amc),
                Some(structure),
                Some(expiration),
                Some(statut),
                Some(key),
                Some(rules),
            ) => Some(Dossier {
                amc: AmcNumber::parse(&amc).context("a dossier's AMC number")?,
                structure: StructureNumber::parse(&structure).context("a dossier's structure")?,
                expiration,
                open: statut == "OUVERT",
                ceiling_key: key,
                domains: snapshot::read(&rules)?,
            }),
            _ => None,
        };
        anyhow::ensure!(
            self.conso_prestations.len() == self.conso_garanties.len()
                && self.conso_annees.len() == self.conso_garanties.len()
                && self.conso_montants.len() == self.conso_garanties.len(),
            "a dossier's consumption: arrays of different lengths"
        );
        let consumption = self
            .conso_garanties
            .into_iter()
            .zip(self.conso_prestations)
            .zip(self.conso_annees.into_iter().zip(self.conso_montants))
            .map(|((guarantee, prestation), (year, used))| {
                let year = i32::from(year);
                let key = CeilingKey {
                    guarantee,
                    prestation,
                    year,
                };
                (key, used)
            })
            .collect();
        Ok(RequestState {
            stored,
            dossier,
            live_commitment: self.engagee,
            service_open: self.ouvert,
            encrypted_open: self.chiffree_ouverte,
            consumption,
        })
    }
}

/// The response `structure` stored for its `id_requete`: (content fingerprint, response).
pub(crate) async fn stored_response(
    tx: &mut PgConnection,
    structure: &StructureNumber,
    request_id: Uuid,
) -> sqlx::Result<Option<(Vec<u8>, String)>> {
    sqlx::query_as(
        "SELECT empreinte, reponse FROM dispensation.reponse
          WHERE structure = $1 AND id_requete = $2",
    )
    .bind(structure.as_str())
    .bind(request_id)
    .fetch_optional(&mut *tx)
    .await
}

/// The statement of [`lock_consumption`].
pub(super) const CONSUMPTION_LOCKED: &str =
    "INSERT INTO dispensation.consommation AS c (cle_plafond, code_garantie, code_prestation, annee)
         SELECT $1, g, p, y FROM UNNEST($2::text[], $3::text[], $4::smallint[]) AS k(g, p, y)
          ORDER BY g, p, y
             ON CONFLICT (cle_plafond, code_garantie, code_prestation, annee)
             DO UPDATE SET consomme = c.consomme
         RETURNING c.code_garantie, c.code_prestation, c.annee, c.consomme";

/// What the ceilings of `keys` have consumed for this beneficiary key, the rows created if
/// missing and locked (in key order, so that concurrent PECs never deadlock) until the
/// transaction ends: a PEC's second way, when its consumption changed between its read and its
/// record (see [`record`]).
pub async fn lock_consumption(
    tx: &mut PgConnection,
    ceiling_key: &[u8],
    keys: &[CeilingKey],
) -> sqlx::Result<BTreeMap<CeilingKey, i64>> {
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let guarantees: Vec<&str> = keys.iter().map(|k| k.guarantee.as_str()).collect();
    let prestations: Vec<&str> = keys.iter().map(|k| k.prestation.as_str()).collect();
    let years: Vec<i16> = keys.iter().map(|k| k.year as i16).collect();
    // Insert the missing rows and lock them all, in key order, reading what they consumed — one
    // statement (DO UPDATE locks an existing row and returns its latest version).
    let rows: Vec<(String, String, i16, i64)> = sqlx::query_as(CONSUMPTION_LOCKED)
        .bind(ceiling_key)
        .bind(&guarantees)
        .bind(&prestations)
        .bind(&years)
        .fetch_all(&mut *tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(guarantee, prestation, year, used)| {
            (
                CeilingKey {
                    guarantee,
                    prestation,
                    year: i32::from(year),
                },
                used,
            )
        })
        .collect())
}

/// A tarification to record.
pub struct NewTarification<'a> {
    pub dossier: Uuid,
    pub request_id: Uuid,
    pub structure: &'a StructureNumber,
    pub commitment: bool,
    pub prescription: i32,
    /// The ciphertext as received, for an encrypted request.
    pub ciphertext: Option<&'a [u8]>,
    pub clear_lines: &'a [DispensedLine],
    pub outcome: &'a Outcome,
    /// The consumption the outcome was computed on: a PEC is recorded only if each ceiling it
    /// consumes still stands there (a ceiling absent here: still without a row).
    pub priced_on: &'a BTreeMap<CeilingKey, i64>,
    pub accreditation: Option<&'a AccreditationNumber>,
    pub ceiling_key: &'a [u8],
    /// The request's content fingerprint and the response, kept for idempotent retries.
    pub fingerprint: &'a [u8],
    pub response: &'a str,
    /// The response's time: the row's `cree_le` (and a PEC's `statut_le`).
    pub at: DateTime<Utc>,
}

/// The statement of [`record`].
pub(super) static RECORD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    crate::audit::record::after_gated(
        "WITH t AS (
             INSERT INTO dispensation.tarification (numero_dossier, id_requete, structure, mode,
                 id_prescription, chiffree, donnees_chiffrees, total_facture, total_ro,
                 total_amc, total_reste_a_charge, numero_accreditation, statut, statut_le, cree_le)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                 CASE WHEN $4 = 'PEC' THEN 'ACTIVE' END, CASE WHEN $4 = 'PEC' THEN $42 END, $42)
             RETURNING id),
         l AS (
             INSERT INTO dispensation.ligne (tarification_id, id_ligne, code_prestation,
                 date_execution, quantite, prix_unitaire, montant_facture, base_remboursement,
                 taux_ro, montant_ro, code_cip, code_lpp, montant_amc, reste_a_charge,
                 code_garantie, code_ligne, regle_code, regle_unite, regle_valeur,
                 montant_avant_plafonds, plafond_annuel, consomme_avant, consomme_apres)
             SELECT (SELECT id FROM t), * FROM UNNEST($13::int[], $14::text[], $15::date[],
                 $16::int[], $17::bigint[], $18::bigint[], $19::bigint[], $20::smallint[],
                 $21::bigint[], $22::text[], $23::text[], $24::bigint[], $25::bigint[],
                 $26::text[], $27::text[], $35::text[], $36::text[], $37::bigint[],
                 $38::bigint[], $39::bigint[], $40::bigint[], $41::bigint[])),
         u AS (
             INSERT INTO dispensation.consommation AS c (cle_plafond, code_garantie,
                 code_prestation, annee, consomme)
             SELECT $32, g, p, y, a
               FROM UNNEST($28::text[], $29::text[], $30::smallint[], $31::bigint[])
                    AS k(g, p, y, a)
              ORDER BY g, p, y
                 ON CONFLICT (cle_plafond, code_garantie, code_prestation, annee)
                 DO UPDATE SET consomme = c.consomme + EXCLUDED.consomme
                 WHERE c.consomme = (
                     SELECT k.e FROM UNNEST($28::text[], $29::text[], $30::smallint[],
                            $43::bigint[]) AS k(g, p, y, e)
                      WHERE k.g = EXCLUDED.code_garantie AND k.p = EXCLUDED.code_prestation
                        AND k.y = EXCLUDED.annee)
             RETURNING 1),
         cp AS (
             INSERT INTO dispensation.consommation_pec (tarification_id, cle_plafond,
                 code_garantie, code_prestation, annee, montant)
             SELECT (SELECT id FROM t), $32, * FROM UNNEST($28::text[], $29::text[],
                 $30::smallint[], $31::bigint[])),
         r AS (
             INSERT INTO dispensation.reponse (structure, id_requete, empreinte, reponse)
             VALUES ($3, $2, $33, $34))",
        43,
        "(SELECT count(*) AS n FROM u) AS g
 WHERE CASE WHEN g.n = cardinality($28::text[]) THEN true
            ELSE dispensation.vd_consommation_changee() END",
    )
});

/// How recording a tarification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Done,
    /// Another live PEC of this prescription in this dossier committed first (7009): the unique
    /// index `tarification_pec_unique` says so.
    CommitmentExists,
    /// A concurrent request with the same `id_requete` committed first (`reponse_pkey`): its
    /// stored response is the answer. The transaction is then aborted.
    RequestRaced,
    /// A ceiling the PEC consumes no longer stands where the outcome was computed (another PEC
    /// or a cancellation of the beneficiary since the read): nothing is recorded, and the PEC is
    /// to be priced again on the locked consumption.
    ConsumptionChanged,
}

/// Records a tarification, its lines and results, (PEC) its consumption, the response for
/// retries and the exchange's audit row, in one statement. The named constraints that two
/// concurrent requests can hit become their business outcomes here.
///
/// A PEC's consumption is added to each ceiling only where the ceiling still holds what the
/// outcome was computed on (`priced_on`), checked on the row as the statement locks it; a row
/// absent at the read is created with the PEC's consumption (rows are never deleted). When a
/// row holds anything else, or exists where none did, fewer rows are written than consumed, and
/// `dispensation.vd_consommation_changee()` raises SQLSTATE VD001, which undoes the whole
/// statement and anything it wrote ([`Recorded::ConsumptionChanged`]). The consumption is
/// written first (the audit row reads its count) and in key order, as [`lock_consumption`]
/// locks the rows, so that no two PECs ever wait on each other's rows in opposite orders.
pub async fn record(
    tx: &mut PgConnection,
    t: &NewTarification<'_>,
    audit: &AuditRecord,
) -> sqlx::Result<Recorded> {
    let o = t.outcome;
    let clear: BTreeMap<i32, &DispensedLine> = t.clear_lines.iter().map(|l| (l.id, l)).collect();
    let ids: Vec<i32> = o.lines.iter().map(|r| r.id as i32).collect();
    let get = |r: &LineResult| clear.get(&(r.id as i32)).copied();
    // What a PEC consumes; nothing for a quote.
    let consumed: Vec<(&CeilingKey, i64)> = if t.commitment {
        o.consumed.iter().map(|(k, a)| (k, *a)).collect()
    } else {
        Vec::new()
    };
    let data = sqlx::query(&RECORD)
        .bind(t.dossier)
        .bind(t.request_id)
        .bind(t.structure.as_str())
        .bind(if t.commitment { "PEC" } else { "DEVIS" })
        .bind(t.prescription)
        .bind(t.ciphertext.is_some())
        .bind(t.ciphertext)
        .bind(o.total_billed)
        .bind(o.total_amo)
        .bind(o.total_amc)
        .bind(o.total_patient)
        .bind(t.accreditation.map(AccreditationNumber::as_str))
        .bind(&ids)
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.prestation.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.execution))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.quantity))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.unit_price))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.billed))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.base))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.rate))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).map(|l| l.amo))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).and_then(|l| l.cip.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| get(r).and_then(|l| l.lpp.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(o.lines.iter().map(|r| r.amc).collect::<Vec<_>>())
        .bind(o.lines.iter().map(|r| r.patient).collect::<Vec<_>>())
        .bind(
            o.lines
                .iter()
                .map(|r| r.guarantee.clone())
                .collect::<Vec<_>>(),
        )
        .bind(o.lines.iter().map(|r| r.code.as_str()).collect::<Vec<_>>())
        .bind(
            consumed
                .iter()
                .map(|(k, _)| k.guarantee.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            consumed
                .iter()
                .map(|(k, _)| k.prestation.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            consumed
                .iter()
                .map(|(k, _)| k.year as i16)
                .collect::<Vec<_>>(),
        )
        .bind(consumed.iter().map(|(_, a)| *a).collect::<Vec<_>>())
        .bind(t.ceiling_key)
        .bind(t.fingerprint)
        .bind(t.response);
    let j = |f: &dyn Fn(&Justification) -> Option<i64>| -> Vec<Option<i64>> {
        o.lines.iter().map(|r| f(&r.justification)).collect()
    };
    fn rule(r: &LineResult) -> Option<&crate::domain::rules::Rule> {
        r.justification.rule.as_ref()
    }
    let data = data
        .bind(
            o.lines
                .iter()
                .map(|r| rule(r).map(|r| r.code.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            o.lines
                .iter()
                .map(|r| rule(r).map(|r| r.unit.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(j(&|j| j.rule.as_ref().map(|r| r.value.get())))
        .bind(j(&|j| Some(j.before_caps)))
        .bind(j(&|j| j.ceiling.as_ref().map(|c| c.ceiling)))
        .bind(j(&|j| j.ceiling.as_ref().map(|c| c.before)))
        .bind(j(&|j| j.ceiling.as_ref().map(|c| c.after)))
        .bind(t.at)
        .bind(
            consumed
                .iter()
                .map(|(k, _)| t.priced_on.get(*k).copied())
                .collect::<Vec<_>>(),
        );
    match audit.bind(data).execute(&mut *tx).await {
        Ok(_) => Ok(Recorded::Done),
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("VD001") => {
            Ok(Recorded::ConsumptionChanged)
        }
        Err(e) => match e.as_database_error().and_then(|d| d.constraint()) {
            Some("tarification_pec_unique") => Ok(Recorded::CommitmentExists),
            Some("reponse_pkey") => Ok(Recorded::RequestRaced),
            _ => Err(e),
        },
    }
}
