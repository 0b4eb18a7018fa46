//! The identifiers of the professional side: who calls (`identifiant_ps`), where
//! (`numero_structure`), and the number that proves a PEC (`numero_accreditation`). Each is
//! parsed — or generated — in one place.

use std::fmt;

/// `identifiant_ps`: a professional's national identifier as the certificate carries it (type
/// digit + RPPS or ADELI, or a CPE's `3` + FINESS + `/` + number): 1 to 20 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PsId(String);

impl PsId {
    pub fn parse(s: &str) -> Option<Self> {
        let n = s.chars().count();
        ((1..=20).contains(&n)).then(|| PsId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `numero_structure`: the pharmacy's FINESS, 9 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructureNumber(String);

impl StructureNumber {
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit())).then(|| StructureNumber(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StructureNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `numero_accreditation`: 16 characters = the owner's 2 characters + `M` + 12 Crockford base32
/// characters of a random 60-bit value + the instance's character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccreditationNumber(String);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn crockford(c: u8) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'L' | b'O' | b'U'))
}

impl AccreditationNumber {
    /// A new number from the OS random source, read a block at a time (`random`): OpenSSL's
    /// RAND_bytes (its DRBG behind provider locks) was 3.7 % of the server's CPU per PEC.
    pub fn generate(owner: &str, instance: char) -> Result<Self, getrandom::Error> {
        let v = super::random::u64()? & ((1u64 << 60) - 1);
        let mut out = String::with_capacity(16);
        out.push_str(owner);
        out.push('M');
        for i in (0..12).rev() {
            out.push(CROCKFORD[((v >> (i * 5)) & 31) as usize] as char);
        }
        out.push(instance);
        Ok(AccreditationNumber(out))
    }

    /// A number in the format above (one this server never issued is simply unknown: 7010).
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let ok = b.len() == 16
            && b[..2]
                .iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            && b[2] == b'M'
            && b[3..].iter().copied().all(crockford);
        ok.then(|| AccreditationNumber(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccreditationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accreditation_numbers_have_the_spec_format() {
        let re = regex::Regex::new("^VDM[0-9A-HJKMNP-TV-Z]{12}1$").unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let n = AccreditationNumber::generate("VD", '1').unwrap();
            assert_eq!(n.as_str().len(), 16);
            assert!(re.is_match(n.as_str()), "{n}");
            assert_eq!(AccreditationNumber::parse(n.as_str()).as_ref(), Some(&n));
            assert!(seen.insert(n));
        }
        for bad in [
            "VDM0000000000001X",
            "VDX000000000000Z",
            "VDM00000000000I1",
            "vdM0000000000001",
        ] {
            assert!(AccreditationNumber::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn structures_and_professionals() {
        assert!(StructureNumber::parse("750000001").is_some());
        assert!(StructureNumber::parse("75000001").is_none());
        assert!(StructureNumber::parse("2A0000019").is_none());
        assert!(PsId::parse("899700075122").is_some());
        assert!(PsId::parse("").is_none());
        assert!(PsId::parse("123456789012345678901").is_none());
    }
}
