//! Blocks every message shares: `entete` in, `entete_reponse` and `code_reponse` out, and the
//! collection of faulty fields for the 6000 `detail` list.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use uuid::Uuid;

use crate::code::Code;
use crate::soap::fault::truncate;
use crate::soap::writer::Xml;
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
    pub fn unexpected(&mut self, el: &Element, path: &str, allowed: &[&str]) {
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
    pub fn opt_text<'a>(
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
pub fn request_id_of(body: &Element) -> Option<Uuid> {
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

/// Server facts written in every `entete_reponse`.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub instance_id: String,
}

/// Writes `entete_reponse` then `code_reponse`.
pub fn write_head(
    x: &mut Xml,
    server: &ServerInfo,
    request_id: Option<Uuid>,
    response_id: Uuid,
    code: Code,
    details: &[String],
) {
    x.open("entete_reponse")
        .leaf("id_serveur", &server.instance_id)
        .leaf("version_serveur", env!("CARGO_PKG_VERSION"))
        .leaf(
            "horodatage",
            &Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        );
    if let Some(id) = request_id {
        x.leaf("id_requete", &id.to_string());
    }
    x.leaf("id_reponse", &response_id.to_string())
        .close("entete_reponse");
    x.open("code_reponse")
        .leaf("code", code.as_str())
        .leaf("libelle", code.label());
    for d in details {
        x.leaf("detail", &truncate(d, 150));
    }
    x.close("code_reponse");
}
