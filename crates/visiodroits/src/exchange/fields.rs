//! Reading requests: the collection of faulty fields for the 6000 `detail` list, and the readers of
//! the fields several messages share (`entete`, `ps`, dates, amounts, integers, the dossier and
//! accreditation numbers), each written once.

use chrono::{DateTime, FixedOffset, NaiveDate};
use uuid::Uuid;

use crate::domain::{AccreditationNumber, DossierNumber, Hundredths, PsId, StructureNumber};
use crate::soap::Element;

/// Faulty fields of a request, each named by its XML path (spec: one `detail` per field).
#[derive(Debug, Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn add(&mut self, path: &str, what: &str) {
        self.0.push(format!("{path}: {what}"));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reports children that are not part of the message.
    pub(crate) fn unexpected(&mut self, el: &Element, path: &str, allowed: &[&str]) {
        for name in el.unexpected_children(allowed) {
            let p = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            self.add(&p, "élément inattendu");
        }
    }

    /// A required text child of at most `max` characters.
    pub fn text<'a>(
        &mut self,
        el: &'a Element,
        path: &str,
        name: &str,
        max: usize,
    ) -> Option<&'a str> {
        // The path is only spelled out for a problem: valid requests are the hot path.
        let problem = match el.child(name) {
            None => "élément obligatoire absent".to_string(),
            Some(c) => {
                let v = c.value();
                let n = v.chars().count();
                if n == 0 {
                    "valeur vide".to_string()
                } else if n > max {
                    format!("{max} caractères au plus")
                } else {
                    return Some(v);
                }
            }
        };
        self.add(&join(path, name), &problem);
        None
    }

    /// An optional text child of at most `max` characters.
    pub(crate) fn opt_text<'a>(
        &mut self,
        el: &'a Element,
        path: &str,
        name: &str,
        max: usize,
    ) -> Option<&'a str> {
        el.child(name)?;
        self.text(el, path, name, max)
    }
}

pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
    }
}

/// The request header (`entete`).
#[derive(Debug, Clone)]
pub struct Header {
    pub software_id: String,
    pub software_version: String,
    pub request_id: Uuid,
    pub client_time: Option<DateTime<FixedOffset>>,
}

/// What can be echoed even when the header is faulty.
pub(crate) fn request_id_of(body: &Element) -> Option<Uuid> {
    body.child("entete")?
        .child("id_requete")
        .and_then(|e| Uuid::parse_str(e.value()).ok())
}

/// Reads `entete`; problems go to `p`.
pub fn header(body: &Element, p: &mut Problems) -> Option<Header> {
    let Some(h) = body.child("entete") else {
        p.add("entete", "élément obligatoire absent");
        return None;
    };
    p.unexpected(
        h,
        "entete",
        &[
            "id_logiciel",
            "version_logiciel",
            "id_requete",
            "horodatage",
        ],
    );
    let software_id = p.text(h, "entete", "id_logiciel", 36);
    let software_version = p.text(h, "entete", "version_logiciel", 15);
    let request_id = p.text(h, "entete", "id_requete", 36).and_then(|v| {
        let parsed = Uuid::parse_str(v).ok().filter(|_| v.len() == 36);
        if parsed.is_none() {
            p.add("entete/id_requete", "UUID attendu");
        }
        parsed
    });
    let client_time = match p.opt_text(h, "entete", "horodatage", 40) {
        None => None,
        Some(v) => match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Some(t),
            Err(_) => {
                p.add("entete/horodatage", "date-heure avec décalage attendue");
                None
            }
        },
    };
    Some(Header {
        software_id: software_id?.to_string(),
        software_version: software_version?.to_string(),
        request_id: request_id?,
        client_time,
    })
}

/// Parses an `xs:date`, with or without a time zone.
pub(crate) fn parse_date(v: &str) -> Option<NaiveDate> {
    let date = v.get(..10)?;
    let zone = &v[10..];
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone.as_bytes()[3] == b':');
    if !zone_ok {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// Maximum amount: 99999.99 in cents.
pub(crate) const MAX_AMOUNT: i64 = 9_999_999;

impl Problems {
    /// A required date child.
    pub fn date(&mut self, el: &Element, path: &str, name: &str) -> Option<NaiveDate> {
        let v = self.text(el, path, name, 16)?;
        let d = parse_date(v);
        if d.is_none() {
            self.add(&join(path, name), "date AAAA-MM-JJ attendue");
        }
        d
    }

    /// A required amount child, in cents.
    pub fn amount(&mut self, el: &Element, path: &str, name: &str) -> Option<i64> {
        let v = self.text(el, path, name, 9)?;
        let a = Hundredths::parse(v, MAX_AMOUNT);
        if a.is_none() {
            self.add(&join(path, name), "montant de 0 à 99999.99 attendu");
        }
        a.map(Hundredths::get)
    }

    /// A required integer child in `min..=max`.
    pub fn integer(
        &mut self,
        el: &Element,
        path: &str,
        name: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let v = self.text(el, path, name, 10)?;
        match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                self.add(
                    &join(path, name),
                    &format!("entier de {min} à {max} attendu"),
                );
                None
            }
        }
    }

    /// `numero_dossier`.
    pub(crate) fn dossier_number(&mut self, body: &Element) -> Option<DossierNumber> {
        self.text(body, "", "numero_dossier", 36).and_then(|v| {
            let n = DossierNumber::parse(v);
            if n.is_none() {
                self.add("numero_dossier", "UUID attendu");
            }
            n
        })
    }

    /// `numero_accreditation`.
    pub fn accreditation(&mut self, body: &Element) -> Option<AccreditationNumber> {
        self.text(body, "", "numero_accreditation", 16)
            .and_then(|v| {
                let n = AccreditationNumber::parse(v);
                if n.is_none() {
                    self.add(
                        "numero_accreditation",
                        "16 caractères au format de l'accréditation attendus",
                    );
                }
                n
            })
    }

    /// `id_prescription`.
    pub(crate) fn prescription_id(&mut self, el: &Element, path: &str) -> Option<i32> {
        self.integer(el, path, "id_prescription", 1, 999_999_999)
            .map(|n| n as i32)
    }

    /// The `ps` block: who calls and, when the message names it, where. `structure_required`
    /// for tarification and cancellation (the rights exchange may take it from a CPE card).
    pub fn ps(&mut self, body: &Element, structure_required: bool) -> Option<Declared> {
        let Some(ps) = body.child("ps") else {
            self.add("ps", "élément obligatoire absent");
            return None;
        };
        self.unexpected(ps, "ps", &["identifiant_ps", "numero_structure", "nom"]);
        let id = self
            .text(ps, "ps", "identifiant_ps", 20)
            .and_then(PsId::parse);
        let raw = if structure_required {
            self.text(ps, "ps", "numero_structure", 9).map(Some)
        } else {
            Some(self.opt_text(ps, "ps", "numero_structure", 9))
        };
        let structure = raw.map(|s| {
            s.and_then(|s| {
                let n = StructureNumber::parse(s);
                if n.is_none() {
                    self.add("ps/numero_structure", "9 chiffres attendus");
                }
                n
            })
        });
        self.opt_text(ps, "ps", "nom", 45);
        Some(Declared {
            ps_id: id?,
            structure: structure?,
        })
    }
}

/// What the `ps` block declares.
#[derive(Debug, Clone)]
pub struct Declared {
    pub ps_id: PsId,
    pub structure: Option<StructureNumber>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("2026-11-22"),
            NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        assert!(parse_date("2026-11-22Z").is_some());
        assert!(parse_date("2026-11-22+01:00").is_some());
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_date("22/11/2026").is_none());
        assert!(parse_date("2026-11-22T10:00:00").is_none());
    }
}
