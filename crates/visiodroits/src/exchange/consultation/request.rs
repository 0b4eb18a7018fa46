//! `demande_accreditation`: who asks (`ps`), and which PEC (its accreditation number).

use uuid::Uuid;

use super::super::fields::{self, Declared, Problems};
use super::super::Seen;
use crate::domain::AccreditationNumber;
use crate::soap::Element;

/// A valid `demande_accreditation`.
pub struct ConsultationRequest {
    pub request_id: Uuid,
    pub ps: Declared,
    pub accreditation: AccreditationNumber,
}

/// Reads the request; every faulty field is named. The accreditation number is echoed in an
/// error response as soon as it is read.
pub fn parse(body: &Element) -> (Seen, Result<ConsultationRequest, Vec<String>>) {
    let mut p = Problems::default();
    let mut seen = Seen::default();
    p.unexpected(body, "", &["entete", "ps", "numero_accreditation"]);
    let header = fields::header(body, &mut p);
    seen.client_time = header.as_ref().and_then(|h| h.client_time);
    let ps = p.ps(body, true);
    let accreditation = p.accreditation(body);
    if let Some(a) = &accreditation {
        seen.accreditation = Some(a.to_string());
        seen.echo.push(("numero_accreditation", a.to_string()));
    }
    match (header, ps, accreditation) {
        (Some(h), Some(ps), Some(accreditation)) if p.is_empty() => (
            seen,
            Ok(ConsultationRequest {
                request_id: h.request_id,
                ps,
                accreditation,
            }),
        ),
        _ => (seen, Err(p.0)),
    }
}
