//! The rights decision: which of a beneficiary's guarantees are answered at a date, and the
//! pseudonymous key under which their annual ceilings are consumed.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::rules::Rule;
use super::DomainCode;
use crate::code::Code;

/// A beneficiary's guarantee in one domain, with its contract.
#[derive(Debug, Clone)]
pub struct Guarantee {
    pub contract_id: i64,
    pub contract_number: String,
    pub adherent_number: Option<String>,
    pub responsible: bool,
    pub domain: String,
    pub label: String,
    pub code: String,
    pub priority: i16,
    pub network: Option<String>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub rules: Vec<Rule>,
}

/// The ceiling key: HMAC-SHA256(pseudonymisation key, numero_amc ":" beneficiary internal id).
pub(crate) fn ceiling_key(key: &[u8], amc: &str, beneficiary: i64) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(amc.as_bytes());
    mac.update(b":");
    mac.update(beneficiary.to_string().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The guarantees answered (spec: 6002 nothing open at the date, 6003 none requested is): open
/// at the date, requested, of the one contract that covers the
/// most requested domains (then the best priority), one per domain.
pub(crate) fn select(
    guarantees: Vec<Guarantee>,
    date: NaiveDate,
    domains: &[DomainCode],
) -> Result<Vec<Guarantee>, Code> {
    let open: Vec<Guarantee> = guarantees
        .into_iter()
        .filter(|g| g.start <= date && date <= g.end)
        .collect();
    if open.is_empty() {
        return Err(Code::RightsNotOpen);
    }
    let requested: Vec<Guarantee> = open
        .into_iter()
        .filter(|g| domains.iter().any(|d| d.as_str() == g.domain))
        .collect();
    if requested.is_empty() {
        return Err(Code::NotEligible);
    }
    // contract → (domains covered, best priority)
    let mut by_contract: BTreeMap<i64, (std::collections::BTreeSet<&str>, i16)> = BTreeMap::new();
    for g in &requested {
        let e = by_contract
            .entry(g.contract_id)
            .or_insert_with(|| (Default::default(), i16::MAX));
        e.0.insert(g.domain.as_str());
        e.1 = e.1.min(g.priority);
    }
    let best = by_contract
        .iter()
        .max_by(|a, b| {
            (
                a.1 .0.len(),
                std::cmp::Reverse(a.1 .1),
                std::cmp::Reverse(*a.0),
            )
                .cmp(&(
                    b.1 .0.len(),
                    std::cmp::Reverse(b.1 .1),
                    std::cmp::Reverse(*b.0),
                ))
        })
        .map(|(id, _)| *id)
        .expect("at least one contract");
    let mut chosen: Vec<Guarantee> = Vec::new();
    for g in requested.into_iter().filter(|g| g.contract_id == best) {
        if !chosen.iter().any(|c| c.domain == g.domain) {
            chosen.push(g);
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_key_is_keyed_and_stable() {
        let a = ceiling_key(b"k1-0123456789abcdef0123456789abcdef", "12345678", 42);
        assert_eq!(
            a,
            ceiling_key(b"k1-0123456789abcdef0123456789abcdef", "12345678", 42)
        );
        assert_ne!(
            a,
            ceiling_key(b"k2-0123456789abcdef0123456789abcdef", "12345678", 42)
        );
        assert_ne!(
            a,
            ceiling_key(b"k1-0123456789abcdef0123456789abcdef", "12345678", 43)
        );
        assert_eq!(a.len(), 32);
    }
}
