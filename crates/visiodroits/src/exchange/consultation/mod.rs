//! `ConsultationAccreditation` → `FournitAccreditation`: a PEC's status and the justification of
//! each line's amount, as computed when it was issued. Nothing in it identifies the patient.
//!
//! Runs only under `vd_tarif`. The checks, in the order [`handle`] makes them: the certificate
//! (8002, 8003), identity elements (7005), the fields (6000), `ps` against the certificate
//! (8001), the structure (8004), then the PEC: unknown (7010), another structure's (7003), the
//! AMC's `CONSULTATION` service as it stands now (6021).

pub mod request;
mod response;

use super::{caller, Call, ExchangeError, Exchanges};
use crate::audit;
use crate::code::Code;
use crate::store::accreditation as store;
use crate::store::Role;

/// Handles `demande_accreditation`.
pub(crate) async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let (req, caller) = caller::dispensing(ex, call, request::parse, |r| &r.ps)?;

    let mut tx = ex.store.begin_as(Role::Tarification).await?;
    caller.confirm(&mut tx).await??;
    let pec = store::find(&mut tx, &req.accreditation)
        .await?
        .ok_or(ExchangeError::Business(Code::AccreditationUnknown))?;
    call.audit.amc = Some(pec.amc.clone());
    call.audit.dossier = Some(pec.dossier);
    if pec.structure != caller.structure {
        return Err(ExchangeError::Business(Code::OtherStructure));
    }
    if !pec.service_open {
        return Err(ExchangeError::Business(Code::ServiceClosed));
    }
    let lines = store::justification(&mut tx, pec.id).await?;
    audit::insert(&mut tx, call.audit_as(Code::Ok)).await?;
    tx.commit().await?;
    Ok(response::write(
        call,
        &ex.server,
        &req.accreditation,
        &pec,
        &lines,
    ))
}
