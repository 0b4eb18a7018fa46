//! `DldTar` → `FournitTarification`: the AMC's amount per dispensing line on a dossier, as a
//! quote (`DEVIS`) or a binding commitment (`PEC`, with an accreditation number).
//!
//! Runs only under `vd_tarif`: it never touches `identite`. The checks, in the order [`handle`]
//! makes them: the certificate (8002, 8003), identity elements anywhere (7005), the fields (6000),
//! `ps` against the certificate (8001), the structure (the certificate's, or declared and found
//! in the directory: 8004), a retry of the `id_requete` (its stored response, or 7008), the
//! dossier (7001, 7003, 7004, 7002), the AMC's `TARIFICATION` service as it stands now (6021),
//! the encrypted payload (7007 where this server does not decrypt or the AMC closed
//! `TARIFICATION_CHIFFREE`, 7006, then the same checks on its content), an existing PEC (7009).
//! A PEC answered `0000` carries its signed proof; a failure to sign is a 0999, never a PEC
//! without proof.

pub mod encrypted;
pub mod proof;
pub mod request;
mod response;
mod signed_data;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use sqlx::PgConnection;

use super::caller::{self, Caller};
use super::{head, retry, Call, ExchangeError, Exchanges};
use crate::code::Code;
use crate::domain::dossier;
use crate::domain::prescription::Prescription;
use crate::domain::tarification;
use crate::domain::AccreditationNumber;
use crate::soap::Element;
use crate::store::tarification::{self as store, NewTarification, Recorded};
use crate::store::Role;
use request::Payload;

/// Patient identity elements: never in a tarification, in clear or encrypted (`ps/nom` is the
/// pharmacist's name and allowed).
pub(crate) const IDENTITY_ELEMENTS: &[&str] = &[
    "beneficiaire",
    "nir",
    "cle_nir",
    "date_naissance",
    "rang_gemellaire",
    "nom_beneficiaire",
    "prenom",
    "nom",
    "numero_adherent",
];

/// Whether identity elements or attributes appear anywhere outside `ps`'s own elements, in any
/// namespace (`ps` may name the pharmacist, as an element; no attribute may name anyone).
pub(crate) fn carries_identity(el: &Element) -> bool {
    el.has_attribute_named(IDENTITY_ELEMENTS)
        || el.children.iter().any(|c| {
            if c.name == "ps" {
                return c.has_attribute_named(IDENTITY_ELEMENTS);
            }
            IDENTITY_ELEMENTS.contains(&c.name.as_str()) || c.contains_named(IDENTITY_ELEMENTS)
        })
}

/// Handles `demande_tarification`.
pub(crate) async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let (req, caller) = caller::dispensing(ex, call, request::parse, |r| &r.ps)?;
    let content = retry::fingerprint(call);
    // Decryption (RSA, then the XML checks) runs before the transaction so that no database
    // connection waits on it; its outcome is reported in the spec's order, after the dossier's.
    let (ciphertext, prescription) = open(ex, req.payload);
    let prescription_id = prescription.as_ref().map_or(0, |p| p.id);

    // Autocommit: the request's state is one read, and the tarification is recorded by one
    // statement; only a PEC whose ceilings changed in between begins a transaction.
    let (mut tx, first) = ex
        .store
        .read_as(Role::Tarification, |mut conn| {
            let caller = &caller;
            let ids = (req.request_id, req.dossier.uuid(), prescription_id);
            async move {
                let r = first_reads(&mut conn, caller, ids).await;
                (conn, r)
            }
        })
        .await?;
    let state = first?.state()?;
    if let Some(stored) = state.stored {
        // The same request again: the same answer, nothing consumed twice.
        return retry::replay(tx, call, stored, &content).await;
    }
    call.audit.amc = state.dossier.as_ref().map(|d| d.amc.as_str().to_string());
    let d = dossier::usable_by(state.dossier, &caller.structure, chrono::Utc::now())
        .and_then(|d| dossier::service_open(d, state.service_open))
        .map_err(ExchangeError::Business)?;
    if ciphertext.is_some() && !state.encrypted_open {
        return Err(ExchangeError::Business(Code::EncryptedNotAccepted));
    }
    let prescription = prescription.map_err(ExchangeError::Business)?;
    if req.commitment && state.live_commitment {
        return Err(ExchangeError::Business(Code::CommitmentExists));
    }
    let accreditation = accreditation(ex, req.commitment)?;
    call.audit.accreditation = accreditation.as_ref().map(AccreditationNumber::to_string);
    let lines: Vec<_> = prescription.lines.iter().map(|l| l.line()).collect();
    // Priced on the consumption read with the request's state. A PEC is recorded only if its
    // ceilings still stand there; otherwise (another PEC or a cancellation of the beneficiary in
    // between) it is priced again in a transaction that locks them.
    let mut priced_on = state.consumption;
    let mut locked = false;
    loop {
        let outcome = tarification::compute(&d.domains, &lines, &priced_on);
        // One time for the response, its proof and the PEC's row (ConsultationAccreditation's
        // horodatage_pec is the signed horodatage).
        let at = chrono::Utc::now();
        let time = head::stamp(at);
        // A PEC's proof, signed before anything is recorded: no PEC without its proof.
        let proof = match &accreditation {
            Some(a) => {
                let text = proof::Commitment {
                    accreditation: a,
                    dossier: req.dossier,
                    prescription: prescription.id,
                    total_billed: outcome.total_billed,
                    total_amc: outcome.total_amc,
                    structure: &caller.structure,
                    ps: &caller.ps_id,
                    time: &time,
                }
                .text();
                Some(BASE64.encode(ex.signer.sign(&text)?))
            }
            None => None,
        };
        let response = response::write(
            call,
            &ex.server,
            &time,
            req.dossier,
            prescription.id,
            &outcome,
            accreditation.as_ref().zip(proof.as_deref()),
        );
        let new = NewTarification {
            dossier: req.dossier.uuid(),
            request_id: req.request_id,
            structure: &caller.structure,
            commitment: req.commitment,
            prescription: prescription.id,
            ciphertext: ciphertext.as_deref(),
            clear_lines: if ciphertext.is_some() {
                &[]
            } else {
                &prescription.lines
            },
            outcome: &outcome,
            priced_on: &priced_on,
            accreditation: accreditation.as_ref(),
            ceiling_key: &d.ceiling_key,
            fingerprint: &content,
            response: &response,
            at,
        };
        let raced = match store::record(&mut tx, &new, call.audit_as(Code::Ok)).await? {
            Recorded::Done => {
                tx.commit().await?;
                return Ok(response);
            }
            // Another PEC of the prescription won; it may be this very request sent twice.
            Recorded::CommitmentExists => Code::CommitmentExists,
            Recorded::RequestRaced => Code::RequestIdReused,
            Recorded::ConsumptionChanged if !locked => {
                let keys: Vec<_> = tarification::ceilings_touched(&d.domains, &lines)
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                // A transaction of its own: with a shared login the exchange's first one is
                // aborted by the refused statement.
                drop(tx);
                tx = ex.store.begin_as(Role::Tarification).await?;
                priced_on = store::lock_consumption(&mut tx, &d.ceiling_key, &keys).await?;
                locked = true;
                continue;
            }
            Recorded::ConsumptionChanged => {
                return Err(anyhow::anyhow!("a ceiling changed while locked").into());
            }
        };
        drop(tx);
        let (id, content) = (new.request_id, new.fingerprint);
        return retry::raced(ex, call, new.structure, id, content, raced).await;
    }
}

/// The exchange's first reads, which also show that its connection is alive (so they may run
/// twice): the structure in the directory when it comes from there, then the request's state.
async fn first_reads(
    conn: &mut PgConnection,
    caller: &Caller,
    (request, dossier, prescription): (uuid::Uuid, uuid::Uuid, i32),
) -> sqlx::Result<Result<store::StateRow, ExchangeError>> {
    if let Err(refused) = caller.confirm(conn).await? {
        return Ok(Err(refused));
    }
    let s = &caller.structure;
    let state = store::request_state(conn, s, request, dossier, prescription).await?;
    Ok(Ok(state))
}

/// A new accreditation number for a PEC.
fn accreditation(
    ex: &Exchanges,
    commitment: bool,
) -> Result<Option<AccreditationNumber>, ExchangeError> {
    if !commitment {
        return Ok(None);
    }
    AccreditationNumber::generate(&ex.owner_code, ex.instance_code)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("OS random source: {e}").into())
}

/// The prescription of the payload, and the ciphertext to keep for an encrypted one.
fn open(ex: &Exchanges, payload: Payload) -> (Option<Vec<u8>>, Result<Prescription, Code>) {
    match payload {
        Payload::Clear(p) => (None, Ok(p)),
        Payload::Encrypted {
            der,
            declared_fingerprint,
        } => {
            let fp = declared_fingerprint.as_deref();
            let p = encrypted::prescription(ex.decryptor.as_ref(), &der, fp);
            (Some(der), p)
        }
    }
}
