//! `fournit_droits`: the dossier number and its expiry, then the rights answered — the AMC, the
//! contract and, per domain, the guarantee, its period and its prestation rules.

use chrono::{DateTime, SecondsFormat, Utc};

use super::super::head::{self, ServerInfo};
use super::super::Call;
use crate::code::Code;
use crate::domain::rights::Guarantee;
use crate::domain::DossierNumber;
use crate::soap::writer::envelope;

/// The response to a successful `demande_droits`; `chosen` holds at least one guarantee, all of
/// one contract.
pub(super) fn write(
    call: &Call<'_>,
    server: &ServerInfo,
    number: DossierNumber,
    expiration: DateTime<Utc>,
    (amc_number, amc_name): (&str, &str),
    chosen: &[Guarantee],
) -> String {
    let contract = &chosen[0];
    envelope(call.version, |x| {
        x.open("fournit_droits");
        head::write_head(x, server, call.request_id, call.response_id, Code::Ok, &[]);
        x.open("dossier")
            .leaf("numero_dossier", &number.to_string())
            .leaf(
                "expiration",
                &expiration.to_rfc3339_opts(SecondsFormat::Secs, true),
            )
            .close("dossier");
        x.open("droits");
        x.open("amc")
            .leaf("numero_amc", amc_number)
            .leaf("nom", amc_name)
            .close("amc");
        x.open("contrat")
            .leaf("numero_contrat", &contract.contract_number)
            .leaf_opt("numero_adherent", contract.adherent_number.as_deref())
            .leaf(
                "responsable",
                if contract.responsible {
                    "true"
                } else {
                    "false"
                },
            )
            .close("contrat");
        for g in chosen {
            x.open("domaine")
                .leaf("code", &g.domain)
                .leaf("libelle", &g.label)
                .leaf("code_garantie", &g.code)
                .leaf("priorite", &format!("{:02}", g.priority))
                .leaf_opt("reseau", g.network.as_deref());
            x.open("periode")
                .leaf("debut", &g.start.to_string())
                .leaf("fin", &g.end.to_string())
                .close("periode");
            for r in &g.rules {
                x.open("prestation")
                    .leaf("code", &r.code)
                    .leaf("unite", r.unit.as_str())
                    .leaf("valeur", &r.value.to_string())
                    .leaf_opt(
                        "plafond_annuel",
                        r.annual_ceiling.map(|c| c.to_string()).as_deref(),
                    )
                    .close("prestation");
            }
            x.close("domaine");
        }
        x.close("droits");
        x.close("fournit_droits");
    })
}
