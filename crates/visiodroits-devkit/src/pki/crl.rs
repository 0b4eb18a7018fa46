//! The dev PKI's CRLs: complete CRLs through rcgen, delta CRLs written as DER here (rcgen writes
//! none), and a CRL of any size for measuring.

use std::fs;
use std::path::Path;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::write;

/// Issues a CRL signed by the CA in `ca_pem`/`ca_key_pem`, revoking `revoked` serials (big-endian
/// bytes), valid from `this_update` to `next_update`. Returns PEM.
pub fn issue_crl(
    ca_pem: &str,
    ca_key_pem: &str,
    revoked: &[Vec<u8>],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    number: u64,
) -> anyhow::Result<String> {
    let key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, key)?;
    let serials: Vec<SerialNumber> = revoked
        .iter()
        .map(|s| SerialNumber::from_slice(s))
        .collect();
    crl(&issuer, &serials, (this_update, next_update), number)
}

/// Issues a *delta* CRL (DeltaCRLIndicator `base`, CRLNumber `number`) signed by the EC CA in
/// `ca_pem`/`ca_key_pem`, listing `revoked` serials (and `released` ones with reason
/// removeFromCRL). rcgen writes no delta CRL, so its DER is written here. Returns PEM.
#[allow(clippy::too_many_arguments)]
pub fn issue_delta_crl(
    ca_pem: &str,
    ca_key_pem: &str,
    revoked: &[Vec<u8>],
    released: &[Vec<u8>],
    base: u64,
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> anyhow::Result<String> {
    use visiodroits_wire::der::{
        encode, BIT_STRING, BOOLEAN, ENUMERATED, INTEGER, OCTET_STRING, OID, SEQUENCE,
    };
    let x509 = openssl::x509::X509::from_pem(ca_pem.as_bytes())?;
    let ski = subject_key_id(&x509.to_der()?)?;
    let key = openssl::pkey::PKey::private_key_from_pem(ca_key_pem.as_bytes())?;
    let int = |bytes: &[u8]| {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let b = &bytes[start..];
        let mut v = Vec::with_capacity(b.len() + 1);
        if b.first().is_none_or(|f| f & 0x80 != 0) {
            v.push(0);
        }
        v.extend_from_slice(b);
        encode(INTEGER, &v)
    };
    let time = |t: OffsetDateTime| {
        let text = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        encode(visiodroits_wire::der::UTC_TIME, text.as_bytes())
    };
    let ext = |oid: &str, critical: bool, value: Vec<u8>| {
        let mut e = encode(OID, &visiodroits_wire::der::oid_value(oid).expect("an OID"));
        if critical {
            e.extend(encode(BOOLEAN, &[0xff]));
        }
        e.extend(encode(OCTET_STRING, &value));
        encode(SEQUENCE, &e)
    };
    let ecdsa_sha256 = encode(
        SEQUENCE,
        &encode(
            OID,
            &visiodroits_wire::der::oid_value("1.2.840.10045.4.3.2").expect("an OID"),
        ),
    );
    let mut entries = Vec::new();
    for (serial, removed) in revoked
        .iter()
        .map(|s| (s, false))
        .chain(released.iter().map(|s| (s, true)))
    {
        let mut e = int(serial);
        e.extend(time(this_update));
        if removed {
            let reason = ext("2.5.29.21", false, encode(ENUMERATED, &[8]));
            e.extend(encode(SEQUENCE, &reason));
        }
        entries.extend(encode(SEQUENCE, &e));
    }
    let mut exts = ext("2.5.29.20", false, int(&number.to_be_bytes()));
    exts.extend(ext("2.5.29.27", true, int(&base.to_be_bytes())));
    if let Some(ski) = &ski {
        exts.extend(ext(
            "2.5.29.35",
            false,
            encode(SEQUENCE, &encode(0x80, ski)),
        ));
    }
    let mut tbs = encode(INTEGER, &[1]);
    tbs.extend(&ecdsa_sha256);
    tbs.extend(x509.subject_name().to_der()?);
    tbs.extend(time(this_update));
    tbs.extend(time(next_update));
    if !entries.is_empty() {
        tbs.extend(encode(SEQUENCE, &entries));
    }
    tbs.extend(encode(0xa0, &encode(SEQUENCE, &exts)));
    let tbs = encode(SEQUENCE, &tbs);
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
    let signature = signer.sign_oneshot_to_vec(&tbs)?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut list = tbs;
    list.extend(ecdsa_sha256);
    list.extend(encode(BIT_STRING, &bits));
    let der = encode(SEQUENCE, &list);
    Ok(String::from_utf8(
        openssl::x509::X509Crl::from_der(&der)?.to_pem()?,
    )?)
}

/// The SubjectKeyIdentifier of a certificate, if it has one.
fn subject_key_id(der: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|_| anyhow::anyhow!("not a CA certificate"))?;
    Ok(cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        }))
}

pub(super) fn crl(
    issuer: &Issuer<'_, KeyPair>,
    revoked: &[SerialNumber],
    (this_update, next_update): (OffsetDateTime, OffsetDateTime),
    number: u64,
) -> anyhow::Result<String> {
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: serial.clone(),
                revocation_time: this_update,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(issuer)?.pem()?)
}

/// Replaces the intermediate CA's CRL in `dir` by one listing `count` random serials (plus the
/// dev `revoked` certificate): for measuring CRL loading and handshakes with a large CRL.
pub fn big_crl(dir: &Path, count: usize) -> anyhow::Result<()> {
    let ca_pem = fs::read_to_string(dir.join("ca/intermediate.pem"))?;
    let key_pem = fs::read_to_string(dir.join("ca/intermediate.key"))?;
    let revoked_pem = fs::read(dir.join("clients/revoked.pem"))?;
    let revoked = openssl::x509::X509::from_pem(&revoked_pem)?;
    let mut serials = Vec::with_capacity(count + 1);
    serials.push(revoked.serial_number().to_bn()?.to_vec());
    let mut buf = vec![0u8; 16 * count];
    openssl::rand::rand_bytes(&mut buf)?;
    for chunk in buf.chunks(16) {
        let mut s = chunk.to_vec();
        s[0] = (s[0] & 0x7f) | 0x10;
        serials.push(s);
    }
    let now = OffsetDateTime::now_utc();
    let crl = issue_crl(
        &ca_pem,
        &key_pem,
        &serials,
        now - Duration::hours(1),
        now + Duration::days(30),
        2,
    )?;
    write(dir, "crl/intermediate.crl.pem", &crl)
}
