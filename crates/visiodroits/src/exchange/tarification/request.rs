//! `demande_tarification`: who asks (`ps`), on which dossier, as a quote or a commitment, and the
//! prescription — clear, or encrypted to the trusted third party.

use std::collections::BTreeSet;

use base64::Engine;
use uuid::Uuid;

use super::super::fields::{self, Declared, Problems};
use super::super::Seen;
use crate::domain::prescription::{DispensedLine, Prescription};
use crate::domain::DossierNumber;
use crate::soap::Element;

/// A valid `demande_tarification`.
pub struct TarificationRequest {
    pub request_id: Uuid,
    pub ps: Declared,
    pub dossier: DossierNumber,
    /// `PEC` (else `DEVIS`).
    pub commitment: bool,
    pub payload: Payload,
}

/// The prescription as it came.
pub enum Payload {
    Clear(Prescription),
    /// A DER CMS EnvelopedData, and the fingerprint of the certificate the client encrypted to.
    Encrypted {
        der: Vec<u8>,
        declared_fingerprint: Option<String>,
    },
}

/// Reads the request; every faulty field is named. The dossier and the mode are echoed in an
/// error response as soon as they are read.
pub fn parse(body: &Element) -> (Seen, Result<TarificationRequest, Vec<String>>) {
    let mut p = Problems::default();
    let mut seen = Seen::default();
    p.unexpected(
        body,
        "",
        &[
            "entete",
            "ps",
            "numero_dossier",
            "mode",
            "prescription",
            "prescription_chiffree",
        ],
    );
    let header = fields::header(body, &mut p);
    seen.client_time = header.as_ref().and_then(|h| h.client_time);
    let ps = p.ps(body, true);
    let dossier = p.dossier_number(body);
    if let Some(d) = dossier {
        seen.dossier = Some(d);
        seen.echo.push(("numero_dossier", d.to_string()));
    }
    let commitment = match p.text(body, "", "mode", 5) {
        Some("PEC") => Some(true),
        Some("DEVIS") => Some(false),
        Some(_) => {
            p.add("mode", "DEVIS ou PEC attendu");
            None
        }
        None => None,
    };
    if let Some(c) = commitment {
        seen.echo
            .push(("mode", if c { "PEC" } else { "DEVIS" }.to_string()));
    }
    let payload = payload(body, &mut p);
    match (header, ps, dossier, commitment, payload) {
        (Some(h), Some(ps), Some(dossier), Some(commitment), Some(payload)) if p.is_empty() => (
            seen,
            Ok(TarificationRequest {
                request_id: h.request_id,
                ps,
                dossier,
                commitment,
                payload,
            }),
        ),
        _ => (seen, Err(p.0)),
    }
}

/// `prescription` or `prescription_chiffree`, one of them.
fn payload(body: &Element, p: &mut Problems) -> Option<Payload> {
    match (
        body.child("prescription"),
        body.child("prescription_chiffree"),
    ) {
        (Some(_), Some(_)) => {
            p.add(
                "prescription",
                "prescription ou prescription_chiffree, pas les deux",
            );
            None
        }
        (None, None) => {
            p.add("prescription", "élément obligatoire absent");
            None
        }
        (Some(clear), None) => prescription(clear, p).map(Payload::Clear),
        (None, Some(enc)) => {
            p.unexpected(
                enc,
                "prescription_chiffree",
                &["donnees", "empreinte_certificat"],
            );
            let der = p
                .text(enc, "prescription_chiffree", "donnees", usize::MAX)
                .and_then(|d| {
                    let compact: String = d.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .ok();
                    if der.is_none() {
                        p.add("prescription_chiffree/donnees", "base64 attendu");
                    }
                    der
                });
            let declared_fingerprint = p
                .opt_text(enc, "prescription_chiffree", "empreinte_certificat", 64)
                .map(str::to_string);
            Some(Payload::Encrypted {
                der: der?,
                declared_fingerprint,
            })
        }
    }
}

/// A `vd:prescription` (clear, or decrypted), its lines checked one by one.
pub fn prescription(el: &Element, p: &mut Problems) -> Option<Prescription> {
    let path = "prescription";
    p.unexpected(
        el,
        path,
        &[
            "id_prescription",
            "date_prescription",
            "prescripteur",
            "date_facturation",
            "ligne",
        ],
    );
    let id = p.prescription_id(el, path);
    if el.child("date_prescription").is_some() {
        p.date(el, path, "date_prescription");
    }
    if let Some(v) = p.text(el, path, "prescripteur", 9) {
        if v.chars().count() != 9 {
            p.add("prescription/prescripteur", "9 caractères attendus");
        }
    }
    let billing = p.date(el, path, "date_facturation");
    // Not billed in the future: the server's date plus one day (a pharmacy's clock and time zone
    // may be a little ahead of ours, never a day more).
    let latest = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    if billing.is_some_and(|b| b > latest) {
        p.add(
            "prescription/date_facturation",
            "postérieure au lendemain de la date du serveur",
        );
    }
    let raw: Vec<&Element> = el.children_named("ligne").collect();
    if raw.is_empty() || raw.len() > 999 {
        p.add("prescription/ligne", "de 1 à 999 lignes attendues");
    }
    let mut lines = Vec::with_capacity(raw.len());
    let mut seen = BTreeSet::new();
    for (i, l) in raw.iter().enumerate() {
        let lp = format!("prescription/ligne[{}]", i + 1);
        p.unexpected(
            l,
            &lp,
            &[
                "id_ligne",
                "code_prestation",
                "date_execution",
                "quantite",
                "prix_unitaire",
                "montant_facture",
                "base_remboursement",
                "taux_ro",
                "montant_ro",
                "code_cip",
                "code_lpp",
            ],
        );
        let id = p.integer(l, &lp, "id_ligne", 1, 999_999);
        if let Some(id) = id {
            if !seen.insert(id) {
                p.add(&format!("{lp}/id_ligne"), "identifiant de ligne en double");
            }
        }
        let prestation = p.text(l, &lp, "code_prestation", 5).map(str::to_string);
        let execution = p.date(l, &lp, "date_execution");
        if let (Some(e), Some(b)) = (execution, billing) {
            if e > b {
                p.add(
                    &format!("{lp}/date_execution"),
                    "postérieure à la date de facturation",
                );
            }
        }
        let quantity = p.integer(l, &lp, "quantite", 1, 999);
        let unit_price = p.amount(l, &lp, "prix_unitaire");
        let billed = p.amount(l, &lp, "montant_facture");
        if let (Some(q), Some(u), Some(f)) = (quantity, unit_price, billed) {
            if q * u != f {
                p.add(
                    &format!("{lp}/montant_facture"),
                    "doit valoir quantite × prix_unitaire",
                );
            }
        }
        let base = p.amount(l, &lp, "base_remboursement");
        let rate = p.integer(l, &lp, "taux_ro", 0, 100);
        let amo = p.amount(l, &lp, "montant_ro");
        if let (Some(ro), Some(br)) = (amo, base) {
            if ro > br {
                p.add(
                    &format!("{lp}/montant_ro"),
                    "supérieur à la base de remboursement",
                );
            }
        }
        if let (Some(ro), Some(f)) = (amo, billed) {
            if ro > f {
                p.add(&format!("{lp}/montant_ro"), "supérieur au montant facturé");
            }
        }
        let cip = p.opt_text(l, &lp, "code_cip", 13).and_then(|v| {
            let ok = (v.len() == 7 || v.len() == 13) && v.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                p.add(&format!("{lp}/code_cip"), "7 ou 13 chiffres attendus");
            }
            ok.then(|| v.to_string())
        });
        let lpp = p.opt_text(l, &lp, "code_lpp", 7).and_then(|v| {
            let ok = v.chars().count() == 7;
            if !ok {
                p.add(&format!("{lp}/code_lpp"), "7 caractères attendus");
            }
            ok.then(|| v.to_string())
        });
        if let (
            Some(id),
            Some(prestation),
            Some(execution),
            Some(quantity),
            Some(unit_price),
            Some(billed),
            Some(base),
            Some(rate),
            Some(amo),
        ) = (
            id, prestation, execution, quantity, unit_price, billed, base, rate, amo,
        ) {
            lines.push(DispensedLine {
                id: id as i32,
                prestation,
                execution,
                quantity: quantity as i32,
                unit_price,
                billed,
                base,
                rate: rate as i16,
                amo,
                cip,
                lpp,
            });
        }
    }
    Some(Prescription { id: id?, lines })
}
