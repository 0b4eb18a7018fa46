//! Encrypted dispensing data: a DER CMS EnvelopedData (RFC 5652) to the trusted third party's
//! certificate, decrypted in memory with its key. The clear content never leaves memory.

use std::fmt;

use openssl::cms::CmsContentInfo;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::super::fields::Problems;
use crate::code::Code;
use crate::domain::prescription::Prescription;
use crate::soap::envelope::{parse_fragment, XmlLimits};

/// The trusted third party's certificate and key, where this server is the trusted third party.
pub struct Decryptor {
    cert: X509,
    key: PKey<Private>,
    /// Lower-case hex SHA-256 of the certificate's DER (`empreinte_certificat`).
    fingerprint: String,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Decryptor([redacted])")
    }
}

impl Decryptor {
    pub fn new(cert: X509, key: PKey<Private>) -> anyhow::Result<Self> {
        let fingerprint = hex::encode(cert.digest(MessageDigest::sha256())?);
        Ok(Decryptor {
            cert,
            key,
            fingerprint,
        })
    }

    /// Whether a client's `empreinte_certificat` names our certificate.
    pub(crate) fn is_our_certificate(&self, fingerprint: &str) -> bool {
        fingerprint.eq_ignore_ascii_case(&self.fingerprint)
    }

    /// Decrypts a DER CMS EnvelopedData addressed to our certificate. `None` for another
    /// recipient or corrupt data (the caller answers 7006, without detail).
    pub fn decrypt(&self, der: &[u8]) -> Option<Vec<u8>> {
        let cms = CmsContentInfo::from_der(der).ok()?;
        cms.decrypt(&self.key, &self.cert).ok()
    }
}

/// Decrypts an encrypted prescription in memory and checks it as a clear one: 7007 where this
/// server does not decrypt, 7006 for another recipient, corrupt data, anything but exactly one
/// DER object, or bad content, 7005 for identity elements inside.
pub fn prescription(
    decryptor: Option<&Decryptor>,
    der: &[u8],
    declared_fingerprint: Option<&str>,
) -> Result<Prescription, Code> {
    let decryptor = decryptor.ok_or(Code::EncryptedNotAccepted)?;
    if declared_fingerprint.is_some_and(|f| !decryptor.is_our_certificate(f)) {
        return Err(Code::EncryptedUnreadable);
    }
    // Exactly one DER EnvelopedData, as it is stored: bytes after it, or BER's indefinite
    // lengths, could carry clear data into `dispensation` beside the ciphertext.
    visiodroits_wire::der::strict(der).map_err(|_| Code::EncryptedUnreadable)?;
    let clear = decryptor.decrypt(der).ok_or(Code::EncryptedUnreadable)?;
    // The clear content lives in memory only, and is checked like a clear prescription.
    let text = std::str::from_utf8(&clear).map_err(|_| Code::EncryptedUnreadable)?;
    let el = parse_fragment(text, &XmlLimits::default()).map_err(|_| Code::EncryptedUnreadable)?;
    if !el.in_vd || el.name != "prescription" {
        return Err(Code::EncryptedUnreadable);
    }
    if el.contains_named(super::IDENTITY_ELEMENTS) {
        return Err(Code::MixedData);
    }
    let mut inner = Problems::default();
    match super::request::prescription(&el, &mut inner) {
        Some(p) if inner.is_empty() => Ok(p),
        _ => Err(Code::EncryptedUnreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::PKey;
    use openssl::x509::X509;
    use visiodroits_client::encrypt::Recipient;

    #[test]
    fn the_trusted_third_party_decrypts_what_the_client_encrypts() {
        let dir = std::env::temp_dir().join(format!("vd-encrypt-{}", uuid::Uuid::new_v4()));
        visiodroits_devkit::pki::generate(&dir).unwrap();
        let pem = std::fs::read(dir.join("ttp/ttp.pem")).unwrap();
        let key = std::fs::read(dir.join("ttp/ttp.key")).unwrap();
        let other_pem = std::fs::read(dir.join("ttp/other.pem")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let recipient = Recipient::from_pem(&pem).unwrap();
        let der = recipient.encrypt(b"<vd:prescription/>").unwrap();
        let ttp = Decryptor::new(
            X509::from_pem(&pem).unwrap(),
            PKey::private_key_from_pem(&key).unwrap(),
        )
        .unwrap();
        assert!(ttp.is_our_certificate(&recipient.fingerprint));
        assert_eq!(ttp.decrypt(&der).unwrap(), b"<vd:prescription/>");

        let other = Recipient::from_pem(&other_pem).unwrap();
        assert!(!ttp.is_our_certificate(&other.fingerprint));
        assert!(ttp.decrypt(&other.encrypt(b"x").unwrap()).is_none());
    }
}
