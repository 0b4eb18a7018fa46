//! `demande_services`: `entete`, and optionally the one AMC asked about.

use super::super::fields::{self, Problems};
use super::super::Seen;
use crate::domain::AmcNumber;
use crate::soap::Element;

pub(super) struct ServicesRequest {
    pub only: Option<AmcNumber>,
}

pub(super) fn parse(body: &Element) -> (Seen, Result<ServicesRequest, Vec<String>>) {
    let mut p = Problems::default();
    let mut seen = Seen::default();
    p.unexpected(body, "", &["entete", "numero_amc"]);
    if let Some(h) = fields::header(body, &mut p) {
        seen.client_time = h.client_time;
    }
    let only = p.opt_text(body, "", "numero_amc", 10).and_then(|n| {
        let a = AmcNumber::parse(n);
        if a.is_none() {
            p.add("numero_amc", "8 à 10 chiffres attendus");
        }
        a
    });
    if !p.is_empty() {
        return (seen, Err(p.0));
    }
    seen.amc = only.as_ref().map(|a| a.as_str().to_string());
    (seen, Ok(ServicesRequest { only }))
}
