//! Idempotent retries of tarification and cancellation (spec: "Retries"): the same `id_requete`
//! from the same structure with the same content gets the stored response unchanged; with other
//! content, 7008. Retry keys are the structure's own: another structure's ids are invisible.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Call, ExchangeError, Exchanges};
use crate::audit;
use crate::code::Code;
use crate::domain::StructureNumber;
use crate::soap::Element;
use crate::store::tarification as store;
use crate::store::{Role, Tx};

/// The SHA-256 of the request's content (its body element without `entete/horodatage`) and SOAP
/// version: "same content" for retries.
pub fn fingerprint(call: &Call<'_>) -> Vec<u8> {
    fn walk(el: &Element, h: &mut Sha256, top: bool) {
        h.update(el.name.as_bytes());
        h.update([0u8, u8::from(el.in_vd)]);
        h.update(el.value().as_bytes());
        h.update([1u8]);
        for c in &el.children {
            if top && c.name == "entete" {
                for e in c.children.iter().filter(|e| e.name != "horodatage") {
                    walk(e, h, false);
                }
            } else {
                walk(c, h, false);
            }
        }
        h.update([2u8]);
    }
    let mut h = Sha256::new();
    h.update(call.version.namespace().as_bytes());
    walk(call.body, &mut h, true);
    h.finalize().to_vec()
}

/// What a request found stored under its `id_requete`: the same content gets the stored response
/// (audited, committed); other content is 7008.
pub(crate) async fn replay(
    mut tx: Tx,
    call: &mut Call<'_>,
    (stored_fp, response): (Vec<u8>, String),
    content: &[u8],
) -> Result<String, ExchangeError> {
    if stored_fp != content {
        return Err(ExchangeError::Business(Code::RequestIdReused));
    }
    audit::insert(&mut tx, call.audit_as(Code::Ok)).await?;
    tx.commit().await?;
    Ok(response)
}

/// After a concurrent request committed first (the same `id_requete` of the same structure, or a
/// PEC of the same prescription): the response stored under this request's `id_requete`, read
/// in a new transaction, as [`replay`] would give it — the same request sent twice at once gets
/// one answer twice. Without one, `otherwise` (7008 for an id stored by then, 7009 for another
/// request's PEC).
pub(crate) async fn raced(
    ex: &Exchanges,
    call: &mut Call<'_>,
    structure: &StructureNumber,
    request_id: Uuid,
    content: &[u8],
    otherwise: Code,
) -> Result<String, ExchangeError> {
    let mut tx = ex.store.begin_as(Role::Tarification).await?;
    match store::stored_response(&mut tx, structure, request_id).await? {
        Some(stored) => replay(tx, call, stored, content).await,
        None => Err(ExchangeError::Business(otherwise)),
    }
}
