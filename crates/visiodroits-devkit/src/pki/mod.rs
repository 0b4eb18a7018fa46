//! Development PKI in the IGC-Santé shape (`pki dev DIR`), used by `demo`, the tests and the bench.
//!
//! Layout under DIR (PEM unless said):
//! - `ca/root.{pem,key}`: "AC RACINE IGC-SANTE DEV"; `ca/intermediate.{pem,key}`: "AC IGC-SANTE DEV
//!   PERSONNES" (issues the client certificates); `ca/intermediate-rekeyed.{pem,key}`: a re-keyed
//!   intermediate under the *same name*, revoked by the root (IGC-Santé re-keys under one name);
//!   `trust.pem`: the three, the client anchors.
//! - `ca/unknown-root.{pem,key}`: a CA the server does not trust.
//! - `crl/root.crl.pem` (revokes the re-keyed intermediate), `crl/intermediate.crl.pem` (revokes
//!   `revoked`), `crl/intermediate-rekeyed.crl.pem`: one CRL per CA.
//! - `crl-variants/intermediate-expired.crl.pem`: a CRL past its nextUpdate.
//! - `server/server.{pem,key}`: localhost / 127.0.0.1, issued by the root.
//! - `clients/NAME.{pem,key,p12}` for NAME in [`CLIENTS`]; `.pem` holds the leaf then the
//!   intermediate; PKCS#12 password [`P12_PASSWORD`].
//! - `ttp/ttp.{pem,key}`: the trusted third party's RSA encryption certificate; `ttp/other.{pem,key}`:
//!   another RSA recipient (payloads for it must be refused).
//! - `signing/signing.{pem,key}`: the operator's certificate that signs PEC proofs (ECDSA P-256,
//!   issued by the root: `openssl cms -verify -CAfile ca/root.pem` checks a proof).
//! - `token/token.key`: the key (EC P-256) the server signs its exchanged tokens with.

use std::fs;
use std::path::Path;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

mod clients;
mod crl;

pub use clients::{
    client_ps_id, describe, DevClient, CLIENTS, CPE_PS, CPS_RPPS, DEV_FINESS, DEV_RPPS,
    OTHER_FINESS,
};
use clients::{clients, ClientKind, Shape};
use crl::crl;
pub use crl::{big_crl, issue_crl, issue_delta_crl};

/// Password of every PKCS#12 file of the dev PKI.
pub const P12_PASSWORD: &str = "visiodroits";

/// Generates the whole dev PKI under `dir`. Existing files are replaced.
pub fn generate(dir: &Path) -> anyhow::Result<()> {
    for sub in [
        "ca",
        "crl",
        "crl-variants",
        "server",
        "clients",
        "ttp",
        "signing",
        "token",
    ] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let now = OffsetDateTime::now_utc();

    let root_key = ec_key()?;
    let root_params = ca_params("AC RACINE IGC-SANTE DEV", now, 3650)?;
    let root_cert = root_params.self_signed(&root_key)?;
    let root = Issuer::new(root_params, root_key);

    let inter_key = ec_key()?;
    let mut inter_params = ca_params("AC IGC-SANTE DEV PERSONNES", now, 3000)?;
    inter_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let inter_cert = inter_params.signed_by(&inter_key, &root)?;
    let inter_pem = inter_cert.pem();
    let inter = Issuer::new(inter_params, inter_key);

    // The re-keyed intermediate: the same name, another key, revoked by the root.
    let rekeyed_key = ec_key()?;
    let mut rekeyed_params = ca_params("AC IGC-SANTE DEV PERSONNES", now, 3000)?;
    rekeyed_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let rekeyed_serial = rekeyed_params
        .serial_number
        .clone()
        .expect("ca_params sets a serial");
    let rekeyed_cert = rekeyed_params.signed_by(&rekeyed_key, &root)?;
    let rekeyed_pem = rekeyed_cert.pem();
    let rekeyed = Issuer::new(rekeyed_params, rekeyed_key);

    let unknown_key = ec_key()?;
    let unknown_params = ca_params("AC RACINE INCONNUE DEV", now, 3650)?;
    let unknown_cert = unknown_params.self_signed(&unknown_key)?;
    let unknown = Issuer::new(unknown_params, unknown_key);

    write(dir, "ca/root.pem", &root_cert.pem())?;
    write_key(dir, "ca/root.key", &root.key().serialize_pem())?;
    write(dir, "ca/intermediate.pem", &inter_pem)?;
    write_key(dir, "ca/intermediate.key", &inter.key().serialize_pem())?;
    write(dir, "ca/unknown-root.pem", &unknown_cert.pem())?;
    write_key(dir, "ca/unknown-root.key", &unknown.key().serialize_pem())?;
    write(dir, "ca/intermediate-rekeyed.pem", &rekeyed_pem)?;
    write_key(
        dir,
        "ca/intermediate-rekeyed.key",
        &rekeyed.key().serialize_pem(),
    )?;
    write(
        dir,
        "trust.pem",
        &format!("{}{}{}", root_cert.pem(), inter_pem, rekeyed_pem),
    )?;

    // Server certificate, issued by the root (clients trust ca/root.pem for the server).
    server(dir, &root, now)?;

    // Client certificates.
    let mut revoked_serials = Vec::new();
    for client in clients() {
        let key = ec_key()?;
        let (nb, na) = match client.what {
            ClientKind::Expired => (now - Duration::days(400), now - Duration::days(1)),
            ClientKind::NotYetValid => (now + Duration::days(30), now + Duration::days(400)),
            _ => (now - Duration::days(1), now + Duration::days(1095)),
        };
        let (issuer, chain_pem) = match client.what {
            ClientKind::UnknownCa => (&unknown, unknown_cert.pem()),
            ClientKind::UnderRevokedRekeyed => (&rekeyed, rekeyed_pem.clone()),
            _ => (&inter, inter_pem.clone()),
        };
        let cert_pem = match &client.shape {
            Shape::Cps { sn, cn, gn } => multi_valued_cps(
                &key,
                (sn, cn, gn),
                (nb, na),
                &chain_pem,
                &issuer.key().serialize_pem(),
            )?,
            Shape::Tidy { .. } | Shape::NoOu { .. } => {
                let mut p = CertificateParams::default();
                p.distinguished_name = match &client.shape {
                    Shape::Tidy { cn, ou } => dn(&[
                        (DnType::CountryName, "FR"),
                        (DnType::OrganizationName, "PHARMACIE DEV"),
                        (DnType::OrganizationalUnitName, ou.as_str()),
                        (DnType::CommonName, cn.as_str()),
                    ]),
                    Shape::NoOu { cn } => dn(&[
                        (DnType::CountryName, "FR"),
                        (DnType::CustomDnType(vec![2, 5, 4, 12]), "Pharmacien"),
                        (DnType::CommonName, cn.as_str()),
                    ]),
                    Shape::Cps { .. } => unreachable!("written by OpenSSL above"),
                };
                leaf_common(&mut p, nb, na);
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                match client.what {
                    ClientKind::NoEku => p.extended_key_usages.clear(),
                    ClientKind::SignatureOnly => {
                        p.key_usages = vec![KeyUsagePurpose::ContentCommitment]
                    }
                    _ => {}
                }
                if client.what == ClientKind::Revoked {
                    revoked_serials.push(p.serial_number.clone().expect("leaf_common sets one"));
                }
                p.signed_by(&key, issuer)?.pem()
            }
        };
        let pem = format!("{cert_pem}{chain_pem}");
        write(dir, &format!("clients/{}.pem", client.name), &pem)?;
        write_key(
            dir,
            &format!("clients/{}.key", client.name),
            &key.serialize_pem(),
        )?;
        let p12 = pkcs12(&cert_pem, &key.serialize_pem(), &chain_pem, client.name)?;
        fs::write(dir.join(format!("clients/{}.p12", client.name)), p12)?;
    }

    // CRLs: one per CA, fresh for a year (the demo reuses its PKI), plus an expired variant.
    let fresh = (now - Duration::hours(1), now + Duration::days(365));
    write(
        dir,
        "crl/root.crl.pem",
        &crl(&root, std::slice::from_ref(&rekeyed_serial), fresh, 1)?,
    )?;
    write(
        dir,
        "crl/intermediate-rekeyed.crl.pem",
        &crl(&rekeyed, &[], fresh, 1)?,
    )?;
    write(
        dir,
        "crl/intermediate.crl.pem",
        &crl(&inter, &revoked_serials, fresh, 1)?,
    )?;
    let stale = (now - Duration::days(10), now - Duration::days(1));
    write(
        dir,
        "crl-variants/intermediate-expired.crl.pem",
        &crl(&inter, &revoked_serials, stale, 1)?,
    )?;

    // Trusted third party's encryption certificates (RSA: CMS key transport).
    for name in ["ttp", "other"] {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
        let mut p = CertificateParams::default();
        let cn = if name == "ttp" {
            "TIERS DE CONFIANCE VISIODROITS DEV"
        } else {
            "AUTRE DESTINATAIRE DEV"
        };
        p.distinguished_name = dn(&[
            (DnType::CountryName, "FR"),
            (DnType::OrganizationName, "VISIODROITS DEV"),
            (DnType::CommonName, cn),
        ]);
        leaf_common(&mut p, now - Duration::days(1), now + Duration::days(1095));
        p.key_usages = vec![
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
        ];
        let cert = p.signed_by(&key, &root)?;
        write(dir, &format!("ttp/{name}.pem"), &cert.pem())?;
        write_key(dir, &format!("ttp/{name}.key"), &key.serialize_pem())?;
    }

    // The operator's signing certificate for PEC proofs: digital signature and non-repudiation,
    // no extended key usage (so that `openssl cms -verify` accepts it for any purpose).
    let key = ec_key()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(&[
        (DnType::CountryName, "FR"),
        (DnType::OrganizationName, "VISIODROITS DEV"),
        (
            DnType::CommonName,
            "SIGNATURE DES ENGAGEMENTS VISIODROITS DEV",
        ),
    ]);
    leaf_common(&mut p, now - Duration::days(1), now + Duration::days(1095));
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    let cert = p.signed_by(&key, &root)?;
    write(dir, "signing/signing.pem", &cert.pem())?;
    write_key(dir, "signing/signing.key", &key.serialize_pem())?;

    // The key of the server's exchanged tokens (ES256): no certificate, the JWKS publishes it.
    write_key(dir, "token/token.key", &ec_key()?.serialize_pem())?;
    Ok(())
}

/// A real CPS card's certificate, written with OpenSSL: rcgen writes one attribute per RDN, and
/// the card's subject has SN, CN and GN in one multi-valued RDN (and no O, no OU).
fn multi_valued_cps(
    key: &KeyPair,
    (sn, cn, gn): (&str, &str, &str),
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
    issuer_pem: &str,
    issuer_key_pem: &str,
) -> anyhow::Result<String> {
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
    use openssl::x509::{X509Name, X509};
    use visiodroits_wire::der;
    let name = der::name(&[
        &[
            ("2.5.4.4", der::PRINTABLE_STRING, sn),
            ("2.5.4.3", der::PRINTABLE_STRING, cn),
            ("2.5.4.42", der::UTF8_STRING, gn),
        ],
        &[("2.5.4.12", der::UTF8_STRING, "Pharmacien")],
        &[("2.5.4.6", der::PRINTABLE_STRING, "FR")],
    ]);
    let issuer = X509::from_pem(issuer_pem.as_bytes())?;
    let issuer_key = PKey::private_key_from_pem(issuer_key_pem.as_bytes())?;
    let public = PKey::public_key_from_pem(key.public_key_pem().as_bytes())?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = BigNum::from_slice(random_serial().as_ref())?;
    b.set_serial_number(Asn1Integer::from_bn(&serial)?.as_ref())?;
    b.set_subject_name(X509Name::from_der(&name)?.as_ref())?;
    b.set_issuer_name(issuer.subject_name())?;
    b.set_pubkey(&public)?;
    b.set_not_before(Asn1Time::from_unix(not_before.unix_timestamp())?.as_ref())?;
    b.set_not_after(Asn1Time::from_unix(not_after.unix_timestamp())?.as_ref())?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
    b.sign(&issuer_key, MessageDigest::sha256())?;
    Ok(String::from_utf8(b.build().to_pem()?)?)
}

fn ec_key() -> anyhow::Result<KeyPair> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x10; // no leading zero byte to strip
    SerialNumber::from_slice(&bytes)
}

fn ca_params(cn: &str, now: OffsetDateTime, days: i64) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(&[
        (DnType::CountryName, "FR"),
        (DnType::OrganizationName, "ASIP-SANTE DEV"),
        (DnType::OrganizationalUnitName, "IGC-SANTE DEV"),
        (DnType::CommonName, cn),
    ]);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(days);
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn leaf_common(p: &mut CertificateParams, not_before: OffsetDateTime, not_after: OffsetDateTime) {
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = not_before;
    p.not_after = not_after;
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
}

fn pkcs12(cert_pem: &str, key_pem: &str, chain_pem: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    use openssl::{pkcs12::Pkcs12, pkey::PKey, stack::Stack, x509::X509};
    let cert = X509::from_pem(cert_pem.as_bytes())?;
    let key = PKey::private_key_from_pem(key_pem.as_bytes())?;
    let mut chain = Stack::new()?;
    for c in X509::stack_from_pem(chain_pem.as_bytes())? {
        chain.push(c)?;
    }
    let p12 = Pkcs12::builder()
        .name(name)
        .pkey(&key)
        .cert(&cert)
        .ca(chain)
        .build2(P12_PASSWORD)
        .context("cannot build PKCS#12")?;
    Ok(p12.to_der()?)
}

/// Through a hidden file renamed into place: a running server reloading its CRL directory while
/// `pki big-crl` writes (the bench does) never reads half a file.
fn write(dir: &Path, rel: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(rel);
    visiodroits_wire::fs::write_atomically(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_key(dir: &Path, rel: &str, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(rel);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Issues a new server certificate for localhost / 127.0.0.1 from the root CA in `dir`, into
/// `dir/server/server.{pem,key}` (certificate rotation tests and drills).
pub fn renew_server(dir: &Path) -> anyhow::Result<()> {
    let root_pem = fs::read_to_string(dir.join("ca/root.pem"))?;
    let root_key = KeyPair::from_pem(&fs::read_to_string(dir.join("ca/root.key"))?)?;
    let root = Issuer::from_ca_cert_pem(&root_pem, root_key)?;
    fs::create_dir_all(dir.join("server"))?;
    server(dir, &root, OffsetDateTime::now_utc())
}

/// The server certificate for localhost / 127.0.0.1, issued by the root (clients trust
/// `ca/root.pem` for the server), into `dir/server/server.{pem,key}`.
fn server(dir: &Path, root: &Issuer<'_, KeyPair>, now: OffsetDateTime) -> anyhow::Result<()> {
    let key = ec_key()?;
    let mut sp = CertificateParams::new(vec!["localhost".to_string()])?;
    sp.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    sp.distinguished_name = dn(&[
        (DnType::CountryName, "FR"),
        (DnType::OrganizationName, "VISIODROITS DEV"),
        (DnType::CommonName, "localhost"),
    ]);
    leaf_common(&mut sp, now - Duration::days(1), now + Duration::days(825));
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = sp.signed_by(&key, root)?;
    write(dir, "server/server.pem", &cert.pem())?;
    write_key(dir, "server/server.key", &key.serialize_pem())
}
