//! Writing responses: `entete_reponse` then `code_reponse`, the head of every response.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::code::Code;
use crate::soap::fault::truncate;
use crate::soap::writer::Xml;

/// Server facts written in every `entete_reponse`.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub instance_id: String,
}

/// `at` as a response writes it: UTC, to the millisecond.
pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Writes `entete_reponse` then `code_reponse`, with `horodatage` now.
pub(crate) fn write_head(
    x: &mut Xml,
    server: &ServerInfo,
    request_id: Option<Uuid>,
    response_id: Uuid,
    code: Code,
    details: &[String],
) {
    write_head_at(
        x,
        server,
        request_id,
        response_id,
        code,
        details,
        &stamp(Utc::now()),
    );
}

/// Writes `entete_reponse` then `code_reponse`, with the `horodatage` given (a PEC's, which its
/// signed proof carries too).
pub(crate) fn write_head_at(
    x: &mut Xml,
    server: &ServerInfo,
    request_id: Option<Uuid>,
    response_id: Uuid,
    code: Code,
    details: &[String],
    time: &str,
) {
    x.open("entete_reponse")
        .leaf("id_serveur", &server.instance_id)
        .leaf("version_serveur", env!("CARGO_PKG_VERSION"))
        .leaf("horodatage", time);
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
