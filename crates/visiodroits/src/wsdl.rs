//! The WSDL and schema of `wsdl/`, embedded in the binary: the single source of truth for the
//! message shapes.

/// The address written in `wsdl/visiodroits.wsdl`; replaced by the URL the caller used.
pub(crate) const DEFAULT_ADDRESS: &str = "https://localhost:8443/visiodroits";

const WSDL: &str = include_str!("../../../wsdl/visiodroits.wsdl");
const XSD: &str = include_str!("../../../wsdl/visiodroits.xsd");

/// How `wsdl/visiodroits.wsdl` imports the schema: the file beside it, so that a checkout is
/// enough to generate a client.
const SCHEMA_IMPORT: &str =
    r#"<xs:import namespace="urn:visiodroits:v1" schemaLocation="visiodroits.xsd"/>"#;

/// The WSDL with its service address set to `base`, importing the schema from `base`.
pub fn wsdl(base: &str) -> String {
    WSDL.replace(DEFAULT_ADDRESS, base).replace(
        SCHEMA_IMPORT,
        &format!(r#"<xs:import namespace="urn:visiodroits:v1" schemaLocation="{base}?xsd=visiodroits.xsd"/>"#),
    )
}

/// The WSDL as one file, for tools that fetch nothing else: the schema inlined in `wsdl:types`
/// in place of the wrapper that imports it.
pub fn wsdl_single(base: &str) -> String {
    let doc = WSDL.replace(DEFAULT_ADDRESS, base);
    let (Some(start), Some(end)) = (doc.find("<wsdl:types>"), doc.find("</wsdl:types>")) else {
        unreachable!("wsdl/visiodroits.wsdl has a wsdl:types element (a unit test reads it)");
    };
    let schema = &XSD[XSD.find("<xs:schema").unwrap_or(0)..];
    format!(
        "{}<wsdl:types>\n{}  {}",
        &doc[..start],
        schema.trim_end(),
        &doc[end..]
    )
}

/// A schema file by name.
pub fn xsd(name: &str) -> Option<&'static str> {
    (name == "visiodroits.xsd").then_some(XSD)
}

/// A Host header value we are willing to write back into a document: name or address and port.
pub(crate) fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_follows_the_caller() {
        let doc = wsdl("https://vd.example:9443/visiodroits");
        assert!(doc.contains(r#"location="https://vd.example:9443/visiodroits""#));
        assert!(doc.contains("https://vd.example:9443/visiodroits?xsd=visiodroits.xsd"));
        assert!(!doc.contains(DEFAULT_ADDRESS));
    }

    #[test]
    fn the_repository_wsdl_imports_the_schema_beside_it() {
        assert!(WSDL.contains(SCHEMA_IMPORT));
        let single = wsdl_single("https://vd.example/visiodroits");
        assert!(!single.contains("schemaLocation"), "{single}");
        assert!(single.contains(r#"<xs:element name="demande_droits""#));
        assert_eq!(single.matches("<xs:schema").count(), 1);
        assert!(single.contains(r#"location="https://vd.example/visiodroits""#));
    }

    #[test]
    fn hostile_hosts_are_not_echoed() {
        assert!(is_plain_host("127.0.0.1:8443"));
        assert!(is_plain_host("[::1]:8443"));
        assert!(!is_plain_host("a\"><x"));
        assert!(!is_plain_host(""));
    }
}
