//! The rule snapshot a dossier carries from the rights exchange into tarification: the chosen
//! guarantees' rules, per domain, with no identity in it. A typed, versioned value (JSON in
//! `dispensation.dossier.regles`): written by [`write`] when the dossier is issued, read back by
//! [`read`] at each tarification, both here and nowhere else.
//!
//! ```json
//! {"version":2,"domaines":[{"domaine":"PHAR","code_garantie":"G1",
//!   "periode":{"debut":"2026-01-01","fin":"2026-12-31"},
//!   "prestations":[{"code":"PH7","unite":"PO","valeur":10000,"plafond_annuel":null}]}]}
//! ```
//! Amounts are hundredths (of a percent for PO/TA, of a euro for FO and ceilings). Version 2 adds
//! each guarantee's `periode` (for line code `L04`); version 1 (and snapshots written before the
//! version field existed) have none and stay readable: their lines are never `L04`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::rights::Guarantee;
use super::rules::{Rule, Unit};
use super::tarification::DomainRules;
use super::Hundredths;

/// The format [`write`] writes and [`read`] reads.
pub(crate) const VERSION: u32 = 2;

// Written straight from borrowed fields: building owned values or a `serde_json::Value` tree
// first was ~5 % of the server's CPU per rights exchange (a map and a string per field).
#[derive(Serialize)]
struct Out<'a> {
    version: u32,
    domaines: Vec<OutDomain<'a>>,
}

#[derive(Serialize)]
struct OutDomain<'a> {
    domaine: &'a str,
    code_garantie: &'a str,
    periode: Period,
    prestations: Vec<OutRule<'a>>,
}

#[derive(Serialize)]
struct OutRule<'a> {
    code: &'a str,
    unite: &'static str,
    valeur: i64,
    plafond_annuel: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Period {
    debut: NaiveDate,
    fin: NaiveDate,
}

#[derive(Deserialize)]
struct In {
    #[serde(default = "first")]
    version: u32,
    domaines: Vec<InDomain>,
}

fn first() -> u32 {
    1
}

#[derive(Deserialize)]
struct InDomain {
    domaine: String,
    code_garantie: String,
    #[serde(default)]
    periode: Option<Period>,
    prestations: Vec<InRule>,
}

#[derive(Deserialize)]
struct InRule {
    code: String,
    unite: String,
    valeur: i64,
    plafond_annuel: Option<i64>,
}

/// The snapshot of `chosen`, one entry per guarantee (domain).
pub fn write(chosen: &[Guarantee]) -> serde_json::Result<String> {
    serde_json::to_string(&Out {
        version: VERSION,
        domaines: chosen
            .iter()
            .map(|g| OutDomain {
                domaine: &g.domain,
                code_garantie: &g.code,
                periode: Period {
                    debut: g.start,
                    fin: g.end,
                },
                prestations: g
                    .rules
                    .iter()
                    .map(|r| OutRule {
                        code: &r.code,
                        unite: r.unit.as_str(),
                        valeur: r.value.get(),
                        plafond_annuel: r.annual_ceiling.map(|c| c.get()),
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Why a stored snapshot cannot be read (a bug or a downgrade, never the client's doing).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("rule snapshot: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rule snapshot version {0} is not known to this server")]
    Version(u32),
    #[error("rule snapshot: unknown unit")]
    Unit,
}

/// The rules of each domain of a snapshot.
pub fn read(json: &str) -> Result<Vec<DomainRules>, SnapshotError> {
    let s: In = serde_json::from_str(json)?;
    if !(1..=VERSION).contains(&s.version) {
        return Err(SnapshotError::Version(s.version));
    }
    s.domaines
        .into_iter()
        .map(|d| {
            let rules = d
                .prestations
                .into_iter()
                .map(|p| {
                    Ok::<_, SnapshotError>(Rule {
                        code: p.code,
                        unit: Unit::parse(&p.unite).ok_or(SnapshotError::Unit)?,
                        value: Hundredths::from_hundredths(p.valeur),
                        annual_ceiling: p.plafond_annuel.map(Hundredths::from_hundredths),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DomainRules {
                domain: d.domaine,
                guarantee: d.code_garantie,
                period: d.periode.map(|p| (p.debut, p.fin)),
                rules,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tarification::rule;

    fn guarantee(domain: &str, code: &str, rules: Vec<Rule>) -> Guarantee {
        Guarantee {
            contract_id: 1,
            contract_number: "C1".into(),
            adherent_number: None,
            responsible: true,
            domain: domain.into(),
            label: "Pharmacie".into(),
            code: code.into(),
            priority: 1,
            network: None,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            rules,
        }
    }

    #[test]
    fn the_snapshot_is_what_tarification_reads_back() {
        let chosen = [
            guarantee(
                "PHAR",
                "G-\"é\\",
                vec![
                    rule("PH7", Unit::PO, 3500, None),
                    rule("LPP", Unit::FO, 1250, Some(20000)),
                ],
            ),
            guarantee("OPTI", "G2", vec![]),
        ];
        let json = write(&chosen).unwrap();
        assert!(json.starts_with(r#"{"version":2,"#), "{json}");
        let year = Some((
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        ));
        assert_eq!(
            read(&json).unwrap(),
            vec![
                DomainRules {
                    domain: "PHAR".into(),
                    guarantee: "G-\"é\\".into(),
                    period: year,
                    rules: chosen[0].rules.clone(),
                },
                DomainRules {
                    domain: "OPTI".into(),
                    guarantee: "G2".into(),
                    period: year,
                    rules: vec![]
                },
            ]
        );
    }

    #[test]
    fn snapshots_of_before_the_version_field_and_of_unknown_versions() {
        let old = r#"{"domaines":[{"domaine":"PHAR","code_garantie":"G","prestations":[{"code":"PH7","unite":"TA","valeur":5000,"plafond_annuel":null}]}]}"#;
        assert_eq!(read(old).unwrap()[0].rules[0].unit, Unit::TA);
        assert_eq!(read(old).unwrap()[0].period, None);
        let v1 =
            r#"{"version":1,"domaines":[{"domaine":"PHAR","code_garantie":"G","prestations":[]}]}"#;
        assert_eq!(read(v1).unwrap()[0].period, None);
        assert!(matches!(
            read(r#"{"version":3,"domaines":[]}"#),
            Err(SnapshotError::Version(3))
        ));
        assert!(matches!(
            read(
                r#"{"domaines":[{"domaine":"P","code_garantie":"G","prestations":[{"code":"X","unite":"ZZ","valeur":1,"plafond_annuel":null}]}]}"#
            ),
            Err(SnapshotError::Unit)
        ));
    }
}
