//! SOAP Faults: `Code`/`Reason`/`Detail` in SOAP 1.2, `faultcode`/`faultstring`/`detail` in
//! SOAP 1.1, with a `vd:code_reponse` in the detail, at the HTTP status of the SOAP binding.

use super::writer::{envelope, Xml};
use super::SoapVersion;
use crate::code::{Code, FaultKind};

/// A Fault ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    /// SOAP-level code when it is not the kind's default (`VersionMismatch`, `MustUnderstand`).
    pub soap_code: Option<&'static str>,
    pub code: Code,
    /// Fixed texts naming what was wrong, never request content.
    pub details: Vec<String>,
}

impl Fault {
    /// A Fault for `code` (8001–8003, 0999) with its own kind.
    pub(crate) fn for_code(code: Code) -> Self {
        Fault {
            kind: code.fault().unwrap_or(FaultKind::Sender),
            soap_code: None,
            code,
            details: Vec::new(),
        }
    }

    /// A refusal of the request itself (6000, `Sender`) with one detail.
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Fault {
            kind: FaultKind::Sender,
            soap_code: None,
            code: Code::InvalidRequest,
            details: vec![detail.into()],
        }
    }

    /// The HTTP status of this Fault in `version`, where the SOAP HTTP bindings put it (generated
    /// clients read a Fault nowhere else): SOAP 1.1, 500 for every Fault (WS-I Basic Profile 1.1,
    /// R1126); SOAP 1.2, 400 for `Sender` (access refusals included) and 500 for `Receiver`,
    /// `VersionMismatch` and `MustUnderstand` (SOAP 1.2 Part 2, 7.5.1.2).
    pub(crate) fn http_status(&self, version: SoapVersion) -> http::StatusCode {
        let server_side = self.kind == FaultKind::Receiver || self.soap_code.is_some();
        match version {
            SoapVersion::V12 if !server_side => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Fault envelope in `version`.
    pub(crate) fn to_xml(&self, version: SoapVersion) -> String {
        envelope(version, |x| match version {
            SoapVersion::V12 => self.write12(x),
            SoapVersion::V11 => self.write11(x),
        })
    }

    fn write12(&self, x: &mut Xml) {
        let value = self.soap_code.unwrap_or(match self.kind {
            FaultKind::Receiver => "Receiver",
            _ => "Sender",
        });
        x.raw("<env:Fault><env:Code><env:Value>env:")
            .raw(value)
            .raw("</env:Value>");
        if self.kind == FaultKind::Access {
            x.raw("<env:Subcode><env:Value>vd:Acces</env:Value></env:Subcode>");
        }
        x.raw("</env:Code><env:Reason><env:Text xml:lang=\"fr\">")
            .text(self.code.label())
            .raw("</env:Text></env:Reason><env:Detail>");
        self.write_code(x);
        x.raw("</env:Detail></env:Fault>");
    }

    fn write11(&self, x: &mut Xml) {
        // No dot notation (`Client.Acces`, which the WS-I Basic Profile discourages and generated
        // clients do not map): an access refusal is a `Client` Fault whose detail's code says which.
        let value = self.soap_code.unwrap_or(match self.kind {
            FaultKind::Receiver => "Server",
            FaultKind::Access | FaultKind::Sender => "Client",
        });
        x.raw("<env:Fault><faultcode>env:")
            .raw(value)
            .raw("</faultcode><faultstring xml:lang=\"fr\">")
            .text(self.code.label())
            .raw("</faultstring><detail>");
        self.write_code(x);
        x.raw("</detail></env:Fault>");
    }

    fn write_code(&self, x: &mut Xml) {
        x.open("code_reponse")
            .leaf("code", self.code.as_str())
            .leaf("libelle", self.code.label());
        for d in &self.details {
            x.leaf("detail", &truncate(d, 150));
        }
        x.close("code_reponse");
    }
}

/// Cuts a text to `max` characters (schema limit of `libelle` and `detail`).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_fault_has_the_acces_subcode_in_soap12_and_is_a_plain_client_fault_in_soap11() {
        let f = Fault::for_code(Code::CertificatePolicy);
        let xml = f.to_xml(SoapVersion::V12);
        assert!(
            xml.contains(
                "<env:Value>env:Sender</env:Value><env:Subcode><env:Value>vd:Acces</env:Value>"
            ),
            "{xml}"
        );
        assert!(xml.contains("<vd:code>8003</vd:code>"));
        let xml = f.to_xml(SoapVersion::V11);
        assert!(xml.contains("<faultcode>env:Client</faultcode>"), "{xml}");
        assert!(xml.contains("<vd:code>8003</vd:code>"), "{xml}");
    }

    #[test]
    fn statuses_follow_the_soap_http_bindings() {
        let invalid = Fault::invalid("x");
        let access = Fault::for_code(Code::PsMismatch);
        let technical = Fault::for_code(Code::Technical);
        let mut mismatch = Fault::invalid("x");
        mismatch.soap_code = Some("VersionMismatch");
        let mut must = Fault::invalid("x");
        must.soap_code = Some("MustUnderstand");
        let v12: Vec<u16> = [&invalid, &access, &technical, &mismatch, &must]
            .iter()
            .map(|f| f.http_status(SoapVersion::V12).as_u16())
            .collect();
        assert_eq!(v12, [400, 400, 500, 500, 500]);
        for f in [&invalid, &access, &technical, &mismatch, &must] {
            assert_eq!(f.http_status(SoapVersion::V11), 500, "{f:?}");
        }
    }

    #[test]
    fn technical_fault_is_receiver() {
        let f = Fault::for_code(Code::Technical);
        assert!(f
            .to_xml(SoapVersion::V11)
            .contains("<faultcode>env:Server</faultcode>"));
        assert!(f
            .to_xml(SoapVersion::V12)
            .contains("<env:Value>env:Receiver</env:Value>"));
    }
}
