//! A dossier as tarification sees it: which AMC, which structure it is bound to, until when, and
//! the rules it carries — no identity.

use chrono::{DateTime, Utc};

use super::ids::StructureNumber;
use super::tarification::DomainRules;
use super::AmcNumber;
use crate::code::Code;

#[derive(Debug, Clone)]
pub(crate) struct Dossier {
    pub amc: AmcNumber,
    /// The structure the rights exchange bound it to.
    pub structure: StructureNumber,
    pub expiration: DateTime<Utc>,
    /// `OUVERT` (else `CLOS`).
    pub open: bool,
    /// The pseudonymous key of the beneficiary's ceilings.
    pub ceiling_key: Vec<u8>,
    pub domains: Vec<DomainRules>,
}

/// Whether the dossier found (or not) may be used by `structure` at `now`, in the spec's order:
/// 7001 unknown, 7003 another structure's, 7004 closed, 7002 expired.
pub(crate) fn usable_by(
    found: Option<Dossier>,
    structure: &StructureNumber,
    now: DateTime<Utc>,
) -> Result<Dossier, Code> {
    let d = found.ok_or(Code::DossierUnknown)?;
    if &d.structure != structure {
        return Err(Code::OtherStructure);
    }
    if !d.open {
        return Err(Code::DossierClosed);
    }
    if d.expiration < now {
        return Err(Code::DossierExpired);
    }
    Ok(d)
}

/// The dossier, when its AMC has the service the exchange needs open as it stands now: an AMC may
/// close `TARIFICATION` or `ANNULATION` after the dossier was issued (6021).
pub(crate) fn service_open(dossier: Dossier, open: bool) -> Result<Dossier, Code> {
    if open {
        Ok(dossier)
    } else {
        Err(Code::ServiceClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_other_structure_closed_expired_in_that_order() {
        let ours = StructureNumber::parse("750000001").unwrap();
        let theirs = StructureNumber::parse("920000002").unwrap();
        let now = Utc::now();
        let d = |open: bool, expired: bool| Dossier {
            amc: AmcNumber::parse("12345678").unwrap(),
            structure: ours.clone(),
            expiration: if expired {
                now - chrono::Duration::hours(1)
            } else {
                now + chrono::Duration::hours(1)
            },
            open,
            ceiling_key: vec![1],
            domains: vec![],
        };
        let code = |found, s: &StructureNumber| usable_by(found, s, now).err();
        assert_eq!(code(None, &ours), Some(Code::DossierUnknown));
        assert_eq!(
            code(Some(d(false, true)), &theirs),
            Some(Code::OtherStructure)
        );
        assert_eq!(code(Some(d(false, true)), &ours), Some(Code::DossierClosed));
        assert_eq!(code(Some(d(true, true)), &ours), Some(Code::DossierExpired));
        assert_eq!(code(Some(d(true, false)), &ours), None);
    }
}
