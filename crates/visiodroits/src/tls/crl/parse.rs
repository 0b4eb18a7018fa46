//! What a CRL says beyond its signature (which OpenSSL verifies): its number, whether it is a
//! delta and of which base, its scope (IssuingDistributionPoint), its authority key identifier,
//! and its entries. A CRL is used only as far as it is understood: an unknown critical extension,
//! an indirect CRL, reason partitions or a scope named other than by URI refuse it.

use std::cmp::Ordering;

use crate::tls::der::{self, DerError, Tlv};

/// Which certificates a CRL covers (RFC 5280 §5.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// End-entity certificates.
    pub users: bool,
    /// CA certificates.
    pub cas: bool,
    /// Distribution point URIs; empty: every certificate of its issuer.
    pub uris: Vec<String>,
}

impl Scope {
    pub const ALL: Scope = Scope {
        users: true,
        cas: true,
        uris: Vec::new(),
    };

    /// Whether a certificate (a CA or not, with these distribution point URIs) is covered.
    pub fn covers(&self, is_ca: bool, cert_uris: &[String]) -> bool {
        let kind = if is_ca { self.cas } else { self.users };
        kind && (self.uris.is_empty() || self.uris.iter().any(|u| cert_uris.contains(u)))
    }

    /// `all`, or what the IssuingDistributionPoint restricts.
    pub fn describe(&self) -> String {
        let kind = match (self.users, self.cas) {
            (true, true) => "all certificates",
            (true, false) => "end-entity certificates",
            (false, true) => "CA certificates",
            (false, false) => "no certificate",
        };
        if self.uris.is_empty() {
            kind.to_string()
        } else {
            format!("{kind} of {}", self.uris.join(" "))
        }
    }
}

/// One revoked certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Without leading zero bytes.
    pub serial: &'a [u8],
    /// Reason `removeFromCRL` (delta CRLs): the certificate is no longer revoked.
    pub removed: bool,
}

/// A CRL's structure, read from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFacts<'a> {
    /// The issuer Name, as encoded (tag included).
    pub issuer: &'a [u8],
    /// CRLNumber, big-endian without leading zeros.
    pub number: Option<Vec<u8>>,
    /// DeltaCRLIndicator: the number of the base CRL this delta completes.
    pub delta_of: Option<Vec<u8>>,
    pub authority_key_id: Option<&'a [u8]>,
    pub scope: Scope,
    pub entries: Vec<Entry<'a>>,
}

/// Why a CRL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a DER CRL: {0}")]
    Der(#[from] DerError),
    #[error("unknown critical extension {0}")]
    UnknownCritical(String),
    #[error("indirect CRL (entries of other issuers) is not supported")]
    Indirect,
    #[error("CRL partitioned by revocation reasons is not supported")]
    ReasonPartition,
    #[error("CRL of attribute certificates only")]
    AttributeCertificates,
    #[error("distribution point named other than by URI")]
    DistributionPointName,
}

const AKI: &[u8] = &[0x55, 0x1d, 0x23];
const CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
const DELTA: &[u8] = &[0x55, 0x1d, 0x1b];
const IDP: &[u8] = &[0x55, 0x1d, 0x1c];
const REASON: &[u8] = &[0x55, 0x1d, 0x15];
const CERTIFICATE_ISSUER: &[u8] = &[0x55, 0x1d, 0x1d];
/// Known and harmless: invalidityDate, holdInstructionCode (entries); issuerAltName, freshestCRL,
/// authorityInfoAccess (CRL).
const IGNORED: &[&[u8]] = &[
    &[0x55, 0x1d, 0x18],
    &[0x55, 0x1d, 0x17],
    &[0x55, 0x1d, 0x12],
    &[0x55, 0x1d, 0x2e],
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01],
];
/// CRLReason removeFromCRL.
const REMOVE_FROM_CRL: u8 = 8;

/// One extension: (OID contents, critical, value contents).
type Extension<'a> = (&'a [u8], bool, &'a [u8]);

fn extensions(seq: Tlv<'_>) -> Result<Vec<Extension<'_>>, DerError> {
    let mut input = seq.value;
    let mut out = Vec::new();
    while !input.is_empty() {
        let ext = der::expect(&mut input, der::SEQUENCE)?;
        let mut e = ext.value;
        let oid = der::expect(&mut e, der::OID)?.value;
        let critical = match der::optional(&mut e, der::BOOLEAN)? {
            Some(b) => der::boolean(&b)?,
            None => false,
        };
        let value = der::expect(&mut e, der::OCTET_STRING)?.value;
        // An extension appears once (RFC 5280 §4.2): a second would be read as the reader pleases.
        if !e.is_empty() || out.iter().any(|(o, _, _)| *o == oid) {
            return Err(DerError::Unexpected);
        }
        out.push((oid, critical, value));
    }
    Ok(out)
}

fn unknown(oid: &[u8]) -> Refusal {
    Refusal::UnknownCritical(der::oid_string(oid).unwrap_or_else(|| hex::encode(oid)))
}

fn integer(value: &[u8]) -> Result<Vec<u8>, DerError> {
    let tlv = der::single(value)?;
    if tlv.tag != der::INTEGER {
        return Err(DerError::Unexpected);
    }
    Ok(super::normalise_serial(tlv.value).to_vec())
}

fn scope(value: &[u8]) -> Result<Scope, Refusal> {
    let idp = der::single(value)?;
    if idp.tag != der::SEQUENCE {
        return Err(DerError::Unexpected.into());
    }
    let mut input = idp.value;
    let mut scope = Scope::ALL;
    if let Some(dp) = der::optional(&mut input, 0xa0)? {
        let name = der::single(dp.value)?;
        if name.tag != 0xa0 {
            return Err(Refusal::DistributionPointName);
        }
        let mut names = name.value;
        while !names.is_empty() {
            let n = der::read(&mut names)?;
            if n.tag != 0x86 {
                return Err(Refusal::DistributionPointName);
            }
            let uri = std::str::from_utf8(n.value).map_err(|_| Refusal::DistributionPointName)?;
            scope.uris.push(uri.to_string());
        }
    }
    if let Some(b) = der::optional(&mut input, 0x81)? {
        if der::boolean(&b)? {
            scope.cas = false;
        }
    }
    if let Some(b) = der::optional(&mut input, 0x82)? {
        if der::boolean(&b)? {
            scope.users = false;
        }
    }
    if der::optional(&mut input, 0x83)?.is_some() {
        return Err(Refusal::ReasonPartition);
    }
    if let Some(b) = der::optional(&mut input, 0x84)? {
        if der::boolean(&b)? {
            return Err(Refusal::Indirect);
        }
    }
    if let Some(b) = der::optional(&mut input, 0x85)? {
        if der::boolean(&b)? {
            return Err(Refusal::AttributeCertificates);
        }
    }
    if !input.is_empty() {
        return Err(DerError::Unexpected.into());
    }
    Ok(scope)
}

/// Reads a CRL's DER (`CertificateList`).
pub fn read(crl: &[u8]) -> Result<CrlFacts<'_>, Refusal> {
    let list = der::single(crl)?;
    let mut outer = list.value;
    let tbs = der::expect(&mut outer, der::SEQUENCE)?;
    let mut t = tbs.value;
    der::optional(&mut t, der::INTEGER)?;
    der::expect(&mut t, der::SEQUENCE)?; // signature algorithm
    let issuer = der::expect(&mut t, der::SEQUENCE)?.raw;
    let time = |t: &mut &[u8]| -> Result<(), DerError> {
        match t.first() {
            Some(&der::UTC_TIME) | Some(&der::GENERALIZED_TIME) => der::read(t).map(|_| ()),
            _ => Err(DerError::Unexpected),
        }
    };
    time(&mut t)?;
    if matches!(
        t.first(),
        Some(&der::UTC_TIME) | Some(&der::GENERALIZED_TIME)
    ) {
        time(&mut t)?;
    }
    let mut facts = CrlFacts {
        issuer,
        number: None,
        delta_of: None,
        authority_key_id: None,
        scope: Scope::ALL,
        entries: Vec::new(),
    };
    if let Some(revoked) = der::optional(&mut t, der::SEQUENCE)? {
        let mut list = revoked.value;
        while !list.is_empty() {
            let entry = der::expect(&mut list, der::SEQUENCE)?;
            let mut e = entry.value;
            let serial = der::expect(&mut e, der::INTEGER)?.value;
            time(&mut e)?;
            let mut removed = false;
            if let Some(exts) = der::optional(&mut e, der::SEQUENCE)? {
                for (oid, critical, value) in extensions(exts)? {
                    if oid == REASON {
                        let r = der::single(value)?;
                        removed = r.tag == der::ENUMERATED && r.value == [REMOVE_FROM_CRL];
                    } else if oid == CERTIFICATE_ISSUER {
                        return Err(Refusal::Indirect);
                    } else if critical && !IGNORED.contains(&oid) {
                        return Err(unknown(oid));
                    }
                }
            }
            if !e.is_empty() {
                return Err(DerError::Unexpected.into());
            }
            facts.entries.push(Entry {
                serial: super::normalise_serial(serial),
                removed,
            });
        }
    }
    if let Some(wrapper) = der::optional(&mut t, 0xa0)? {
        let exts = der::single(wrapper.value)?;
        for (oid, critical, value) in extensions(exts)? {
            match oid {
                AKI => {
                    let seq = der::single(value)?;
                    let mut a = seq.value;
                    facts.authority_key_id = der::optional(&mut a, 0x80)?.map(|k| k.value);
                }
                CRL_NUMBER => facts.number = Some(integer(value)?),
                DELTA => facts.delta_of = Some(integer(value)?),
                IDP => facts.scope = scope(value)?,
                other if critical && !IGNORED.contains(&other) => return Err(unknown(other)),
                _ => {}
            }
        }
    }
    if !t.is_empty() {
        return Err(DerError::Unexpected.into());
    }
    Ok(facts)
}

/// Compares two CRL numbers (big-endian, no leading zeros).
pub(crate) fn cmp_number(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::der::encode;

    fn ext(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
        let mut e = encode(der::OID, oid);
        if critical {
            e.extend(encode(der::BOOLEAN, &[0xff]));
        }
        e.extend(encode(der::OCTET_STRING, value));
        encode(der::SEQUENCE, &e)
    }

    /// A CertificateList with a dummy signature: only its structure matters here.
    fn crl(entries: &[Vec<u8>], exts: &[Vec<u8>]) -> Vec<u8> {
        let mut tbs = encode(der::INTEGER, &[1]);
        tbs.extend(encode(
            der::SEQUENCE,
            &encode(der::OID, &[0x2a, 0x86, 0x48]),
        ));
        tbs.extend(encode(der::SEQUENCE, &[]));
        tbs.extend(encode(der::UTC_TIME, b"261201000000Z"));
        tbs.extend(encode(der::UTC_TIME, b"261202000000Z"));
        if !entries.is_empty() {
            tbs.extend(encode(der::SEQUENCE, &entries.concat()));
        }
        if !exts.is_empty() {
            tbs.extend(encode(0xa0, &encode(der::SEQUENCE, &exts.concat())));
        }
        let mut list = encode(der::SEQUENCE, &tbs);
        list.extend(encode(der::SEQUENCE, &[]));
        list.extend(encode(der::BIT_STRING, &[0]));
        encode(der::SEQUENCE, &list)
    }

    fn entry(serial: &[u8], reason: Option<u8>, extra: Option<Vec<u8>>) -> Vec<u8> {
        let mut e = encode(der::INTEGER, serial);
        e.extend(encode(der::UTC_TIME, b"261201000000Z"));
        let mut exts = Vec::new();
        if let Some(r) = reason {
            exts.extend(ext(REASON, false, &encode(der::ENUMERATED, &[r])));
        }
        if let Some(x) = extra {
            exts.extend(x);
        }
        if !exts.is_empty() {
            e.extend(encode(der::SEQUENCE, &exts));
        }
        encode(der::SEQUENCE, &e)
    }

    #[test]
    fn numbers_deltas_and_entries() {
        let der = crl(
            &[
                entry(&[0x00, 0x91], None, None),
                entry(&[0x12], Some(8), None),
            ],
            &[
                ext(CRL_NUMBER, false, &encode(der::INTEGER, &[0x01, 0x00])),
                ext(DELTA, true, &encode(der::INTEGER, &[0x7f])),
                ext(
                    AKI,
                    false,
                    &encode(der::SEQUENCE, &encode(0x80, &[1, 2, 3])),
                ),
            ],
        );
        let f = read(&der).unwrap();
        assert_eq!(f.number.as_deref(), Some(&[0x01, 0x00][..]));
        assert_eq!(f.delta_of.as_deref(), Some(&[0x7f][..]));
        assert_eq!(f.authority_key_id, Some(&[1u8, 2, 3][..]));
        assert_eq!(f.scope, Scope::ALL);
        assert_eq!(
            f.entries,
            vec![
                Entry {
                    serial: &[0x91],
                    removed: false
                },
                Entry {
                    serial: &[0x12],
                    removed: true
                }
            ]
        );
        assert_eq!(cmp_number(&[0x7f], &[0x01, 0x00]), Ordering::Less);
    }

    #[test]
    fn what_is_not_understood_refuses_the_crl() {
        let unknown_critical = crl(&[], &[ext(&[0x2a, 0x03], true, &[0x05, 0x00])]);
        assert!(matches!(
            read(&unknown_critical),
            Err(Refusal::UnknownCritical(oid)) if oid == "1.2.3"
        ));
        let unknown_harmless = crl(&[], &[ext(&[0x2a, 0x03], false, &[0x05, 0x00])]);
        assert!(read(&unknown_harmless).is_ok());
        let critical_entry = crl(
            &[entry(
                &[1],
                None,
                Some(ext(&[0x2a, 0x04], true, &[0x05, 0x00])),
            )],
            &[],
        );
        assert!(matches!(
            read(&critical_entry),
            Err(Refusal::UnknownCritical(_))
        ));
        let indirect_entry = crl(
            &[entry(
                &[1],
                None,
                Some(ext(CERTIFICATE_ISSUER, true, &encode(der::SEQUENCE, &[]))),
            )],
            &[],
        );
        assert_eq!(read(&indirect_entry), Err(Refusal::Indirect));
        let idp = |body: Vec<u8>| crl(&[], &[ext(IDP, true, &encode(der::SEQUENCE, &body))]);
        assert_eq!(read(&idp(encode(0x84, &[0xff]))), Err(Refusal::Indirect));
        assert_eq!(
            read(&idp(encode(0x83, &[0x07, 0x80]))),
            Err(Refusal::ReasonPartition)
        );
        assert_eq!(
            read(&idp(encode(0x85, &[0xff]))),
            Err(Refusal::AttributeCertificates)
        );
        assert_eq!(
            read(&idp(encode(0xa0, &encode(0xa1, &[])))),
            Err(Refusal::DistributionPointName)
        );
        // A BER "true" (0x01) is not read as false, nor as true: refused.
        let mut ber_true = ext(&[0x2a, 0x03], true, &[0x05, 0x00]);
        let at = ber_true.iter().rposition(|b| *b == 0xff).unwrap();
        ber_true[at] = 0x01;
        assert!(matches!(read(&crl(&[], &[ber_true])), Err(Refusal::Der(_))));
        assert!(matches!(
            read(&idp(encode(0x81, &[0x01]))),
            Err(Refusal::Der(_))
        ));
        let twice = ext(CRL_NUMBER, false, &encode(der::INTEGER, &[1]));
        assert!(
            matches!(
                read(&crl(&[], &[twice.clone(), twice])),
                Err(Refusal::Der(_))
            ),
            "an extension twice"
        );
        let mut trailing = crl(&[], &[]);
        trailing.push(0);
        assert!(matches!(read(&trailing), Err(Refusal::Der(_))));
    }

    #[test]
    fn a_scope_restricts_what_the_crl_covers() {
        let mut body = encode(
            0xa0,
            &encode(0xa0, &encode(0x86, b"http://crl.example/users.crl")),
        );
        body.extend(encode(0x81, &[0xff]));
        let der = crl(&[], &[ext(IDP, true, &encode(der::SEQUENCE, &body))]);
        let s = read(&der).unwrap().scope;
        assert!(s.users && !s.cas);
        let uri = vec!["http://crl.example/users.crl".to_string()];
        assert!(s.covers(false, &uri));
        assert!(!s.covers(true, &uri), "a CA certificate is not covered");
        assert!(!s.covers(false, &[]), "a certificate of another point");
        assert!(Scope::ALL.covers(true, &[]));
    }
}
