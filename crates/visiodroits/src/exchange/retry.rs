//! Idempotent retries of tarification and cancellation (spec: "Retries"): the same `id_requete`
//! from the same structure with the same content gets the stored response unchanged; with other
//! content, 7008. Retry keys are the structure's own: another structure's ids are invisible.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Call, ExchangeError, Exchanges};
use crate::audit;
use crate::code::Code;
use crate::domain::StructureNumber;
use crate::soap::{Element, SoapVersion};
use crate::store::tarification as store;
use crate::store::{Role, Tx};

/// The SHA-256 of the request's content (its body element without `entete/horodatage`) and SOAP
/// version: "same content" for retries.
pub fn fingerprint(call: &Call<'_>) -> Vec<u8> {
    content_fingerprint(call.version, call.body)
}

/// The fingerprint's bytes are stored with each response and compared on a retry, so they must
/// never change for a given request: the content is laid out in one buffer and hashed once
/// (hashing it field by field cost a hash update per name, value and marker).
fn content_fingerprint(version: SoapVersion, body: &Element) -> Vec<u8> {
    fn walk(el: &Element, out: &mut Vec<u8>, top: bool) {
        out.extend_from_slice(el.name.as_bytes());
        out.extend_from_slice(&[0u8, u8::from(el.in_vd)]);
        out.extend_from_slice(el.value().as_bytes());
        out.push(1u8);
        for c in &el.children {
            if top && c.name == "entete" {
                for e in c.children.iter().filter(|e| e.name != "horodatage") {
                    walk(e, out, false);
                }
            } else {
                walk(c, out, false);
            }
        }
        out.push(2u8);
    }
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(version.namespace().as_bytes());
    walk(body, &mut out, true);
    Sha256::digest(&out).to_vec()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::envelope::{parse, XmlLimits};

    const ENVELOPE: &str = "<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope' \
        xmlns:vd='urn:visiodroits:v1'><e:Body><vd:demande_annulation>\
        <vd:entete><vd:id_logiciel>L</vd:id_logiciel><vd:horodatage>HORO</vd:horodatage>\
        </vd:entete><vd:numero_dossier> D </vd:numero_dossier><x:autre xmlns:x='urn:x'>a</x:autre>\
        </vd:demande_annulation></e:Body></e:Envelope>";

    fn of(xml: &str) -> String {
        let env = parse(xml, SoapVersion::V12, &XmlLimits::default()).unwrap();
        content_fingerprint(env.version, &env.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Stored fingerprints are compared with those of retries, across restarts and upgrades.
    #[test]
    fn the_fingerprint_of_a_given_request_never_changes() {
        assert_eq!(
            of(ENVELOPE),
            "71d28fe77f7de7a920a49fb44789f72cb9f284b9d6b4eb98b8660280ea942f14"
        );
    }

    #[test]
    fn the_timestamp_and_surrounding_whitespace_are_not_content_but_values_are() {
        let base = of(ENVELOPE);
        assert_eq!(of(&ENVELOPE.replace("HORO", "AUTRE")), base);
        assert_eq!(of(&ENVELOPE.replace(" D ", "D")), base);
        assert_ne!(of(&ENVELOPE.replace(" D ", "E")), base);
        assert_ne!(of(&ENVELOPE.replace(">a<", ">b<")), base);
    }
}
