//! Certificate profiles: which IGC-Santé certificate shape a verified client certificate has, and
//! the identifiers it carries (spec/security.md "Certificate profiles").
//!
//! A real CPS card names the professional and no structure (no OU); a CPE card names an employee
//! and carries the structure in OU; an ORG certificate names a software or a structure (OU) and
//! no person; an older CPS2ter card carries a profession label in OU. The operator configures,
//! per profile, a CN pattern (named group `ps`), an optional OU pattern (named group `structure`)
//! and optional certificate-policy OIDs; profiles are tried in the configured order and the first
//! that matches names the certificate.

use regex::Regex;

use super::certinfo::CertInfo;

/// The IGC-Santé certificate shapes the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertProfile {
    /// Health professional's card: the person, no structure.
    Cps,
    /// Older CPS card: the person, a profession label in OU, no structure.
    Cps2ter,
    /// Employee card: the person and the structure (OU).
    Cpe,
    /// Organisation (software or structure) certificate: the structure (OU), no person.
    Org,
}

impl CertProfile {
    pub const ALL: [CertProfile; 4] = [
        CertProfile::Cpe,
        CertProfile::Cps2ter,
        CertProfile::Cps,
        CertProfile::Org,
    ];

    /// The name in configuration and in the audit.
    pub fn as_str(self) -> &'static str {
        match self {
            CertProfile::Cps => "CPS",
            CertProfile::Cps2ter => "CPS2TER",
            CertProfile::Cpe => "CPE",
            CertProfile::Org => "ORG",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether the certificate names a person (and so a PS identifier).
    pub(crate) fn names_a_person(self) -> bool {
        !matches!(self, CertProfile::Org)
    }

    /// Whether the certificate carries the structure (else the message declares it).
    pub(crate) fn carries_the_structure(self) -> bool {
        matches!(self, CertProfile::Cpe | CertProfile::Org)
    }
}

/// How one profile is recognised.
#[derive(Debug, Clone)]
pub struct ProfileRule {
    pub profile: CertProfile,
    /// Must match the one CN; the group `ps` (or the whole match) is the PS identifier.
    pub cn: Regex,
    /// When set, one OU must match; its group `structure` is the structure identifier.
    pub ou: Option<Regex>,
    /// When not empty, the certificate must carry one of these policy OIDs.
    pub policies: Vec<String>,
}

/// The accepted profiles, in the order they are tried.
#[derive(Debug, Clone)]
pub struct Profiles {
    pub rules: Vec<ProfileRule>,
    /// Check the Luhn digit of an RPPS (`8` + 11 digits) taken from a CN.
    pub rpps_luhn: bool,
}

/// The defaults of `.env.example`, accepting real CPS and CPE cards.
pub(crate) mod defaults {
    /// `8` + RPPS (11 digits), or `0` + ADELI (9 characters, 2A/2B for Corsica).
    pub(crate) const CPS_CN: &str = "^(?P<ps>8[0-9]{11}|0(?:[0-9]{2}|2[AB])[0-9]{7})$";
    pub(crate) const CPS2TER_CN: &str = CPS_CN;
    /// A profession label (`Pharmacien`), no digits.
    pub(crate) const CPS2TER_OU: &str = "^(?P<profession>[^0-9]+)$";
    /// As a CPS, or `3` + FINESS + `/` + the structure's own number.
    pub(crate) const CPE_CN: &str =
        "^(?P<ps>8[0-9]{11}|0(?:[0-9]{2}|2[AB])[0-9]{7}|3(?:[0-9]{2}|2[AB])[0-9]{7}/[0-9A-Za-z]{1,9})$";
    /// `1` + FINESS (TRE_G07 type 1): the 9 digits are the structure.
    pub(crate) const CPE_OU: &str = "^1(?P<structure>[0-9]{9})$";
    /// A software or service name: never a person's identifier (those start with a type digit).
    pub(crate) const ORG_CN: &str = "^[^0-9].*$";
    pub(crate) const ORG_OU: &str = CPE_OU;
}

/// An OU shaped as a TRE_G07 structure identifier (type digit, then 8 to 14 characters): a
/// certificate that names a structure is not a CPS card, whose structure the message declares.
static STRUCTURE_OU: std::sync::LazyLock<Regex> =
    std::sync::LazyLock::new(|| Regex::new("^[1-9][0-9A-Z]{8,14}$").expect("a valid pattern"));

/// What a profile found in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    pub profile: CertProfile,
    /// `identifiant_ps` (persons only).
    pub ps_id: Option<String>,
    /// `numero_structure`, when the certificate carries it.
    pub structure: Option<String>,
}

/// Why no profile matched, from the least to the most specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Miss {
    Cn,
    Ou,
    Policy,
    Luhn,
}

impl Miss {
    fn reason(self) -> &'static str {
        match self {
            Miss::Cn => "CN hors politique",
            Miss::Ou => "OU hors politique",
            Miss::Policy => "politique de certification non acceptée",
            Miss::Luhn => "RPPS invalide (clé de Luhn)",
        }
    }
}

impl Profiles {
    /// The default profiles of `.env.example`: CPE, CPS2TER, CPS, ORG, in that order.
    #[cfg(test)]
    fn defaults() -> Self {
        let rule = |profile, cn: &str, ou: Option<&str>| ProfileRule {
            profile,
            cn: Regex::new(cn).expect("a valid default"),
            ou: ou.map(|o| Regex::new(o).expect("a valid default")),
            policies: Vec::new(),
        };
        Profiles {
            rules: vec![
                rule(CertProfile::Cpe, defaults::CPE_CN, Some(defaults::CPE_OU)),
                rule(
                    CertProfile::Cps2ter,
                    defaults::CPS2TER_CN,
                    Some(defaults::CPS2TER_OU),
                ),
                rule(CertProfile::Cps, defaults::CPS_CN, None),
                rule(CertProfile::Org, defaults::ORG_CN, Some(defaults::ORG_OU)),
            ],
            rpps_luhn: true,
        }
    }

    /// Checks what configuration cannot express in types: persons' profiles name the PS, the
    /// profiles that carry the structure have an OU pattern with a `structure` group, the others
    /// do not capture one. Returns the message for the variable named by the caller.
    pub(crate) fn check_rule(rule: &ProfileRule) -> Result<(), String> {
        let has_group = |re: &Regex, g: &str| re.capture_names().flatten().any(|n| n == g);
        let structure = rule
            .ou
            .as_ref()
            .is_some_and(|ou| has_group(ou, "structure"));
        if rule.profile.carries_the_structure() && !structure {
            return Err("an OU pattern with a (?P<structure>…) group is required".into());
        }
        if !rule.profile.carries_the_structure() && structure {
            return Err(format!(
                "{} certificates do not carry the structure: no (?P<structure>…) group",
                rule.profile.as_str()
            ));
        }
        Ok(())
    }

    /// The first accepted profile that `cert` matches, or the reason of the refusal (8003).
    pub(crate) fn recognise(&self, cert: &CertInfo) -> Result<Recognised, &'static str> {
        let [cn] = cert.common_names.as_slice() else {
            return Err("CN absent ou multiple");
        };
        let mut best: Option<Miss> = None;
        for rule in &self.rules {
            match self.try_rule(rule, cn, cert) {
                Ok(r) => return Ok(r),
                Err(miss) => best = best.max(Some(miss)),
            }
        }
        Err(best.unwrap_or(Miss::Cn).reason())
    }

    fn try_rule(&self, rule: &ProfileRule, cn: &str, cert: &CertInfo) -> Result<Recognised, Miss> {
        let caps = rule.cn.captures(cn).ok_or(Miss::Cn)?;
        let ps_id = if rule.profile.names_a_person() {
            let ps = caps
                .name("ps")
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_string())
                .ok_or(Miss::Cn)?;
            if self.rpps_luhn {
                if let Some(rpps) = ps.strip_prefix('8') {
                    if rpps.len() == 11
                        && rpps.bytes().all(|b| b.is_ascii_digit())
                        && !luhn_valid(rpps)
                    {
                        return Err(Miss::Luhn);
                    }
                }
            }
            Some(ps)
        } else {
            None
        };
        let structure = match &rule.ou {
            Some(ou) => {
                let caps = cert
                    .units
                    .iter()
                    .find_map(|u| ou.captures(u))
                    .ok_or(Miss::Ou)?;
                caps.name("structure").map(|m| m.as_str().to_string())
            }
            None => {
                if cert.units.iter().any(|u| STRUCTURE_OU.is_match(u)) {
                    return Err(Miss::Ou);
                }
                None
            }
        };
        if !rule.policies.is_empty() && !cert.policies.iter().any(|p| rule.policies.contains(p)) {
            return Err(Miss::Policy);
        }
        Ok(Recognised {
            profile: rule.profile,
            ps_id,
            structure,
        })
    }
}

/// Luhn check over a string of digits (the RPPS check digit).
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certinfo::Usage;

    fn rule(profile: CertProfile, cn: &str, ou: Option<&str>) -> ProfileRule {
        ProfileRule {
            profile,
            cn: Regex::new(cn).unwrap(),
            ou: ou.map(|o| Regex::new(o).unwrap()),
            policies: Vec::new(),
        }
    }

    fn cert(cns: &[&str], ous: &[&str], policies: &[&str]) -> CertInfo {
        CertInfo {
            subject: String::new(),
            issuer: String::new(),
            common_names: cns.iter().map(|s| s.to_string()).collect(),
            units: ous.iter().map(|s| s.to_string()).collect(),
            serial: vec![1],
            fingerprint: String::new(),
            not_before: 0,
            not_after: 0,
            usage: Usage {
                digital_signature: Some(true),
                client_auth: Some(true),
            },
            policies: policies.iter().map(|s| s.to_string()).collect(),
            crl_uris: Vec::new(),
            is_ca: false,
            crl_sign: None,
            subject_key_id: None,
        }
    }

    #[test]
    fn the_defaults_recognise_the_real_shapes() {
        let p = Profiles::defaults();
        let cases: &[(&str, &[&str], Result<Recognised, &str>)] = &[
            (
                "899700075122",
                &[],
                Ok(Recognised {
                    profile: CertProfile::Cps,
                    ps_id: Some("899700075122".into()),
                    structure: None,
                }),
            ),
            (
                "0751234567",
                &[],
                Ok(Recognised {
                    profile: CertProfile::Cps,
                    ps_id: Some("0751234567".into()),
                    structure: None,
                }),
            ),
            (
                "899700075122",
                &["Pharmacien"],
                Ok(Recognised {
                    profile: CertProfile::Cps2ter,
                    ps_id: Some("899700075122".into()),
                    structure: None,
                }),
            ),
            (
                "3750012346/1234",
                &["1750012346"],
                Ok(Recognised {
                    profile: CertProfile::Cpe,
                    ps_id: Some("3750012346/1234".into()),
                    structure: Some("750012346".into()),
                }),
            ),
            (
                "899700075122",
                &["IGC-SANTE", "1750012346"],
                Ok(Recognised {
                    profile: CertProfile::Cpe,
                    ps_id: Some("899700075122".into()),
                    structure: Some("750012346".into()),
                }),
            ),
            (
                "LOGICIEL OFFICINE",
                &["1750012346"],
                Ok(Recognised {
                    profile: CertProfile::Org,
                    ps_id: None,
                    structure: Some("750012346".into()),
                }),
            ),
            // A SIRET in OU names a structure the server cannot bind: not a CPS card.
            (
                "899700075122",
                &["312345678900017"],
                Err("OU hors politique"),
            ),
            // A CN that is no person's identifier could be an organisation's, without its OU.
            ("JEAN DUPONT", &[], Err("OU hors politique")),
            ("12345", &[], Err("CN hors politique")),
            ("899700075123", &[], Err("RPPS invalide (clé de Luhn)")),
            (
                "899700075123",
                &["1750012346"],
                Err("RPPS invalide (clé de Luhn)"),
            ),
        ];
        for (cn, ous, expected) in cases {
            assert_eq!(
                &p.recognise(&cert(&[cn], ous, &[])),
                expected,
                "CN={cn} OU={ous:?}"
            );
        }
        assert_eq!(
            p.recognise(&cert(&[], &[], &[])),
            Err("CN absent ou multiple")
        );
        assert_eq!(
            p.recognise(&cert(&["899700075122", "899700075122"], &[], &[])),
            Err("CN absent ou multiple")
        );
    }

    #[test]
    fn policies_and_order_are_the_operators() {
        let mut p = Profiles::defaults();
        p.rules.retain(|r| r.profile == CertProfile::Cps);
        p.rules[0].policies = vec!["1.2.250.1.71.4.2.1".into()];
        assert_eq!(
            p.recognise(&cert(&["899700075122"], &[], &["1.2.3"])),
            Err("politique de certification non acceptée")
        );
        assert!(p
            .recognise(&cert(
                &["899700075122"],
                &[],
                &["1.2.3", "1.2.250.1.71.4.2.1"]
            ))
            .is_ok());
        // Without the CPE profile, a CPE-shaped card is not taken for a CPS card.
        assert_eq!(
            p.recognise(&cert(
                &["899700075122"],
                &["1750012346"],
                &["1.2.250.1.71.4.2.1"]
            )),
            Err("OU hors politique")
        );
    }

    #[test]
    fn rules_that_cannot_bind_a_structure_are_refused() {
        assert!(Profiles::check_rule(&rule(CertProfile::Cpe, "^x$", None)).is_err());
        assert!(Profiles::check_rule(&rule(CertProfile::Cpe, "^x$", Some("^1[0-9]{9}$"))).is_err());
        assert!(Profiles::check_rule(&rule(
            CertProfile::Cps,
            "^x$",
            Some("^1(?P<structure>[0-9]{9})$")
        ))
        .is_err());
        assert!(Profiles::check_rule(&rule(
            CertProfile::Org,
            defaults::ORG_CN,
            Some(defaults::ORG_OU)
        ))
        .is_ok());
    }

    #[test]
    fn the_dev_pki_cards_carry_valid_rpps_numbers() {
        for (name, _) in visiodroits_devkit::pki::CLIENTS {
            let ps = visiodroits_devkit::pki::client_ps_id(name).unwrap();
            if let Some(rpps) = ps.strip_prefix('8') {
                assert!(luhn_valid(rpps), "{name} has CN {ps}");
            }
        }
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("10001234565"));
        assert!(!luhn_valid("10001234566"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("1000123456a"));
    }
}
