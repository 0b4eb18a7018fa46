//! A small reader and writer of DER (definite lengths, one-byte tags): enough to walk a CRL's
//! structure after OpenSSL has verified its signature, and to write the names of the dev PKI's
//! real-shaped cards. Anything that is not strict DER is an error, never a guess.

/// One element: its tag, its contents, and the whole encoding (tag, length and contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

/// Why DER could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    #[error("truncated DER")]
    Truncated,
    #[error("indefinite or non-minimal DER length")]
    Length,
    #[error("multi-byte DER tags are not supported")]
    Tag,
    #[error("unexpected DER element")]
    Unexpected,
}

pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const ENUMERATED: u8 = 0x0a;
pub const UTF8_STRING: u8 = 0x0c;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const T61_STRING: u8 = 0x14;
pub const IA5_STRING: u8 = 0x16;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const BMP_STRING: u8 = 0x1e;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;

/// Reads the next element of `input` and advances past it.
pub fn read<'a>(input: &mut &'a [u8]) -> Result<Tlv<'a>, DerError> {
    let all = *input;
    let (&tag, rest) = all.split_first().ok_or(DerError::Truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(DerError::Tag);
    }
    let (&first, mut rest) = rest.split_first().ok_or(DerError::Truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        // 0x80 is BER's indefinite length; more than 4 bytes of length is not a CRL we read.
        if n == 0 || n > 4 || rest.len() < n {
            return Err(DerError::Length);
        }
        let (bytes, after) = rest.split_at(n);
        if bytes[0] == 0 {
            return Err(DerError::Length);
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return Err(DerError::Length);
        }
        rest = after;
        len
    };
    if rest.len() < len {
        return Err(DerError::Truncated);
    }
    let (value, after) = rest.split_at(len);
    let header = all.len() - rest.len();
    *input = after;
    Ok(Tlv {
        tag,
        value,
        raw: &all[..header + len],
    })
}

/// Reads the next element, which must carry `tag`.
pub fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Result<Tlv<'a>, DerError> {
    let tlv = read(input)?;
    if tlv.tag == tag {
        Ok(tlv)
    } else {
        Err(DerError::Unexpected)
    }
}

/// Reads the next element if it carries `tag`; leaves `input` as it was otherwise.
pub fn optional<'a>(input: &mut &'a [u8], tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
    match input.first() {
        Some(t) if *t == tag => read(input).map(Some),
        _ => Ok(None),
    }
}

/// `bytes` is exactly one element, nothing before or after it.
pub fn single(bytes: &[u8]) -> Result<Tlv<'_>, DerError> {
    let mut input = bytes;
    let tlv = read(&mut input)?;
    if input.is_empty() {
        Ok(tlv)
    } else {
        Err(DerError::Unexpected)
    }
}

/// `bytes` is exactly one element, in DER all the way down: every length definite and minimal,
/// every constructed element made of whole elements and nothing else, no universal string in
/// BER's chunked (constructed) form. What passes holds nothing beside its structure: no trailing
/// bytes, no second object, no indefinite length.
pub fn strict(bytes: &[u8]) -> Result<(), DerError> {
    fn walk(tlv: &Tlv<'_>, depth: u32) -> Result<(), DerError> {
        const CONSTRUCTED: u8 = 0x20;
        const CLASS: u8 = 0xc0;
        if tlv.tag & CONSTRUCTED == 0 {
            return Ok(());
        }
        let universal = tlv.tag & CLASS == 0;
        if depth > 32 || (universal && tlv.tag != SEQUENCE && tlv.tag != SET) {
            return Err(DerError::Unexpected);
        }
        let mut input = tlv.value;
        while !input.is_empty() {
            walk(&read(&mut input)?, depth + 1)?;
        }
        Ok(())
    }
    walk(&single(bytes)?, 0)
}

/// A BOOLEAN's value: DER writes TRUE as 0xFF and FALSE as 0x00; any other byte is refused
/// rather than guessed (BER readers take any non-zero byte for TRUE).
pub fn boolean(tlv: &Tlv<'_>) -> Result<bool, DerError> {
    match tlv.value {
        [0xff] => Ok(true),
        [0x00] => Ok(false),
        _ => Err(DerError::Unexpected),
    }
}

/// Encodes one element.
pub fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// The dotted form of an OBJECT IDENTIFIER's contents (`2.5.29.32`).
pub fn oid_string(value: &[u8]) -> Option<String> {
    let (&first, rest) = value.split_first()?;
    let mut parts = vec![u64::from(first / 40).min(2), 0];
    parts[1] = u64::from(first) - parts[0] * 40;
    let mut n: u64 = 0;
    for b in rest {
        n = n.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(n);
            n = 0;
        }
    }
    if rest.last().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The contents of an OBJECT IDENTIFIER from its dotted form (for the OIDs this program names).
pub fn oid_value(dotted: &str) -> Option<Vec<u8>> {
    let parts: Vec<u64> = dotted
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, rest @ ..] = parts.as_slice() else {
        return None;
    };
    if *a > 2 || (*a < 2 && *b >= 40) {
        return None;
    }
    let mut out = Vec::new();
    for n in std::iter::once(a * 40 + b).chain(rest.iter().copied()) {
        let mut chunk = vec![(n & 0x7f) as u8];
        let mut n = n >> 7;
        while n > 0 {
            chunk.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        chunk.reverse();
        out.extend(chunk);
    }
    Some(out)
}

/// A subject's DER from RDNs, each a list of (attribute OID dotted, string tag, value): for the
/// dev PKI's real-shaped cards (multi-valued RDNs and any string type), which the certificate
/// builders cannot write.
pub fn name(rdns: &[&[(&str, u8, &str)]]) -> Vec<u8> {
    let mut seq = Vec::new();
    for rdn in rdns {
        let mut attrs: Vec<Vec<u8>> = rdn
            .iter()
            .map(|(oid, tag, value)| {
                let oid = oid_value(oid).expect("a valid OID");
                let bytes = match *tag {
                    BMP_STRING => value.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
                    T61_STRING => value.chars().map(|c| c as u8).collect(),
                    _ => value.as_bytes().to_vec(),
                };
                let mut a = encode(OID, &oid);
                a.extend(encode(*tag, &bytes));
                encode(SEQUENCE, &a)
            })
            .collect();
        // DER orders the members of a SET OF by their encodings.
        attrs.sort();
        seq.extend(encode(SET, &attrs.concat()));
    }
    encode(SEQUENCE, &seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_der_is_one_element_with_definite_lengths_all_the_way_down() {
        let inner = encode(OCTET_STRING, b"ciphertext");
        let one = encode(SEQUENCE, &[encode(INTEGER, &[1]), inner.clone()].concat());
        assert_eq!(strict(&one), Ok(()));
        let mut trailing = one.clone();
        trailing.push(0);
        assert!(strict(&trailing).is_err(), "trailing byte");
        assert!(
            strict(&[one.clone(), one.clone()].concat()).is_err(),
            "second object"
        );
        let mut indefinite = vec![SEQUENCE, 0x80];
        indefinite.extend(&inner);
        indefinite.extend([0, 0]);
        assert!(strict(&indefinite).is_err(), "indefinite length");
        let chunked = encode(0x24, &inner);
        assert!(
            strict(&encode(SEQUENCE, &chunked)).is_err(),
            "constructed OCTET STRING"
        );
        let loose = encode(SEQUENCE, &[inner.clone(), vec![0x04]].concat());
        assert!(strict(&loose).is_err(), "a partial element inside");
        let explicit = encode(0xa0, &inner);
        assert_eq!(strict(&encode(SEQUENCE, &explicit)), Ok(()), "[0] EXPLICIT");
    }

    #[test]
    fn reads_short_and_long_lengths_and_refuses_ber() {
        let long = encode(OCTET_STRING, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let tlv = single(&long).unwrap();
        assert_eq!((tlv.tag, tlv.value.len(), tlv.raw.len()), (0x04, 300, 304));
        assert_eq!(
            single(&[0x30, 0x80, 0x00, 0x00]).unwrap_err(),
            DerError::Length
        );
        assert_eq!(
            single(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).unwrap_err(),
            DerError::Length,
            "a long form for a short length is not DER"
        );
        assert_eq!(
            single(&[0x04, 0x03, 1, 2]).unwrap_err(),
            DerError::Truncated
        );
        assert_eq!(
            single(&[0x04, 0x01, 1, 0x05, 0x00]).unwrap_err(),
            DerError::Unexpected,
            "trailing bytes"
        );
        let mut input: &[u8] = &[0x02, 0x01, 0x05, 0x04, 0x00];
        assert!(optional(&mut input, OCTET_STRING).unwrap().is_none());
        assert_eq!(expect(&mut input, INTEGER).unwrap().value, &[5]);
        assert_eq!(
            expect(&mut input, OCTET_STRING).unwrap().value,
            &[] as &[u8]
        );
        assert!(input.is_empty());
    }

    #[test]
    fn object_identifiers_both_ways() {
        for dotted in [
            "2.5.29.32",
            "1.2.250.1.71.4.2.1",
            "1.3.6.1.5.5.7.3.2",
            "2.5.4.3",
        ] {
            let v = oid_value(dotted).unwrap();
            assert_eq!(oid_string(&v).unwrap(), dotted);
        }
        assert_eq!(oid_value("2.5.29.20").unwrap(), vec![0x55, 0x1d, 0x14]);
        assert!(oid_value("not.an.oid").is_none());
    }
}
