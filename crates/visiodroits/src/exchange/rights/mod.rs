//! `DemandeDroits` → `FournitDroits`: the patient's rights and a dossier number.
//!
//! The checks, in the order [`handle`] makes them: who calls (8002, 8003), one kind of data per
//! exchange (7005), the message's fields (6000, every faulty field named), the `ps` against the
//! certificate (8001) and the structure (the certificate's, or declared and found in the
//! directory: 8004), the AMC (6020/6021), then the search (6005/6001), the rights at the date
//! (6002) and the requested domains (6003). A success issues the dossier, its pairing row and the
//! audit row in one statement.

pub mod request;
mod response;

use chrono::Utc;
use sqlx::PgConnection;

use super::caller::{self, Caller};
use super::{Call, ExchangeError, Exchanges};
use crate::code::Code;
use crate::config::RightsClientCert;
use crate::domain::{rights, snapshot, DossierNumber};
use crate::store::rights::{self as store, Lookup, NewDossier};
use crate::store::Role;
use request::{RightsRequest, DISPENSING_ELEMENTS};

/// Handles `demande_droits`.
pub(crate) async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let required = ex.rights_client_cert == RightsClientCert::Required;
    let who = caller::professional(call, required)?;
    if call.body.contains_named(DISPENSING_ELEMENTS) {
        return Err(ExchangeError::Business(Code::MixedData));
    }
    let req = call.take(request::parse(call.body))?;
    let caller = match who {
        Some(who) => caller::bind(&who, &req.ps, ex.structure_check)?,
        // Without a certificate (when configured), the dossier is bound to the declared structure.
        None => req
            .ps
            .structure
            .as_ref()
            .map(|s| Caller::uncertified(&req.ps.ps_id, s))
            .ok_or_else(|| missing_structure("sans certificat client"))?,
    };
    caller.audit(call);

    // Autocommit: the reads need no transaction, and the dossier is written by one statement.
    let (mut tx, first) = ex
        .store
        .read_as(Role::Rights, |mut conn| {
            let (caller, req) = (&caller, &req);
            async move {
                let r = first_reads(&mut conn, caller, req).await;
                (conn, r)
            }
        })
        .await?;
    let (amc, beneficiary, guarantees) = find(&mut tx, &req, first?).await?;
    let chosen =
        rights::select(guarantees, req.date, &req.domains).map_err(ExchangeError::Business)?;

    let number = DossierNumber::new();
    let expiration = Utc::now()
        + chrono::Duration::from_std(ex.dossier_ttl)
            .map_err(|e| anyhow::anyhow!("dossier TTL: {e}"))?;
    let key = rights::ceiling_key(ex.pseudonymisation_key.expose(), &amc.0, beneficiary);
    let rules = snapshot::write(&chosen).map_err(|e| anyhow::anyhow!("rules snapshot: {e}"))?;
    call.audit.dossier = Some(number.uuid());
    let dossier = NewDossier {
        number: number.uuid(),
        beneficiary,
        contract: chosen[0].contract_id,
        amc: &amc.0,
        structure: &caller.structure,
        expiration,
        ceiling_key: &key,
        rules: &rules,
    };
    store::issue_dossier(&mut tx, &dossier, call.audit_as(Code::Ok)).await?;
    tx.commit().await?;
    Ok(response::write(
        call,
        &ex.server,
        number,
        expiration,
        (&amc.0, &amc.1),
        &chosen,
    ))
}

/// 6000 for a `numero_structure` the message must carry.
fn missing_structure(why: &str) -> ExchangeError {
    ExchangeError::Invalid(vec![format!("ps/numero_structure: obligatoire {why}")])
}

/// The exchange's first reads, which also show that its connection is alive (so they may run
/// twice): the structure in the directory when it comes from there, then the look-up by NIR.
async fn first_reads(
    conn: &mut PgConnection,
    caller: &Caller,
    req: &RightsRequest,
) -> sqlx::Result<Result<Lookup, ExchangeError>> {
    if let Err(refused) = caller.confirm(conn).await? {
        return Ok(Err(refused));
    }
    let found = store::lookup_by_nir(conn, &req.amc, &req.nir, &req.birth, req.rank).await?;
    Ok(Ok(found))
}

/// From the look-up by NIR: the AMC (6020 unknown, 6021 rights closed), then the beneficiary by
/// NIR or by adherent number (6005 without one, 6001 with one), and their guarantees.
async fn find(
    tx: &mut crate::store::Tx,
    req: &RightsRequest,
    found: Lookup,
) -> Result<((String, String), i64, Vec<rights::Guarantee>), ExchangeError> {
    let Some((amc_number, amc_name, open)) = found.amc else {
        return Err(ExchangeError::Business(Code::AmcUnknown));
    };
    if !open {
        return Err(ExchangeError::Business(Code::ServiceClosed));
    }
    let amc = (amc_number, amc_name);
    match (found.beneficiary, &req.adherent) {
        (Some(b), _) => Ok((amc, b, found.guarantees)),
        (None, Some(adherent)) => {
            match store::find_by_adherent(tx, &req.amc, &req.birth, req.rank, adherent).await? {
                Some(b) => Ok((amc, b, store::guarantees(tx, b).await?)),
                None => Err(ExchangeError::Business(Code::BeneficiaryUnknown)),
            }
        }
        (None, None) => Err(ExchangeError::Business(Code::AdherentNeeded)),
    }
}
