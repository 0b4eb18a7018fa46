//! `fournit_tarification`: the dossier, the mode, and the result — totals, the accreditation
//! number of a PEC, and per line the AMC's amount, what is left to the patient and the line code.

use super::super::head::{self, ServerInfo};
use super::super::Call;
use crate::code::Code;
use crate::domain::tarification::Outcome;
use crate::domain::{AccreditationNumber, DossierNumber, Hundredths};
use crate::soap::writer::envelope;

/// The response to a computed tarification; a PEC's with its accreditation number and its signed
/// proof (base64), written at `time`.
pub(super) fn write(
    call: &Call<'_>,
    server: &ServerInfo,
    time: &str,
    dossier: DossierNumber,
    prescription: i32,
    outcome: &Outcome,
    commitment: Option<(&AccreditationNumber, &str)>,
) -> String {
    let accreditation = commitment.map(|(a, _)| a);
    envelope(call.version, |x| {
        x.open("fournit_tarification");
        head::write_head_at(
            x,
            server,
            call.request_id,
            call.response_id,
            Code::Ok,
            &[],
            time,
        );
        x.leaf("numero_dossier", &dossier.to_string()).leaf(
            "mode",
            if accreditation.is_some() {
                "PEC"
            } else {
                "DEVIS"
            },
        );
        x.open("resultat")
            .leaf("id_prescription", &prescription.to_string())
            .leaf(
                "total_facture",
                &Hundredths::cents_text(outcome.total_billed),
            )
            .leaf("total_ro", &Hundredths::cents_text(outcome.total_amo))
            .leaf("total_amc", &Hundredths::cents_text(outcome.total_amc))
            .leaf(
                "total_reste_a_charge",
                &Hundredths::cents_text(outcome.total_patient),
            )
            .leaf_opt(
                "numero_accreditation",
                accreditation.map(AccreditationNumber::as_str),
            )
            .leaf_opt("preuve", commitment.map(|(_, p)| p));
        for r in &outcome.lines {
            x.open("ligne")
                .leaf("id_ligne", &r.id.to_string())
                .leaf("montant_amc", &Hundredths::cents_text(r.amc))
                .leaf("reste_a_charge", &Hundredths::cents_text(r.patient))
                .leaf_opt("code_garantie", r.guarantee.as_deref())
                .leaf("code_ligne", r.code.as_str())
                .leaf("libelle_ligne", r.code.label())
                .close("ligne");
        }
        x.close("resultat");
        x.close("fournit_tarification");
    })
}
