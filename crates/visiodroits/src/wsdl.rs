//! The WSDL and schema of `wsdl/`, embedded in the binary: the single source of truth for the
//! message shapes.

/// The address written in `wsdl/visiodroits.wsdl`; replaced by the URL the caller used.
pub(crate) const DEFAULT_ADDRESS: &str = "https://localhost:8443/visiodroits";

const WSDL: &str = include_str!("../../../wsdl/visiodroits.wsdl");
const XSD: &str = include_str!("../../../wsdl/visiodroits.xsd");

/// The WSDL with its service address (and schema location) set to `base`.
pub fn wsdl(base: &str) -> String {
    WSDL.replace(DEFAULT_ADDRESS, base)
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
    fn hostile_hosts_are_not_echoed() {
        assert!(is_plain_host("127.0.0.1:8443"));
        assert!(is_plain_host("[::1]:8443"));
        assert!(!is_plain_host("a\"><x"));
        assert!(!is_plain_host(""));
    }
}
