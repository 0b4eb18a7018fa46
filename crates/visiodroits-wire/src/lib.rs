//! What the Visiodroits server and its tools (client, benchmark, development kit) share, so that
//! each writes it once: the SOAP versions and namespaces, the XML writer of messages, a strict DER
//! reader and writer, PEM errors in words, the CRL directory's write convention, and how a binary
//! runs.

pub mod binary;
pub mod der;
pub mod fs;
pub mod pem;
pub mod xml;

pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Target namespace of every Visiodroits message.
pub const VD_NS: &str = "urn:visiodroits:v1";

/// SOAP 1.2 (`application/soap+xml`) or SOAP 1.1 (`text/xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_NS,
            SoapVersion::V12 => SOAP12_NS,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}
