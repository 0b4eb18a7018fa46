//! The tarification engine: rules in, lines in, amounts out. Pure — no I/O — and in integer cents.
//!
//! For each line, the rule is the dossier's prestation rule with the line's `code_prestation`
//! (first domain that has it), else the `DEF` rule of the pharmacy domain (`PHAR`, or the first
//! domain with a `DEF`), else none (`L01`, the AMC pays 0). Before caps: `PO` pays
//! max(0, round(BR × v / 100) − RO); `TA` pays round((BR − RO) × v / 100); `FO` pays v (euros).
//! Caps in this order: never more than F − RO (`L03`), never more than what is left of the rule's
//! annual ceiling in the calendar year of the execution date (`L02`). Rounding is half-up. A line
//! executed outside the period of the guarantee that gives its rule is `L04`: the AMC pays 0 and
//! its ceiling is never consulted.
//!
//! Each line's result carries its justification (the rule applied, the amount before caps, and
//! for a ceiling line the ceiling and its consumption just before and after the request), which
//! a PEC stores and `ConsultationAccreditation` reads back.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use super::rules::{Rule, Unit};
use super::Hundredths;

/// The rules of one domain of a dossier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRules {
    pub domain: String,
    pub guarantee: String,
    /// The guarantee's period (first and last day), `None` in snapshots written before it was
    /// carried: such lines are never `L04`.
    pub period: Option<(NaiveDate, NaiveDate)>,
    pub rules: Vec<Rule>,
}

impl DomainRules {
    fn covers(&self, day: NaiveDate) -> bool {
        self.period
            .is_none_or(|(start, end)| start <= day && day <= end)
    }
}

/// A dispensing line, amounts in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub id: u32,
    pub prestation: String,
    pub execution: NaiveDate,
    /// F: billed amount.
    pub billed: i64,
    /// BR: AMO reimbursement base.
    pub base: i64,
    /// RO: AMO amount.
    pub amo: i64,
}

/// Line codes of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineCode {
    Computed,
    NotCovered,
    Ceiling,
    CutAfterAmo,
    OutsidePeriod,
}

impl LineCode {
    pub fn as_str(self) -> &'static str {
        match self {
            LineCode::Computed => "000",
            LineCode::NotCovered => "L01",
            LineCode::Ceiling => "L02",
            LineCode::CutAfterAmo => "L03",
            LineCode::OutsidePeriod => "L04",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LineCode::Computed => "Prise en charge calculée",
            LineCode::NotCovered => "Prestation non couverte",
            LineCode::Ceiling => "Plafond annuel atteint ou limitant",
            LineCode::CutAfterAmo => "Limitée au montant restant après l'AMO",
            LineCode::OutsidePeriod => "Exécutée hors de la période de la garantie",
        }
    }
}

/// Identifies a ceiling: (guarantee code, prestation code of the rule, calendar year).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CeilingKey {
    pub guarantee: String,
    pub prestation: String,
    pub year: i32,
}

/// A ceiling as one line saw it: the ceiling, and its consumption for this beneficiary and year
/// just before and just after the request (the same for every line of the request under it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeilingUse {
    pub ceiling: i64,
    pub before: i64,
    pub after: i64,
}

/// How a line's amount was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Justification {
    /// The rule applied (`None` for `L01`).
    pub rule: Option<Rule>,
    /// The amount the rule gives before the caps (0 for `L01` and `L04`).
    pub before_caps: i64,
    /// For a line under an annual ceiling that was consulted.
    pub ceiling: Option<CeilingUse>,
}

/// The result of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    pub id: u32,
    pub amc: i64,
    pub patient: i64,
    pub guarantee: Option<String>,
    pub code: LineCode,
    pub justification: Justification,
}

/// The result of a prescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub lines: Vec<LineResult>,
    pub total_billed: i64,
    pub total_amo: i64,
    pub total_amc: i64,
    pub total_patient: i64,
    /// What the lines consumed of each ceiling (only ceilings that were consumed).
    pub consumed: BTreeMap<CeilingKey, i64>,
}

/// Half-up rounding of `n / d` for non-negative `n`, positive `d`.
fn div_round(n: i128, d: i128) -> i64 {
    ((n + d / 2) / d) as i64
}

/// Finds the rule of a prestation: (its domain, rule).
pub(crate) fn rule_for<'a>(
    domains: &'a [DomainRules],
    prestation: &str,
) -> Option<(&'a DomainRules, &'a Rule)> {
    for d in domains {
        if let Some(r) = d.rules.iter().find(|r| r.code == prestation) {
            return Some((d, r));
        }
    }
    let default_of = |d: &'a DomainRules| d.rules.iter().find(|r| r.code == "DEF").map(|r| (d, r));
    domains
        .iter()
        .find(|d| d.domain == "PHAR")
        .and_then(default_of)
        .or_else(|| domains.iter().find_map(default_of))
}

/// The ceilings the lines may consume (to lock them before computing); a line outside its
/// guarantee's period consults none.
pub(crate) fn ceilings_touched(domains: &[DomainRules], lines: &[Line]) -> Vec<(CeilingKey, i64)> {
    let mut out: BTreeMap<CeilingKey, i64> = BTreeMap::new();
    for l in lines {
        if let Some((d, r)) =
            rule_for(domains, &l.prestation).filter(|(d, _)| d.covers(l.execution))
        {
            if let Some(c) = r.annual_ceiling {
                out.insert(
                    CeilingKey {
                        guarantee: d.guarantee.clone(),
                        prestation: r.code.clone(),
                        year: l.execution.year(),
                    },
                    c.get(),
                );
            }
        }
    }
    out.into_iter().collect()
}

/// Computes the AMC amounts. `already` is what each ceiling had consumed before this request.
pub(crate) fn compute(
    domains: &[DomainRules],
    lines: &[Line],
    already: &BTreeMap<CeilingKey, i64>,
) -> Outcome {
    let mut consumed: BTreeMap<CeilingKey, i64> = BTreeMap::new();
    let mut results = Vec::with_capacity(lines.len());
    // The ceiling of each line that consulted one, to give it its before/after at the end.
    let mut ceilings: Vec<Option<(CeilingKey, i64)>> = Vec::with_capacity(lines.len());
    for l in lines {
        let after_amo = (l.billed - l.amo).max(0);
        let unpaid = |guarantee: Option<&DomainRules>, rule: Option<&Rule>, code| LineResult {
            id: l.id,
            amc: 0,
            patient: after_amo,
            guarantee: guarantee.map(|d| d.guarantee.clone()),
            code,
            justification: Justification {
                rule: rule.cloned(),
                before_caps: 0,
                ceiling: None,
            },
        };
        let Some((domain, rule)) = rule_for(domains, &l.prestation) else {
            results.push(unpaid(None, None, LineCode::NotCovered));
            ceilings.push(None);
            continue;
        };
        if !domain.covers(l.execution) {
            results.push(unpaid(Some(domain), Some(rule), LineCode::OutsidePeriod));
            ceilings.push(None);
            continue;
        }
        let v = i128::from(rule.value.get());
        let before_caps = match rule.unit {
            Unit::PO => (div_round(i128::from(l.base) * v, 10_000) - l.amo).max(0),
            Unit::TA => div_round(i128::from((l.base - l.amo).max(0)) * v, 10_000),
            Unit::FO => rule.value.get(),
        };
        let mut amount = before_caps;
        let mut code = LineCode::Computed;
        if amount > after_amo {
            amount = after_amo;
            code = LineCode::CutAfterAmo;
        }
        let mut ceiling_of_line = None;
        if let Some(ceiling) = rule.annual_ceiling {
            let key = CeilingKey {
                guarantee: domain.guarantee.clone(),
                prestation: rule.code.clone(),
                year: l.execution.year(),
            };
            let used =
                already.get(&key).copied().unwrap_or(0) + consumed.get(&key).copied().unwrap_or(0);
            let left = (ceiling.get() - used).max(0);
            if amount > left {
                amount = left;
                code = LineCode::Ceiling;
            }
            if amount > 0 {
                *consumed.entry(key.clone()).or_insert(0) += amount;
            }
            ceiling_of_line = Some((key, ceiling.get()));
        }
        ceilings.push(ceiling_of_line);
        results.push(LineResult {
            id: l.id,
            amc: amount,
            patient: after_amo - amount,
            guarantee: Some(domain.guarantee.clone()),
            code,
            justification: Justification {
                rule: Some(rule.clone()),
                before_caps,
                ceiling: None,
            },
        });
    }
    for (r, c) in results.iter_mut().zip(ceilings) {
        if let Some((key, ceiling)) = c {
            let before = already.get(&key).copied().unwrap_or(0);
            r.justification.ceiling = Some(CeilingUse {
                ceiling,
                before,
                after: before + consumed.get(&key).copied().unwrap_or(0),
            });
        }
    }
    Outcome {
        total_billed: lines.iter().map(|l| l.billed).sum(),
        total_amo: lines.iter().map(|l| l.amo).sum(),
        total_amc: results.iter().map(|r| r.amc).sum(),
        total_patient: results.iter().map(|r| r.patient).sum(),
        lines: results,
        consumed,
    }
}

/// Hundredths helper for tests and callers building rules.
pub fn rule(code: &str, unit: Unit, value: i64, ceiling: Option<i64>) -> Rule {
    Rule {
        code: code.to_string(),
        unit,
        value: Hundredths::from_hundredths(value),
        annual_ceiling: ceiling.map(Hundredths::from_hundredths),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 15).unwrap()
    }

    fn line(id: u32, prestation: &str, billed: i64, base: i64, amo: i64) -> Line {
        Line {
            id,
            prestation: prestation.into(),
            execution: day(),
            billed,
            base,
            amo,
        }
    }

    fn pharmacy(rules: Vec<Rule>) -> Vec<DomainRules> {
        vec![DomainRules {
            domain: "PHAR".into(),
            guarantee: "G".into(),
            period: None,
            rules,
        }]
    }

    #[test]
    fn each_rule_and_cap() {
        let none = BTreeMap::new();
        // (what, rule, line, expected amc, expected code)
        let cases: Vec<(&str, Vec<Rule>, Line, i64, LineCode)> = vec![
            // PH7 65 %: BR 10.00, RO 6.50; PO 100 % → 10.00 − 6.50 = 3.50.
            (
                "PO 100 %",
                vec![rule("PH7", Unit::PO, 10_000, None)],
                line(1, "PH7", 1000, 1000, 650),
                350,
                LineCode::Computed,
            ),
            // PO 150 % of BR 10.00 = 15.00 − 6.50 = 8.50, but F − RO = 3.50 → L03.
            (
                "PO capped after AMO",
                vec![rule("PH7", Unit::PO, 15_000, None)],
                line(1, "PH7", 1000, 1000, 650),
                350,
                LineCode::CutAfterAmo,
            ),
            // PO 50 % of 10.00 = 5.00 − 6.50 < 0 → 0.
            (
                "PO below the AMO",
                vec![rule("PH7", Unit::PO, 5_000, None)],
                line(1, "PH7", 1000, 1000, 650),
                0,
                LineCode::Computed,
            ),
            // TA 100 % of (BR − RO) = 3.50.
            (
                "TA 100 %",
                vec![rule("PH4", Unit::TA, 10_000, None)],
                line(1, "PH4", 1000, 1000, 300),
                700,
                LineCode::Computed,
            ),
            // TA 33.33 % of 7.01 = 2.3364… → 2.34 (half-up).
            (
                "TA rounding",
                vec![rule("PH4", Unit::TA, 3_333, None)],
                line(1, "PH4", 1001, 1001, 300),
                234,
                LineCode::Computed,
            ),
            // FO 5.00 per line.
            (
                "FO",
                vec![rule("LPP", Unit::FO, 500, None)],
                line(1, "LPP", 2000, 1500, 900),
                500,
                LineCode::Computed,
            ),
            // FO 20.00 but F − RO = 11.00 → L03.
            (
                "FO capped",
                vec![rule("LPP", Unit::FO, 2000, None)],
                line(1, "LPP", 2000, 1500, 900),
                1100,
                LineCode::CutAfterAmo,
            ),
            // No rule for PH2, DEF applies.
            (
                "DEF fallback",
                vec![rule("DEF", Unit::TA, 10_000, None)],
                line(1, "PH2", 1000, 1000, 150),
                850,
                LineCode::Computed,
            ),
            // No rule at all → L01, AMC pays 0.
            (
                "L01",
                vec![rule("PH7", Unit::PO, 10_000, None)],
                line(1, "PH1", 1000, 1000, 1000),
                0,
                LineCode::NotCovered,
            ),
            // Ceiling 2.00 on 3.50 → L02 with 2.00.
            (
                "ceiling cuts",
                vec![rule("PH7", Unit::PO, 10_000, Some(200))],
                line(1, "PH7", 1000, 1000, 650),
                200,
                LineCode::Ceiling,
            ),
        ];
        for (what, rules, l, amc, code) in cases {
            let out = compute(&pharmacy(rules), std::slice::from_ref(&l), &none);
            assert_eq!((out.lines[0].amc, out.lines[0].code), (amc, code), "{what}");
            assert_eq!(out.lines[0].patient, l.billed - l.amo - amc, "{what}");
        }
    }

    #[test]
    fn ceilings_count_earlier_consumption_and_earlier_lines() {
        let domains = pharmacy(vec![rule("LPP", Unit::FO, 1000, Some(2500))]);
        let key = CeilingKey {
            guarantee: "G".into(),
            prestation: "LPP".into(),
            year: 2026,
        };
        let lines = vec![
            line(1, "LPP", 5000, 3000, 1800),
            line(2, "LPP", 5000, 3000, 1800),
            line(3, "LPP", 5000, 3000, 1800),
        ];
        let out = compute(&domains, &lines, &BTreeMap::new());
        let got: Vec<(i64, LineCode)> = out.lines.iter().map(|l| (l.amc, l.code)).collect();
        assert_eq!(
            got,
            vec![
                (1000, LineCode::Computed),
                (1000, LineCode::Computed),
                (500, LineCode::Ceiling)
            ]
        );
        assert_eq!(out.consumed[&key], 2500);
        let already = BTreeMap::from([(key.clone(), 2500)]);
        let out = compute(&domains, &lines[..1], &already);
        assert_eq!(
            (out.lines[0].amc, out.lines[0].code),
            (0, LineCode::Ceiling),
            "ceiling reached"
        );
        assert!(out.consumed.is_empty());
        // Another year has its own ceiling.
        let mut next_year = lines[0].clone();
        next_year.execution = NaiveDate::from_ymd_opt(2027, 1, 2).unwrap();
        let out = compute(&domains, &[next_year], &already);
        assert_eq!(out.lines[0].amc, 1000);
    }

    #[test]
    fn a_line_outside_its_guarantee_period_is_l04_and_consults_no_ceiling() {
        let mut domains = pharmacy(vec![
            rule("PH7", Unit::PO, 10_000, None),
            rule("LPP", Unit::FO, 1000, Some(2500)),
        ]);
        // The guarantee starts the day after `day()`.
        domains[0].period = Some((
            NaiveDate::from_ymd_opt(2026, 3, 16).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        ));
        let mut inside = line(2, "PH7", 1000, 1000, 650);
        inside.execution = NaiveDate::from_ymd_opt(2026, 3, 16).unwrap();
        let mut last_day = line(4, "PH7", 1000, 1000, 650);
        last_day.execution = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let lines = vec![
            line(1, "LPP", 5000, 3000, 1800),
            inside,
            line(3, "PH7", 1000, 1000, 650),
            last_day,
        ];
        assert!(
            ceilings_touched(&domains, &lines).is_empty(),
            "an L04 line locks no ceiling"
        );
        let out = compute(&domains, &lines, &BTreeMap::new());
        let got: Vec<(u32, i64, i64, LineCode)> = out
            .lines
            .iter()
            .map(|l| (l.id, l.amc, l.patient, l.code))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 3200, LineCode::OutsidePeriod),
                (2, 350, 0, LineCode::Computed),
                (3, 0, 350, LineCode::OutsidePeriod),
                (4, 350, 0, LineCode::Computed),
            ]
        );
        assert_eq!(out.lines[0].code.as_str(), "L04");
        assert_eq!(out.lines[0].justification.ceiling, None);
        assert_eq!(out.lines[0].justification.before_caps, 0);
        assert!(out.consumed.is_empty());
        assert_eq!((out.total_amc, out.total_patient), (700, 3550));
    }

    #[test]
    fn each_line_carries_its_justification() {
        let domains = pharmacy(vec![
            rule("PH7", Unit::PO, 15_000, None),
            rule("LPP", Unit::FO, 1000, Some(2500)),
        ]);
        let key = CeilingKey {
            guarantee: "G".into(),
            prestation: "LPP".into(),
            year: 2026,
        };
        let lines = vec![
            line(1, "PH7", 1000, 1000, 650),
            line(2, "LPP", 5000, 3000, 1800),
            line(3, "LPP", 5000, 3000, 1800),
            line(4, "PH1", 1000, 1000, 650),
        ];
        let already = BTreeMap::from([(key, 800)]);
        let out = compute(&domains, &lines, &already);
        let j: Vec<&Justification> = out.lines.iter().map(|l| &l.justification).collect();
        // PO 150 % of 10.00 − 6.50 = 8.50 before caps, cut to 3.50 (L03).
        assert_eq!(j[0].rule.as_ref().map(|r| r.code.as_str()), Some("PH7"));
        assert_eq!((j[0].before_caps, j[0].ceiling.clone()), (850, None));
        // 8.00 consumed before; 10.00 then 7.00 (L02): the ceiling goes from 8.00 to 25.00.
        let under = Some(CeilingUse {
            ceiling: 2500,
            before: 800,
            after: 2500,
        });
        assert_eq!((j[1].before_caps, &j[1].ceiling), (1000, &under));
        assert_eq!((j[2].before_caps, &j[2].ceiling), (1000, &under));
        assert_eq!(
            (out.lines[1].amc, out.lines[2].amc, out.lines[2].code),
            (1000, 700, LineCode::Ceiling)
        );
        // L01: no rule, nothing before caps.
        assert_eq!((j[3].rule.clone(), j[3].before_caps), (None, 0));
        assert_eq!(out.lines[3].code, LineCode::NotCovered);
    }

    #[test]
    fn specific_rules_win_over_def_and_pharmacy_def_over_others() {
        let domains = vec![
            DomainRules {
                domain: "OPTI".into(),
                guarantee: "GO".into(),
                period: None,
                rules: vec![rule("DEF", Unit::FO, 10_000, None)],
            },
            DomainRules {
                domain: "PHAR".into(),
                guarantee: "GP".into(),
                period: None,
                rules: vec![
                    rule("PH7", Unit::PO, 10_000, None),
                    rule("DEF", Unit::TA, 5_000, None),
                ],
            },
        ];
        assert_eq!(rule_for(&domains, "PH7").unwrap().1.code, "PH7");
        assert_eq!(
            rule_for(&domains, "PH4").unwrap(),
            (&domains[1], &domains[1].rules[1])
        );
    }

    /// xorshift: deterministic random cases without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> i64 {
            (self.next() % n) as i64
        }
    }

    #[test]
    fn properties_hold_on_random_prescriptions() {
        let mut rng = Rng(0x5eed_1234_abcd_9876);
        let units = [Unit::PO, Unit::TA, Unit::FO];
        let codes = ["PH7", "PH4", "PH2", "PH1", "LPP", "DEF"];
        for case in 0..20_000 {
            let mut rules: Vec<Rule> = Vec::new();
            for c in codes {
                if rng.below(3) == 0 {
                    continue;
                }
                let unit = units[rng.below(3) as usize];
                let value = match unit {
                    Unit::FO => rng.below(20_000),
                    _ => rng.below(30_001),
                };
                let ceiling = if rng.below(3) == 0 {
                    Some(rng.below(50_000))
                } else {
                    None
                };
                rules.push(rule(c, unit, value, ceiling));
            }
            let domains = pharmacy(rules);
            let mut lines: Vec<Line> = Vec::new();
            for i in 0..1 + rng.below(8) {
                let billed = rng.below(9_999_999);
                let base = rng.below(billed as u64 + 1);
                let amo = rng.below(base as u64 + 1);
                lines.push(line(
                    i as u32 + 1,
                    codes[rng.below(6) as usize],
                    billed,
                    base,
                    amo,
                ));
            }
            let mut already: BTreeMap<CeilingKey, i64> = BTreeMap::new();
            for (k, c) in ceilings_touched(&domains, &lines) {
                already.insert(k, rng.below(c as u64 + 1));
            }
            let out = compute(&domains, &lines, &already);
            for (l, r) in lines.iter().zip(&out.lines) {
                assert!(
                    r.amc >= 0 && r.patient >= 0,
                    "case {case}: negative amount {r:?}"
                );
                assert!(r.amc <= l.billed - l.amo, "case {case}: AMC above F − RO");
                assert_eq!(
                    r.patient + r.amc + l.amo,
                    l.billed,
                    "case {case}: shares do not add up"
                );
            }
            assert_eq!(out.total_amc, out.lines.iter().map(|r| r.amc).sum::<i64>());
            assert_eq!(
                out.total_patient,
                out.lines.iter().map(|r| r.patient).sum::<i64>()
            );
            assert_eq!(
                out.total_billed,
                lines.iter().map(|l| l.billed).sum::<i64>()
            );
            assert_eq!(out.total_amo, lines.iter().map(|l| l.amo).sum::<i64>());
            for (key, ceiling) in ceilings_touched(&domains, &lines) {
                let total = already.get(&key).copied().unwrap_or(0)
                    + out.consumed.get(&key).copied().unwrap_or(0);
                assert!(
                    total <= ceiling,
                    "case {case}: ceiling {key:?} exceeded: {total} > {ceiling}"
                );
            }
        }
    }
}
