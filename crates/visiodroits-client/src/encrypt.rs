//! Encrypting a prescription for the trusted third party: a DER CMS EnvelopedData (RFC 5652,
//! AES-256-CBC content key, RSA key transport) to the certificate that `ServicesOuverts`
//! publishes, the same thing `openssl cms -encrypt -binary -outform DER -recip CERT` makes.

use anyhow::Context;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

/// A recipient certificate, from DER or PEM.
pub struct Recipient {
    cert: X509,
    /// Lower-case hex SHA-256 of the DER (`empreinte_certificat`).
    pub fingerprint: String,
}

impl Recipient {
    pub fn from_der(der: &[u8]) -> anyhow::Result<Self> {
        Self::new(X509::from_der(der).context("not a DER certificate")?)
    }

    pub fn from_pem(pem: &[u8]) -> anyhow::Result<Self> {
        Self::new(X509::from_pem(pem).context("not a PEM certificate")?)
    }

    /// From the base64 `certificat_chiffrement` of a `ServicesOuverts` response.
    pub fn from_published(b64: &str) -> anyhow::Result<Self> {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.split_whitespace().collect::<String>())
            .context("certificat_chiffrement is not base64")?;
        Self::from_der(&der)
    }

    fn new(cert: X509) -> anyhow::Result<Self> {
        let fingerprint = hex::encode(cert.digest(MessageDigest::sha256())?);
        Ok(Recipient { cert, fingerprint })
    }

    /// Encrypts `content` (the UTF-8 XML of one `vd:prescription`) to this certificate.
    pub fn encrypt(&self, content: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut certs = Stack::new()?;
        certs.push(self.cert.clone())?;
        let cms =
            CmsContentInfo::encrypt(&certs, content, Cipher::aes_256_cbc(), CMSOptions::BINARY)?;
        Ok(cms.to_der()?)
    }
}
