//! What the server reads in a certificate, parsed once: names (every RDN, multi-valued ones too,
//! every ASN.1 string type), validity, key usage, extended key usage, certificate policies, CRL
//! distribution points and key identifiers.
//!
//! Real CPS cards put SN, CN and GN in one multi-valued RDN; older card CAs write names as
//! BMPString or T61String. Both are read here the same way as a PrintableString.

use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The usages a client certificate must allow (spec: `digitalSignature` and `clientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `None`: no KeyUsage extension.
    pub digital_signature: Option<bool>,
    /// `None`: no ExtendedKeyUsage extension.
    pub client_auth: Option<bool>,
}

/// Why a certificate may not authenticate a client (refused at the handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UsageError {
    #[error("no_key_usage")]
    KeyUsageAbsent,
    #[error("no_digital_signature")]
    DigitalSignatureNotAllowed,
    #[error("no_extended_key_usage")]
    ExtendedKeyUsageAbsent,
    #[error("no_client_auth")]
    ClientAuthNotAllowed,
}

impl Usage {
    /// A client authentication certificate: KeyUsage with `digitalSignature` and an
    /// ExtendedKeyUsage with `clientAuth` (a CPS card's signature certificate has neither).
    pub(crate) fn check_client_auth(self) -> Result<(), UsageError> {
        match self.digital_signature {
            None => return Err(UsageError::KeyUsageAbsent),
            Some(false) => return Err(UsageError::DigitalSignatureNotAllowed),
            Some(true) => {}
        }
        match self.client_auth {
            None => Err(UsageError::ExtendedKeyUsageAbsent),
            Some(false) => Err(UsageError::ClientAuthNotAllowed),
            Some(true) => Ok(()),
        }
    }
}

/// One certificate as the server uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// `SN=…+CN=…+GN=…,title=…,C=FR`: RDNs joined by `,`, the values of one RDN by `+`.
    pub subject: String,
    pub issuer: String,
    /// Every CN value of the subject, whatever RDN holds it.
    pub common_names: Vec<String>,
    /// Every OU value of the subject.
    pub units: Vec<String>,
    /// Serial without leading zero bytes.
    pub serial: Vec<u8>,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub usage: Usage,
    /// Certificate policy OIDs, dotted.
    pub policies: Vec<String>,
    /// URIs of the CRL distribution points (full names).
    pub crl_uris: Vec<String>,
    pub is_ca: bool,
    /// KeyUsage `cRLSign`; `None` without a KeyUsage extension.
    pub crl_sign: Option<bool>,
    pub subject_key_id: Option<Vec<u8>>,
}

impl CertInfo {
    /// Parses a certificate; `None` when it is not one.
    pub fn parse(der: &[u8]) -> Option<CertInfo> {
        let (rest, cert) = X509Certificate::from_der(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        Some(Self::of(&cert, der))
    }

    fn of(cert: &X509Certificate<'_>, der: &[u8]) -> CertInfo {
        let subject = cert.subject();
        let mut info = CertInfo {
            subject: name_to_string(subject),
            issuer: name_to_string(cert.issuer()),
            common_names: values(subject, "2.5.4.3"),
            units: values(subject, "2.5.4.11"),
            serial: super::crl::normalise_serial(cert.raw_serial()).to_vec(),
            fingerprint: hex::encode(Sha256::digest(der)),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            usage: Usage {
                digital_signature: None,
                client_auth: None,
            },
            policies: Vec::new(),
            crl_uris: Vec::new(),
            is_ca: cert.is_ca(),
            crl_sign: None,
            subject_key_id: None,
        };
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::KeyUsage(ku) => {
                    info.usage.digital_signature = Some(ku.digital_signature());
                    info.crl_sign = Some(ku.crl_sign());
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    info.usage.client_auth = Some(eku.client_auth)
                }
                ParsedExtension::CertificatePolicies(policies) => {
                    info.policies = policies
                        .iter()
                        .map(|p| p.policy_id.to_id_string())
                        .collect()
                }
                ParsedExtension::CRLDistributionPoints(points) => {
                    for p in points.iter() {
                        if let Some(DistributionPointName::FullName(names)) = &p.distribution_point
                        {
                            info.crl_uris.extend(names.iter().filter_map(|n| match n {
                                GeneralName::URI(u) => Some((*u).to_string()),
                                _ => None,
                            }));
                        }
                    }
                }
                ParsedExtension::SubjectKeyIdentifier(ki) => {
                    info.subject_key_id = Some(ki.0.to_vec())
                }
                _ => {}
            }
        }
        info
    }

    /// Upper-case hex of the serial (the audit's form).
    pub(crate) fn serial_hex(&self) -> String {
        hex::encode_upper(&self.serial)
    }
}

/// The values of attribute `oid` (dotted) anywhere in `name`, decoded.
fn values(name: &X509Name<'_>, oid: &str) -> Vec<String> {
    name.iter_attributes()
        .filter(|a| a.attr_type().to_id_string() == oid)
        .filter_map(|a| decode(a.attr_value().header.tag().0, a.attr_value().data))
        .collect()
}

/// The short name of the attribute types found in IGC-Santé subjects.
fn short_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.42" => "GN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "1.2.840.113549.1.9.1" => "emailAddress",
        other => other,
    }
}

/// A name for logs and the audit: RDNs in order, joined by `,`; a multi-valued RDN's values by
/// `+` (`SN=PHARMACH0007512+CN=899700075122+GN=CAROLE,title=Pharmacien,C=FR`).
pub(crate) fn name_to_string(name: &X509Name<'_>) -> String {
    name.iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|a| {
                    let oid = a.attr_type().to_id_string();
                    let value = decode(a.attr_value().header.tag().0, a.attr_value().data)
                        .unwrap_or_else(|| format!("#{}", hex::encode(a.attr_value().data)));
                    format!("{}={value}", short_name(&oid))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Decodes a directory string of any ASN.1 string type to UTF-8.
pub(crate) fn decode(tag: u32, data: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, NumericString, PrintableString, IA5String, VisibleString
        12 | 18 | 19 | 22 | 26 => String::from_utf8(data.to_vec()).ok(),
        // TeletexString (T61): in practice Latin-1, which maps byte for byte to Unicode.
        20 => Some(data.iter().map(|b| char::from(*b)).collect()),
        // BMPString: UTF-16 big-endian.
        30 => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UTF-32 big-endian.
        28 => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visiodroits_wire::der;

    #[test]
    fn every_string_type_decodes() {
        assert_eq!(decode(19, b"FR").as_deref(), Some("FR"));
        assert_eq!(decode(12, "CÉLINE".as_bytes()).as_deref(), Some("CÉLINE"));
        assert_eq!(
            decode(30, &[0, b'C', 0, 0xc9, 0, b'L']).as_deref(),
            Some("CÉL")
        );
        assert_eq!(decode(20, &[b'C', 0xc9]).as_deref(), Some("CÉ"));
        assert_eq!(
            decode(28, &[0, 0, 0, b'A', 0, 0, 0, 0xc9]).as_deref(),
            Some("AÉ")
        );
        assert_eq!(decode(30, &[0, b'C', 0]), None, "odd-length BMPString");
        assert_eq!(decode(4, b"x"), None, "an OCTET STRING is not a name");
    }

    #[test]
    fn a_multi_valued_rdn_reads_as_one_rdn_of_three_values() {
        let der = der::name(&[
            &[
                ("2.5.4.4", der::PRINTABLE_STRING, "PHARMACH0007512"),
                ("2.5.4.3", der::PRINTABLE_STRING, "899700075122"),
                ("2.5.4.42", der::BMP_STRING, "CAROLE"),
            ],
            &[("2.5.4.12", der::UTF8_STRING, "Pharmacien")],
            &[("2.5.4.6", der::PRINTABLE_STRING, "FR")],
        ]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        assert_eq!(name.iter_rdn().count(), 3);
        assert_eq!(values(&name, "2.5.4.3"), vec!["899700075122".to_string()]);
        assert!(values(&name, "2.5.4.11").is_empty());
        let text = name_to_string(&name);
        assert!(text.ends_with(",title=Pharmacien,C=FR"), "{text}");
        for part in ["SN=PHARMACH0007512", "CN=899700075122", "GN=CAROLE"] {
            assert!(text.split(',').next().unwrap().contains(part), "{text}");
        }
    }

    #[test]
    fn client_authentication_needs_both_usages() {
        let u = |ds, ca| Usage {
            digital_signature: ds,
            client_auth: ca,
        };
        assert_eq!(u(Some(true), Some(true)).check_client_auth(), Ok(()));
        assert_eq!(
            u(Some(true), None).check_client_auth(),
            Err(UsageError::ExtendedKeyUsageAbsent)
        );
        assert_eq!(
            u(Some(false), Some(true)).check_client_auth(),
            Err(UsageError::DigitalSignatureNotAllowed)
        );
        assert_eq!(
            u(None, Some(true)).check_client_auth(),
            Err(UsageError::KeyUsageAbsent)
        );
        assert_eq!(
            u(Some(true), Some(false)).check_client_auth(),
            Err(UsageError::ClientAuthNotAllowed)
        );
    }
}
