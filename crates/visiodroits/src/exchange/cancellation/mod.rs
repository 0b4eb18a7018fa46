//! `AnnulationTar` → `FournitAnnulation`: cancels a PEC and gives back its ceiling consumption,
//! atomically.
//!
//! The checks, in the order [`handle`] makes them: the certificate (8002, 8003), identity elements
//! (7005), the fields (6000), `ps` against the certificate (8001), the structure (8004), a retry
//! of the `id_requete` (its stored response, or 7008), then the PEC: another structure's (7003),
//! the AMC's `ANNULATION` service as it stands now (6021), unknown, already cancelled or revoked
//! (7010).

pub mod request;
mod response;

use super::{caller, retry, Call, ExchangeError, Exchanges};
use crate::code::Code;
use crate::store::cancellation as store;
use crate::store::tarification::Recorded;
use crate::store::Role;

/// Handles `demande_annulation`.
pub(crate) async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let (req, caller) = caller::dispensing(ex, call, request::parse, |r| &r.ps)?;

    let content = retry::fingerprint(call);
    let mut tx = ex.store.begin_as(Role::Tarification).await?;
    caller.confirm(&mut tx).await??;
    let state = store::cancellation_state(
        &mut tx,
        &caller.structure,
        req.request_id,
        req.dossier.uuid(),
        &req.accreditation,
        req.prescription,
    )
    .await?;
    if let Some(stored) = state.stored {
        return retry::replay(tx, call, stored, &content).await;
    }
    let pec = match state.commitment {
        Some(c) if c.structure != caller.structure => {
            return Err(ExchangeError::Business(Code::OtherStructure))
        }
        // The AMC may have closed ANNULATION since: as it stands now.
        Some(_) if !state.service_open => return Err(ExchangeError::Business(Code::ServiceClosed)),
        Some(c) if c.active => c,
        _ => return Err(ExchangeError::Business(Code::AccreditationUnknown)),
    };
    let response = response::write(call, &ex.server, &req.accreditation);
    // The reversal, the stored response and the audit row: one statement.
    let audit = call.audit_as(Code::Ok);
    let cancelled = store::cancel(
        &mut tx,
        pec.id,
        &caller.structure,
        req.request_id,
        &content,
        &response,
        audit,
    );
    match cancelled.await? {
        Recorded::RequestRaced => {
            drop(tx);
            let structure = &caller.structure;
            retry::raced(
                ex,
                call,
                structure,
                req.request_id,
                &content,
                Code::RequestIdReused,
            )
            .await
        }
        Recorded::Done | Recorded::CommitmentExists => {
            tx.commit().await?;
            Ok(response)
        }
        // A reversal only gives consumption back: never refused for it.
        Recorded::ConsumptionChanged => {
            Err(anyhow::anyhow!("a cancellation refused for its consumption").into())
        }
    }
}
