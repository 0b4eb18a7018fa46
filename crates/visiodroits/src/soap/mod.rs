//! SOAP 1.2 and 1.1 envelopes: reading requests, writing responses and Faults.

pub mod envelope;
pub(crate) mod fault;

pub use envelope::Envelope;
pub use envelope::{Element, EnvelopeError, XmlLimits};

/// The versions, namespaces and the message writer are shared with the client.
pub use visiodroits_wire::xml as writer;
pub use visiodroits_wire::{SoapVersion, SOAP11_NS, SOAP12_NS, VD_NS};

/// What the Content-Type header says of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    pub version: SoapVersion,
    /// The SOAP 1.2 `action` parameter, unquoted.
    pub action: Option<String>,
}

/// Parses a request Content-Type: `application/soap+xml` is SOAP 1.2, `text/xml` SOAP 1.1. A
/// charset other than UTF-8 is refused (`Err(true)`); an unknown media type is `Err(false)`.
pub fn parse_content_type(value: &str) -> Result<ContentType, bool> {
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let version = match media.as_str() {
        "application/soap+xml" => SoapVersion::V12,
        "text/xml" => SoapVersion::V11,
        _ => return Err(false),
    };
    let mut action = None;
    for param in parts {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "charset" if !v.eq_ignore_ascii_case("utf-8") => return Err(true),
            "action" => action = Some(v.to_string()),
            _ => {}
        }
    }
    Ok(ContentType { version, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ct = parse_content_type(
            r#"application/soap+xml; charset=utf-8; action="urn:visiodroits:v1:ServicesOuverts""#,
        )
        .unwrap();
        assert_eq!(ct.version, SoapVersion::V12);
        assert_eq!(
            ct.action.as_deref(),
            Some("urn:visiodroits:v1:ServicesOuverts")
        );
        assert_eq!(
            parse_content_type("text/xml").unwrap().version,
            SoapVersion::V11
        );
        assert_eq!(parse_content_type("text/xml; charset=UTF-16"), Err(true));
        assert_eq!(parse_content_type("application/json"), Err(false));
    }
}
