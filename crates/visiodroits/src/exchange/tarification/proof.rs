//! The signed proof of a PEC (spec: "Proof of the commitment"): a DER CMS SignedData, content
//! attached, SHA-256, signed with the operator's key and carrying its certificate, over the
//! commitment's canonical text. The pharmacy can prove the AMC's agreement with it alone:
//! `openssl cms -verify -inform DER -CAfile <operator CA>` checks it and prints the text.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{Id, PKey, Private};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::X509;

use super::signed_data::EcSigner;
use crate::domain::{AccreditationNumber, DossierNumber, Hundredths, PsId, StructureNumber};

/// What a PEC's proof says, in the spec's order.
pub(crate) struct Commitment<'a> {
    pub accreditation: &'a AccreditationNumber,
    pub dossier: DossierNumber,
    pub prescription: i32,
    /// Cents.
    pub total_billed: i64,
    /// Cents.
    pub total_amc: i64,
    pub structure: &'a StructureNumber,
    pub ps: &'a PsId,
    /// The response's `horodatage`.
    pub time: &'a str,
}

impl Commitment<'_> {
    /// The canonical text: one `name=value` per line, each line ended by a line feed, amounts as
    /// the response writes them.
    pub(crate) fn text(&self) -> String {
        let amount = Hundredths::cents_text;
        [
            ("numero_accreditation", self.accreditation.to_string()),
            ("numero_dossier", self.dossier.to_string()),
            ("id_prescription", self.prescription.to_string()),
            ("total_facture", amount(self.total_billed)),
            ("total_amc", amount(self.total_amc)),
            ("numero_structure", self.structure.to_string()),
            ("identifiant_ps", self.ps.to_string()),
            ("horodatage", self.time.to_string()),
        ]
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect()
    }
}

/// The operator's signing key and certificate (`VD_SIGNING_KEY`, `VD_SIGNING_CERT`).
pub struct Signer {
    cert: X509,
    key: PKey<Private>,
    /// A P-256 key signs through [`EcSigner`]; other keys through OpenSSL's `CMS_sign`.
    ec: Option<EcSigner>,
    /// The certificate, base64 DER, as `ServicesOuverts` publishes it.
    cert_base64: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer of `cert`, whose public key must be `key`'s, once it has signed a first text:
    /// a key that cannot sign (an encryption-only key type) stops the start rather than turn
    /// every PEC into a 0999.
    pub fn new(cert: X509, key: PKey<Private>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            cert.public_key()?.public_eq(&key),
            "VD_SIGNING_KEY: the key does not match VD_SIGNING_CERT"
        );
        // RSA and EC keys sign with SHA-256 (OpenSSL's default digest depends on the key type).
        anyhow::ensure!(
            matches!(key.id(), Id::RSA | Id::EC),
            "VD_SIGNING_KEY: an RSA or EC key is needed (proofs are signed with SHA-256)"
        );
        let cert_der = cert.to_der()?;
        let cert_base64 = BASE64.encode(&cert_der);
        let serial = cert.serial_number().to_bn()?;
        let ec = match key.id() {
            // A negative serial (which RFC 5280 forbids but CAs have issued) stays with OpenSSL.
            Id::EC if !serial.is_negative() => EcSigner::new(
                &key.private_key_to_pkcs8()?,
                &cert_der,
                &cert.issuer_name().to_der()?,
                &serial.to_vec(),
            ),
            _ => None,
        };
        let signer = Signer {
            cert,
            key,
            ec,
            cert_base64,
        };
        // A first proof, verified as a pharmacy would (purpose S/MIME signing, the certificate's
        // dates and key usages), trusting the certificate itself: a certificate whose proofs
        // would never verify stops the start.
        let der = signer.sign("visiodroits\n").map_err(|_| {
            anyhow::anyhow!("VD_SIGNING_KEY: this key cannot sign a CMS SignedData")
        })?;
        let mut store = X509StoreBuilder::new()?;
        store.add_cert(signer.cert.clone())?;
        store.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
        let store = store.build();
        CmsContentInfo::from_der(&der)?
            .verify(None, Some(&store), None, None, CMSOptions::BINARY)
            .map_err(|_| {
                anyhow::anyhow!(
                    "VD_SIGNING_CERT: its proofs would not verify (outside its validity dates, \
                     or a key usage without digitalSignature/nonRepudiation, or an extended key \
                     usage without emailProtection)"
                )
            })?;
        Ok(signer)
    }

    /// The signing certificate, base64 DER (`ServicesOuverts` publishes it).
    pub fn certificate_base64(&self) -> &str {
        &self.cert_base64
    }

    /// The DER SignedData over `text`.
    pub(crate) fn sign(&self, text: &str) -> anyhow::Result<Vec<u8>> {
        if let Some(ec) = &self.ec {
            return ec.sign(text.as_bytes(), chrono::Utc::now());
        }
        // No S/MIME capabilities attribute: it is for mail clients, and listing the ciphers
        // costs OpenSSL an algorithm look-up each.
        let cms = CmsContentInfo::sign(
            Some(&self.cert),
            Some(&self.key),
            None,
            Some(text.as_bytes()),
            CMSOptions::BINARY | CMSOptions::NOSMIMECAP,
        )
        .context("signing a PEC proof")?;
        cms.to_der().context("encoding a PEC proof")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_commitment_line_by_line_in_the_spec_order() {
        let accreditation = AccreditationNumber::generate("VD", '1').unwrap();
        let dossier = DossierNumber::new();
        let structure = StructureNumber::parse("750000001").unwrap();
        let ps = PsId::parse("10001234567").unwrap();
        let text = Commitment {
            accreditation: &accreditation,
            dossier,
            prescription: 42,
            total_billed: 2150,
            total_amc: 740,
            structure: &structure,
            ps: &ps,
            time: "2026-12-01T10:00:00.000Z",
        }
        .text();
        assert_eq!(
            text,
            format!(
                "numero_accreditation={accreditation}\nnumero_dossier={dossier}\n\
                 id_prescription=42\ntotal_facture=21.50\ntotal_amc=7.40\n\
                 numero_structure=750000001\nidentifiant_ps=10001234567\n\
                 horodatage=2026-12-01T10:00:00.000Z\n"
            )
        );
    }

    #[test]
    fn a_proof_is_a_signed_data_that_verifies_against_the_issuing_ca() {
        let dir = std::env::temp_dir().join(format!("vd-proof-{}", uuid::Uuid::new_v4()));
        visiodroits_devkit::pki::generate(&dir).unwrap();
        let cert = X509::from_pem(&std::fs::read(dir.join("signing/signing.pem")).unwrap());
        let key = std::fs::read(dir.join("signing/signing.key")).unwrap();
        let root = X509::from_pem(&std::fs::read(dir.join("ca/root.pem")).unwrap()).unwrap();
        let other = std::fs::read(dir.join("ttp/ttp.key")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let cert = cert.unwrap();
        let wrong = PKey::private_key_from_pem(&other).unwrap();
        assert!(
            Signer::new(cert.clone(), wrong).is_err(),
            "a key of another certificate"
        );

        let signer = Signer::new(cert, PKey::private_key_from_pem(&key).unwrap()).unwrap();
        assert!(
            signer.ec.is_some(),
            "the dev PKI's P-256 key signs without CMS_sign"
        );
        let der = signer.sign("numero_accreditation=X\n").unwrap();
        let mut cms = CmsContentInfo::from_der(&der).unwrap();
        let mut store = openssl::x509::store::X509StoreBuilder::new().unwrap();
        store.add_cert(root).unwrap();
        let store = store.build();
        let mut out = Vec::new();
        cms.verify(None, Some(&store), None, Some(&mut out), CMSOptions::BINARY)
            .unwrap();
        assert_eq!(out, b"numero_accreditation=X\n");
    }
}
