//! Identity values of the rights exchange: NIR, birth date, rank, AMC number, domain, dossier.

use std::fmt;

use uuid::Uuid;

/// A NIR (social security number) with its verified key.
///
/// 13 characters: digits, except positions 6–7 which may be `2A` or `2B` (Corsica). The key is
/// 97 − (NIR mod 97), with 2A → 19 and 2B → 18 substituted before the modulo.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nir {
    value: String,
    key: u8,
}

/// Why a NIR was refused (fixed texts: never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NirError {
    Format,
    KeyFormat,
    Key,
}

impl NirError {
    pub fn text(self) -> &'static str {
        match self {
            NirError::Format => "13 caractères attendus (chiffres, 2A ou 2B en positions 6-7)",
            NirError::KeyFormat => "2 chiffres attendus",
            NirError::Key => "clé NIR invalide",
        }
    }
}

impl Nir {
    /// Checks the NIR's shape only (the key is checked by [`Nir::parse`]).
    pub(crate) fn check_format(nir: &str) -> Result<String, NirError> {
        let upper = nir.to_ascii_uppercase();
        let b = upper.as_bytes();
        if b.len() != 13 {
            return Err(NirError::Format);
        }
        let ok = b.iter().enumerate().all(|(i, c)| match i {
            5 => c.is_ascii_digit() || *c == b'2',
            6 => c.is_ascii_digit() || ((*c == b'A' || *c == b'B') && b[5] == b'2'),
            _ => c.is_ascii_digit(),
        });
        if ok {
            Ok(upper)
        } else {
            Err(NirError::Format)
        }
    }

    /// The key the NIR must carry.
    pub(crate) fn expected_key(nir: &str) -> u8 {
        let digits = nir.replacen("2A", "19", 1).replacen("2B", "18", 1);
        // Corsican letters only ever sit at positions 6-7, checked by check_format.
        let n: u64 = digits.parse().unwrap_or(0);
        (97 - (n % 97)) as u8
    }

    pub fn parse(nir: &str, key: &str) -> Result<Nir, NirError> {
        let value = Self::check_format(nir)?;
        if key.len() != 2 || !key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NirError::KeyFormat);
        }
        let key: u8 = key.parse().map_err(|_| NirError::KeyFormat)?;
        if key != Self::expected_key(&value) {
            return Err(NirError::Key);
        }
        Ok(Nir { value, key })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn key(&self) -> String {
        format!("{:02}", self.key)
    }
}

impl fmt::Debug for Nir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identity never reaches a log, even through a debug print.
        f.write_str("Nir([redacted])")
    }
}

/// A birth date as the NIR world knows it: 8 digits `AAAAMMJJ`, kept as text because "lunar"
/// dates (day or month out of range, e.g. `19850035`) are legal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BirthDate(String);

impl BirthDate {
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())).then(|| BirthDate(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BirthDate([redacted])")
    }
}

/// Birth rank for twins (rang gémellaire), 1..9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BirthRank(u8);

impl BirthRank {
    pub fn parse(s: &str) -> Option<Self> {
        match s.parse::<u8>() {
            Ok(n @ 1..=9) if s.len() == 1 => Some(BirthRank(n)),
            _ => None,
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// An AMC's teletransmission (prefectoral) number: 8 to 10 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AmcNumber(String);

impl AmcNumber {
    pub fn parse(s: &str) -> Option<Self> {
        ((8..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| AmcNumber(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A coverage domain code, e.g. `PHAR`: 1 to 8 upper-case letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainCode(String);

impl DomainCode {
    pub fn parse(s: &str) -> Option<Self> {
        ((1..=8).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        .then(|| DomainCode(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A dossier number: a UUID v4 from the OS random source, unguessable and meaningless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DossierNumber(Uuid);

impl DossierNumber {
    pub fn new() -> Self {
        DossierNumber(super::random::uuid_v4())
    }

    /// Any well-formed UUID parses; one we never issued is simply unknown (7001).
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 36 {
            return None;
        }
        Uuid::parse_str(s).ok().map(DossierNumber)
    }

    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl Default for DossierNumber {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DossierNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a valid (NIR, key) pair.
    fn with_key(nir: &str) -> (String, String) {
        (nir.to_string(), format!("{:02}", Nir::expected_key(nir)))
    }

    #[test]
    fn nir_key_is_97_minus_the_remainder() {
        // 1 85 05 78 006 084: 1850578006084 mod 97 = 6 → key 91.
        assert_eq!(Nir::expected_key("1850578006084"), 91);
        assert!(Nir::parse("1850578006084", "91").is_ok());
        assert_eq!(
            Nir::parse("1850578006084", "92").unwrap_err(),
            NirError::Key
        );
    }

    #[test]
    fn corsican_nirs_substitute_before_the_modulo() {
        // 2A → 19, 2B → 18.
        assert_eq!(Nir::expected_key("1850519006084"), 35);
        assert_eq!(Nir::expected_key("185052A006084"), 35);
        assert_eq!(
            Nir::expected_key("185052B006084"),
            Nir::expected_key("1850518006084")
        );
        let (nir, key) = with_key("185052A006084");
        assert!(Nir::parse(&nir, &key).is_ok());
        let (_, key) = with_key("285052B006084");
        assert_eq!(
            Nir::parse("285052b006084", &key).unwrap().as_str(),
            "285052B006084"
        );
    }

    #[test]
    fn nir_shape_is_checked() {
        for bad in [
            "185057800608",
            "18505780060845",
            "1850A78006084",
            "185052C006084",
            "18505A2006084",
            "1850578O06084",
        ] {
            assert_eq!(
                Nir::check_format(bad).unwrap_err(),
                NirError::Format,
                "{bad}"
            );
        }
        assert_eq!(
            Nir::parse("1850578006084", "9").unwrap_err(),
            NirError::KeyFormat
        );
    }

    #[test]
    fn nir_never_prints() {
        let nir = Nir::parse("1850578006084", "91").unwrap();
        assert!(!format!("{nir:?}").contains("185"));
        assert!(!format!("{:?}", BirthDate::parse("19850512").unwrap()).contains("1985"));
    }

    #[test]
    fn lunar_birth_dates_are_legal() {
        assert!(BirthDate::parse("19850035").is_some());
        assert!(BirthDate::parse("19851300").is_some());
        assert!(BirthDate::parse("1985003").is_none());
        assert!(BirthDate::parse("1985-05-1").is_none());
    }

    #[test]
    fn ranks_amc_numbers_domains() {
        assert!(BirthRank::parse("1").is_some() && BirthRank::parse("9").is_some());
        assert!(
            BirthRank::parse("0").is_none()
                && BirthRank::parse("10").is_none()
                && BirthRank::parse("01").is_none()
        );
        assert!(AmcNumber::parse("12345678").is_some() && AmcNumber::parse("1234567890").is_some());
        assert!(AmcNumber::parse("1234567").is_none() && AmcNumber::parse("12345678901").is_none());
        assert!(DomainCode::parse("PHAR").is_some() && DomainCode::parse("phar").is_none());
        assert!(DossierNumber::parse(&Uuid::new_v4().to_string()).is_some());
        assert!(DossierNumber::parse("not-a-uuid").is_none());
    }
}
