//! A PEC proof's CMS SignedData for a P-256 key, built from DER pieces prepared once and an
//! ECDSA signature by aws-lc: OpenSSL's `CMS_sign` spends most of a PEC's signing time looking
//! up algorithms and copying the certificate's names, on every call (profiled: a third of the
//! server's CPU per PEC). The structure is the one OpenSSL writes (RFC 5652: version 1, SHA-256,
//! content attached, the certificate, one signer by issuer and serial, signed attributes
//! content-type, signing-time and message-digest); [`super::proof::Signer::new`] verifies a
//! first proof with OpenSSL before the server serves, and the tests verify them as a pharmacy
//! does.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use chrono::{DateTime, Datelike, Utc};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]`, constructed (EXPLICIT, or IMPLICIT of a constructed type).
const CONTEXT_0: u8 = 0xA0;

const OID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02,
];
const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01,
];
const OID_CONTENT_TYPE: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03,
];
const OID_MESSAGE_DIGEST: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04,
];
const OID_SIGNING_TIME: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x05,
];
const OID_SHA256: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
];
const OID_ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];

/// Appends a DER tag, length and value.
fn tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let n = value.len();
    match n {
        0..=0x7F => out.push(n as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        0x1_0000..=0xFF_FFFF => {
            out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8])
        }
        _ => {
            let n = u32::try_from(n).expect("a proof is far below 4 GiB");
            out.push(0x84);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    tlv(&mut out, tag, value);
    out
}

/// A DER INTEGER of the unsigned big-endian `magnitude`.
fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match magnitude.iter().position(|b| *b != 0) {
        Some(i) => &magnitude[i..],
        None => &[0],
    };
    let mut value = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        value.push(0);
    }
    value.extend_from_slice(trimmed);
    der(INTEGER, &value)
}

/// RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise, to the second.
fn signing_time(at: DateTime<Utc>) -> Vec<u8> {
    let year = at.year();
    if (1950..2050).contains(&year) {
        der(UTC_TIME, at.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        der(
            GENERALIZED_TIME,
            at.format("%Y%m%d%H%M%SZ").to_string().as_bytes(),
        )
    }
}

/// The key and the parts of every proof that do not change.
pub(crate) struct EcSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// `SET { AlgorithmIdentifier sha256 }`.
    digest_algorithms: Vec<u8>,
    /// `[0] IMPLICIT SET OF Certificate`, the one certificate.
    certificates: Vec<u8>,
    /// `version`, `sid` (issuer and serial) and `digestAlgorithm` of the SignerInfo.
    signer_head: Vec<u8>,
    /// `signatureAlgorithm` of the SignerInfo.
    signature_algorithm: Vec<u8>,
}

impl EcSigner {
    /// From the P-256 key (PKCS#8 DER) and its certificate's DER, issuer name DER and serial.
    pub(crate) fn new(
        pkcs8: &[u8],
        cert_der: &[u8],
        issuer_der: &[u8],
        serial: &[u8],
    ) -> Option<EcSigner> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).ok()?;
        let sha256 = der(SEQUENCE, OID_SHA256);
        let mut issuer_and_serial = issuer_der.to_vec();
        issuer_and_serial.extend(unsigned_integer(serial));
        let mut signer_head = der(INTEGER, &[1]);
        tlv(&mut signer_head, SEQUENCE, &issuer_and_serial);
        signer_head.extend_from_slice(&sha256);
        Some(EcSigner {
            key,
            rng: SystemRandom::new(),
            digest_algorithms: der(SET, &sha256),
            certificates: der(CONTEXT_0, cert_der),
            signer_head,
            signature_algorithm: der(SEQUENCE, OID_ECDSA_SHA256),
        })
    }

    /// The DER ContentInfo of the SignedData over `content`, signed now.
    pub(crate) fn sign(&self, content: &[u8], at: DateTime<Utc>) -> anyhow::Result<Vec<u8>> {
        // The signed attributes, a DER SET OF: sorted by their encodings.
        let attribute = |oid: &[u8], value: Vec<u8>| {
            let mut a = oid.to_vec();
            tlv(&mut a, SET, &value);
            der(SEQUENCE, &a)
        };
        let mut attributes = [
            attribute(OID_CONTENT_TYPE, OID_DATA.to_vec()),
            attribute(OID_SIGNING_TIME, signing_time(at)),
            attribute(
                OID_MESSAGE_DIGEST,
                der(OCTET_STRING, digest(&SHA256, content).as_ref()),
            ),
        ];
        attributes.sort();
        let attributes = attributes.concat();
        // Signed as a SET (RFC 5652 §5.4), carried as [0] IMPLICIT.
        let signature = self
            .key
            .sign(&self.rng, &der(SET, &attributes))
            .map_err(|_| anyhow::anyhow!("signing a PEC proof"))?;

        let mut signer_info = self.signer_head.clone();
        tlv(&mut signer_info, CONTEXT_0, &attributes);
        signer_info.extend_from_slice(&self.signature_algorithm);
        tlv(&mut signer_info, OCTET_STRING, signature.as_ref());

        let mut encapsulated = OID_DATA.to_vec();
        tlv(&mut encapsulated, CONTEXT_0, &der(OCTET_STRING, content));

        let mut signed_data = der(INTEGER, &[1]);
        signed_data.extend_from_slice(&self.digest_algorithms);
        tlv(&mut signed_data, SEQUENCE, &encapsulated);
        signed_data.extend_from_slice(&self.certificates);
        tlv(&mut signed_data, SET, &der(SEQUENCE, &signer_info));

        let mut content_info = OID_SIGNED_DATA.to_vec();
        tlv(&mut content_info, CONTEXT_0, &der(SEQUENCE, &signed_data));
        Ok(der(SEQUENCE, &content_info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_integers_and_times_are_der() {
        assert_eq!(der(OCTET_STRING, &[7; 3]), [0x04, 3, 7, 7, 7]);
        assert_eq!(&der(OCTET_STRING, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(&der(OCTET_STRING, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(
            &der(OCTET_STRING, &vec![0; 0x100_0000])[..6],
            [0x04, 0x84, 0x01, 0x00, 0x00, 0x00]
        );
        assert_eq!(unsigned_integer(&[0x00, 0x7F]), [0x02, 1, 0x7F]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 2, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), [0x02, 1, 0x00]);
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(signing_time(at), der(UTC_TIME, b"261201100005Z"));
        let later = DateTime::parse_from_rfc3339("2050-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            signing_time(later),
            der(GENERALIZED_TIME, b"20500101000000Z")
        );
    }
}
