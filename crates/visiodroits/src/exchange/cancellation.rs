//! `AnnulationTar` → `FournitAnnulation`: cancels a PEC and gives back its ceiling consumption,
//! atomically. Only the structure that obtained the PEC may cancel it (7003); an unknown or
//! already cancelled accreditation is 7010.

use super::caller;
use super::common::{self, Problems};
use super::tarification::{
    answer_stored, bound_caller, carries_identity, dossier_number, fingerprint, ps,
};
use super::{Call, ExchangeError, Exchanges};
use crate::audit;
use crate::code::Code;
use crate::soap::writer::envelope;
use crate::store::tarification as store;
use crate::store::Role;

/// `numero_accreditation`: 2 owner characters, `M`, 13 Crockford base32 characters.
fn accreditation_ok(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 16
        && b[..2]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        && b[2] == b'M'
        && b[3..].iter().all(|c| {
            c.is_ascii_digit()
                || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'L' | b'O' | b'U'))
        })
}

/// Reads `numero_accreditation` and `id_prescription`; problems go to `p`.
pub fn accreditation_and_prescription(
    body: &crate::soap::Element,
    p: &mut Problems,
) -> (Option<String>, Option<i32>) {
    let accreditation = p.text(body, "", "numero_accreditation", 16).and_then(|v| {
        let ok = accreditation_ok(v);
        if !ok {
            p.add(
                "numero_accreditation",
                "16 caractères au format de l'accréditation attendus",
            );
        }
        ok.then(|| v.to_string())
    });
    let prescription = p.text(body, "", "id_prescription", 9).and_then(|v| {
        let n = v
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=999_999_999).contains(n) && v.bytes().all(|b| b.is_ascii_digit()));
        if n.is_none() {
            p.add("id_prescription", "entier de 1 à 999999999 attendu");
        }
        n
    });
    (accreditation, prescription)
}

/// Handles `demande_annulation`.
pub async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let body = call.body;
    let cert = caller::professional(call, true)?
        .ok_or(ExchangeError::Access(Code::CertificateRequired))?;
    if carries_identity(body) {
        return Err(ExchangeError::Business(Code::MixedData));
    }
    let mut p = Problems::default();
    p.unexpected(
        body,
        "",
        &[
            "entete",
            "ps",
            "numero_dossier",
            "numero_accreditation",
            "id_prescription",
        ],
    );
    let header = common::header(body, &mut p);
    if let Some(h) = &header {
        call.audit.client_time = h.client_time.map(|t| t.with_timezone(&chrono::Utc));
    }
    let ps = ps(body, &mut p);
    let dossier = dossier_number(body, &mut p);
    if let Some(d) = dossier {
        call.audit.dossier = Some(d.uuid());
    }
    let (accreditation, prescription) = accreditation_and_prescription(body, &mut p);
    if let Some(a) = &accreditation {
        call.audit.accreditation = Some(a.clone());
        call.echo.push(("numero_accreditation", a.clone()));
        call.echo.push(("annulee", "false".into()));
    }
    if !p.is_empty() {
        return Err(ExchangeError::Invalid(p.0));
    }
    let (
        Some(header),
        Some((ps_id, structure)),
        Some(dossier),
        Some(accreditation),
        Some(prescription),
    ) = (header, ps, dossier, accreditation, prescription)
    else {
        return Err(ExchangeError::Invalid(vec!["requête incomplète".into()]));
    };
    let caller = bound_caller(ex, cert, &ps_id, &structure)?;
    caller.audit(call);

    let content = fingerprint(call);
    let mut tx = ex.store.begin_as(Role::Tarification).await?;
    caller.confirm(&mut tx).await?;
    let state = store::cancellation_state(
        &mut tx,
        header.request_id,
        dossier.uuid(),
        &accreditation,
        prescription,
    )
    .await?;
    if let Some((fp, response)) = state.stored {
        if fp == content {
            audit::insert(&mut tx, call.audit_as(Code::Ok)).await?;
            tx.commit().await?;
            return Ok(response);
        }
        return Err(ExchangeError::Business(Code::RequestIdReused));
    }
    let pec = match state.commitment {
        Some(c) if c.structure != caller.structure => {
            return Err(ExchangeError::Business(Code::OtherStructure))
        }
        Some(c) if !c.annulee => c,
        _ => return Err(ExchangeError::Business(Code::AccreditationUnknown)),
    };

    let response = envelope(call.version, |x| {
        x.open("fournit_annulation");
        common::write_head(
            x,
            &ex.server,
            call.request_id,
            call.response_id,
            Code::Ok,
            &[],
        );
        x.leaf("numero_accreditation", &accreditation)
            .leaf("annulee", "true")
            .close("fournit_annulation");
    });
    // The reversal, the stored response and the audit row: one statement.
    let done = store::cancel(
        &mut tx,
        pec.id,
        header.request_id,
        &content,
        &response,
        call.audit_as(Code::Ok),
    )
    .await;
    if let Err(e) = &done {
        if e.as_database_error().and_then(|d| d.constraint()) == Some("reponse_pkey") {
            drop(tx);
            return answer_stored(ex, call, header.request_id, &content).await;
        }
    }
    done?;
    tx.commit().await?;
    Ok(response)
}
