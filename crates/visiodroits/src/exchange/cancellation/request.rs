//! `demande_annulation`: who asks (`ps`), and which PEC: its dossier, accreditation number and
//! prescription.

use uuid::Uuid;

use super::super::fields::{self, Declared, Problems};
use super::super::Seen;
use crate::domain::{AccreditationNumber, DossierNumber};
use crate::soap::Element;

/// A valid `demande_annulation`.
pub struct CancellationRequest {
    pub request_id: Uuid,
    pub ps: Declared,
    pub dossier: DossierNumber,
    pub accreditation: AccreditationNumber,
    pub prescription: i32,
}

/// Reads the request; every faulty field is named. The accreditation number is echoed in an
/// error response as soon as it is read.
pub fn parse(body: &Element) -> (Seen, Result<CancellationRequest, Vec<String>>) {
    let mut p = Problems::default();
    let mut seen = Seen::default();
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
    let header = fields::header(body, &mut p);
    seen.client_time = header.as_ref().and_then(|h| h.client_time);
    let ps = p.ps(body, true);
    let dossier = p.dossier_number(body);
    seen.dossier = dossier;
    let accreditation = p.accreditation(body);
    let prescription = p.prescription_id(body, "");
    if let Some(a) = &accreditation {
        seen.accreditation = Some(a.to_string());
        seen.echo.push(("numero_accreditation", a.to_string()));
        seen.echo.push(("annulee", "false".into()));
    }
    match (header, ps, dossier, accreditation, prescription) {
        (Some(h), Some(ps), Some(dossier), Some(accreditation), Some(prescription))
            if p.is_empty() =>
        {
            (
                seen,
                Ok(CancellationRequest {
                    request_id: h.request_id,
                    ps,
                    dossier,
                    accreditation,
                    prescription,
                }),
            )
        }
        _ => (seen, Err(p.0)),
    }
}
