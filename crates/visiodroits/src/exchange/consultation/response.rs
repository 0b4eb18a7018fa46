//! `fournit_accreditation`: the PEC, its status and times, its totals, and each line's
//! justification.

use super::super::head::{self, ServerInfo};
use super::super::Call;
use crate::code::Code;
use crate::domain::{AccreditationNumber, Hundredths};
use crate::soap::writer::envelope;
use crate::store::accreditation::{JustifiedLine, Pec};

pub(super) fn write(
    call: &Call<'_>,
    server: &ServerInfo,
    accreditation: &AccreditationNumber,
    pec: &Pec,
    lines: &[JustifiedLine],
) -> String {
    envelope(call.version, |x| {
        x.open("fournit_accreditation");
        head::write_head(x, server, call.request_id, call.response_id, Code::Ok, &[]);
        x.leaf("numero_accreditation", accreditation.as_str())
            .leaf("numero_dossier", &pec.dossier.to_string())
            .leaf("id_prescription", &pec.prescription.to_string())
            .leaf("statut", pec.status.as_str())
            .leaf_opt("motif", pec.reason.as_deref())
            .leaf("horodatage_pec", &head::stamp(pec.issued))
            .leaf("horodatage_statut", &head::stamp(pec.status_time))
            .leaf("total_facture", &Hundredths::cents_text(pec.total_billed))
            .leaf("total_ro", &Hundredths::cents_text(pec.total_amo))
            .leaf("total_amc", &Hundredths::cents_text(pec.total_amc))
            .leaf(
                "total_reste_a_charge",
                &Hundredths::cents_text(pec.total_patient),
            );
        for l in lines {
            x.open("ligne")
                .leaf("id_ligne", &l.id.to_string())
                .leaf_opt("code_garantie", l.guarantee.as_deref());
            if let Some(rule) = &l.rule {
                x.open("regle")
                    .leaf("code", &rule.code)
                    .leaf("unite", rule.unit.as_str())
                    .leaf("valeur", &rule.value.to_string())
                    .close("regle");
            }
            x.leaf_opt(
                "montant_avant_plafonds",
                l.before_caps.map(Hundredths::cents_text).as_deref(),
            )
            .leaf("code_ligne", &l.code)
            .leaf("montant_amc", &Hundredths::cents_text(l.amc))
            .leaf("reste_a_charge", &Hundredths::cents_text(l.patient));
            if let Some(c) = &l.ceiling {
                x.leaf("plafond_annuel", &Hundredths::cents_text(c.ceiling))
                    .leaf("consomme_avant", &Hundredths::cents_text(c.before))
                    .leaf("consomme_apres", &Hundredths::cents_text(c.after));
            }
            x.close("ligne");
        }
        x.close("fournit_accreditation");
    })
}
