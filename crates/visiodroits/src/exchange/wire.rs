//! The pure wire → domain checks of each message, without any I/O: what the fuzz targets drive
//! (`fuzz/`), and a one-call way to validate a message offline.

use super::fields::Problems;
use super::{cancellation, consultation, rights, services, tarification, Operation};
use crate::soap::envelope::{parse_fragment, XmlLimits};
use crate::soap::Element;

/// Runs every check of the message `body` (the body's element) would go through before the
/// database, and returns the faulty fields (empty when valid).
pub fn check(body: &Element) -> Vec<String> {
    let problems = match Operation::from_element(&body.name) {
        Some(Operation::Rights) => rights::request::parse(body).1.err(),
        Some(Operation::Tarification) => {
            let _ = tarification::carries_identity(body);
            tarification::request::parse(body).1.err()
        }
        Some(Operation::Cancellation) => cancellation::request::parse(body).1.err(),
        Some(Operation::Consultation) => consultation::request::parse(body).1.err(),
        Some(Operation::Services) => services::check(body),
        None => Some(vec![format!("{}: opération inconnue", body.name)]),
    };
    problems.unwrap_or_default()
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
            tarification::request::prescription(&el, &mut p);
            p.0
        }
        Err(e) => vec![e.to_string()],
    }
}
