//! The pure wire → domain checks of each message, without any I/O: what the fuzz targets drive
//! (`fuzz/`), and a one-call way to validate a message offline.

use super::common::{self, Problems};
use super::{rights, tarification, Operation};
use crate::soap::envelope::{parse_fragment, XmlLimits};
use crate::soap::Element;

/// Runs every check of the message `body` (the body's element) would go through before the
/// database, and returns the faulty fields (empty when valid).
pub fn check(body: &Element) -> Vec<String> {
    let mut p = Problems::default();
    match Operation::from_element(&body.name) {
        Some(Operation::Rights) => {
            rights::check(body, &mut p);
        }
        Some(Operation::Tarification) => {
            common::header(body, &mut p);
            tarification::ps(body, &mut p);
            tarification::dossier_number(body, &mut p);
            let _ = tarification::carries_identity(body);
            if let Some(el) = body.child("prescription") {
                tarification::check_prescription(el, &mut p);
            }
        }
        Some(Operation::Cancellation) => {
            common::header(body, &mut p);
            tarification::ps(body, &mut p);
            tarification::dossier_number(body, &mut p);
            super::cancellation::accreditation_and_prescription(body, &mut p);
        }
        Some(Operation::Services) => {
            common::header(body, &mut p);
        }
        None => p.add(&body.name, "opération inconnue"),
    }
    p.0
}

/// The checks a decrypted prescription goes through.
pub fn check_decrypted(clear: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(clear) else {
        return vec!["UTF-8".into()];
    };
    match parse_fragment(text, &XmlLimits::default()) {
        Ok(el) => {
            let mut p = Problems::default();
            let _ = el.contains_named(tarification::IDENTITY_ELEMENTS);
            tarification::check_prescription(&el, &mut p);
            p.0
        }
        Err(e) => vec![e.to_string()],
    }
}
