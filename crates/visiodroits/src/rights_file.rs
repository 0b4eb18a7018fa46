//! The rights file: CSV (columns [`CSV_COLUMNS`], a header line) or JSON Lines, one line per
//! beneficiary × contract × domain guarantee, each read and validated into a [`RightsLine`]. A
//! bad line's reason names the field, never its value (it may be a NIR).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use crate::domain::{AmcNumber, BirthDate, BirthRank, DomainCode, Hundredths, Nir};
use crate::store::import::RightsLine;
use crate::store::rights::{Rule, Unit};

/// The columns of the CSV format, in the order of the sample file.
pub const CSV_COLUMNS: &[&str] = &[
    "numero_amc",
    "nom_amc",
    "ref_beneficiaire",
    "nir",
    "cle_nir",
    "date_naissance",
    "rang_gemellaire",
    "nom",
    "prenom",
    "nir_ouvrant_1",
    "cle_ouvrant_1",
    "nir_ouvrant_2",
    "cle_ouvrant_2",
    "numero_contrat",
    "numero_adherent",
    "responsable",
    "domaine",
    "libelle_domaine",
    "code_garantie",
    "priorite",
    "reseau",
    "debut",
    "fin",
    "prestations",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson" | "json") => Format::JsonLines,
            _ => Format::Csv,
        }
    }
}

/// A line as read, every field text (CSV) or JSON value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    numero_amc: Option<String>,
    nom_amc: Option<String>,
    ref_beneficiaire: Option<String>,
    nir: Option<String>,
    cle_nir: Option<String>,
    date_naissance: Option<String>,
    rang_gemellaire: Option<Scalar>,
    nom: Option<String>,
    prenom: Option<String>,
    nir_ouvrant_1: Option<String>,
    cle_ouvrant_1: Option<String>,
    nir_ouvrant_2: Option<String>,
    cle_ouvrant_2: Option<String>,
    numero_contrat: Option<String>,
    numero_adherent: Option<String>,
    responsable: Option<Scalar>,
    domaine: Option<String>,
    libelle_domaine: Option<String>,
    code_garantie: Option<String>,
    priorite: Option<Scalar>,
    reseau: Option<String>,
    debut: Option<String>,
    fin: Option<String>,
    prestations: Option<Prestations>,
}

/// A number or boolean written as text (CSV) or as itself (JSON).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.trim().to_string(),
            Scalar::Int(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// `PH7:PO:100;DEF:FO:5.00:150.00` in CSV, an array of objects in JSON.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prestations {
    Text(String),
    List(Vec<JsonRule>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRule {
    code: String,
    unite: String,
    valeur: Scalar,
    plafond_annuel: Option<Scalar>,
}

fn opt(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn text(v: &Option<String>, field: &str, max: usize) -> Result<String, String> {
    let s = opt(v).ok_or_else(|| format!("{field}: obligatoire"))?;
    if s.chars().count() > max {
        return Err(format!("{field}: {max} caractères au plus"));
    }
    Ok(s.to_string())
}

fn date(v: &Option<String>, field: &str) -> Result<NaiveDate, String> {
    let s = opt(v).ok_or_else(|| format!("{field}: obligatoire"))?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| (1..=9999).contains(&d.year()))
        .ok_or_else(|| format!("{field}: date AAAA-MM-JJ attendue"))
}

fn nir(n: &Option<String>, k: &Option<String>, field: &str) -> Result<Option<Nir>, String> {
    match (opt(n), opt(k)) {
        (None, None) => Ok(None),
        (Some(n), Some(k)) => Nir::parse(n, k)
            .map(Some)
            .map_err(|e| format!("{field}: {}", e.text())),
        _ => Err(format!("{field}: NIR et clé vont ensemble")),
    }
}

fn rule(code: &str, unit: &str, value: &str, ceiling: Option<&str>) -> Result<Rule, String> {
    let code = code.trim();
    if code.is_empty() || code.len() > 7 {
        return Err("prestations: code de 1 à 7 caractères attendu".into());
    }
    let unit = Unit::parse(unit.trim()).ok_or("prestations: unité PO, TA ou FO attendue")?;
    let value = Hundredths::parse(value.trim(), 9_999_999)
        .ok_or("prestations: valeur décimale attendue")?;
    let annual_ceiling = match ceiling.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => {
            Some(Hundredths::parse(c, 9_999_999).ok_or("prestations: plafond décimal attendu")?)
        }
    };
    Ok(Rule {
        code: code.to_string(),
        unit,
        value,
        annual_ceiling,
    })
}

fn rules(p: &Option<Prestations>) -> Result<Vec<Rule>, String> {
    let mut out: Vec<Rule> = match p {
        None => Vec::new(),
        Some(Prestations::Text(s)) if s.trim().is_empty() => Vec::new(),
        Some(Prestations::Text(s)) => s
            .split(';')
            .map(|item| {
                let parts: Vec<&str> = item.split(':').collect();
                match parts.as_slice() {
                    [c, u, v] => rule(c, u, v, None),
                    [c, u, v, p] => rule(c, u, v, Some(p)),
                    _ => Err("prestations: CODE:UNITE:VALEUR[:PLAFOND] attendu".into()),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(Prestations::List(list)) => list
            .iter()
            .map(|r| {
                rule(
                    &r.code,
                    &r.unite,
                    &r.valeur.text(),
                    r.plafond_annuel.as_ref().map(|p| p.text()).as_deref(),
                )
            })
            .collect::<Result<_, _>>()?,
    };
    let n = out.len();
    out.sort_by(|a, b| a.code.cmp(&b.code));
    out.dedup_by(|a, b| a.code == b.code);
    if out.len() != n {
        return Err("prestations: code en double".into());
    }
    Ok(out)
}

fn validate(r: &RawLine) -> Result<RightsLine, String> {
    let amc = AmcNumber::parse(opt(&r.numero_amc).unwrap_or(""))
        .ok_or("numero_amc: 8 à 10 chiffres attendus")?;
    let own = nir(&r.nir, &r.cle_nir, "nir")?;
    let mut insured = Vec::new();
    if let Some(n) = nir(&r.nir_ouvrant_1, &r.cle_ouvrant_1, "nir_ouvrant_1")? {
        insured.push(n);
    }
    if let Some(n) = nir(&r.nir_ouvrant_2, &r.cle_ouvrant_2, "nir_ouvrant_2")? {
        insured.push(n);
    }
    if own.is_none() && insured.is_empty() {
        return Err("nir: le NIR du bénéficiaire ou d'un ouvrant droit est obligatoire".into());
    }
    let responsible = match r.responsable.as_ref().map(Scalar::text).as_deref() {
        Some("true" | "1" | "oui" | "O") => true,
        Some("false" | "0" | "non" | "N") | None => false,
        Some(_) => return Err("responsable: true ou false attendu".into()),
    };
    let priority = match r.priorite.as_ref().map(Scalar::text) {
        None => 1,
        Some(p) => p
            .parse::<i16>()
            .ok()
            .filter(|p| (0..=99).contains(p))
            .ok_or("priorite: entier de 0 à 99 attendu")?,
    };
    let start = date(&r.debut, "debut")?;
    let end = date(&r.fin, "fin")?;
    if end < start {
        return Err("fin: antérieure au début".into());
    }
    Ok(RightsLine {
        amc_name: text(&r.nom_amc, "nom_amc", 100)?,
        reference: text(&r.ref_beneficiaire, "ref_beneficiaire", 40)?,
        nir: own,
        birth: BirthDate::parse(opt(&r.date_naissance).unwrap_or(""))
            .ok_or("date_naissance: 8 chiffres AAAAMMJJ attendus")?,
        rank: BirthRank::parse(
            &r.rang_gemellaire
                .as_ref()
                .map(Scalar::text)
                .unwrap_or_default(),
        )
        .ok_or("rang_gemellaire: entier de 1 à 9 attendu")?,
        last_name: text(&r.nom, "nom", 80)?,
        first_name: text(&r.prenom, "prenom", 80)?,
        insured,
        contract: text(&r.numero_contrat, "numero_contrat", 30)?,
        adherent: match opt(&r.numero_adherent) {
            Some(a) if a.chars().count() > 15 => {
                return Err("numero_adherent: 15 caractères au plus".into())
            }
            a => a.map(str::to_string),
        },
        responsible,
        domain: DomainCode::parse(opt(&r.domaine).unwrap_or(""))
            .ok_or("domaine: code de 1 à 8 lettres majuscules ou chiffres attendu")?,
        label: text(&r.libelle_domaine, "libelle_domaine", 60)?,
        guarantee: text(&r.code_garantie, "code_garantie", 20)?,
        priority,
        network: match opt(&r.reseau) {
            Some(n) if n.chars().count() > 10 => return Err("reseau: 10 caractères au plus".into()),
            n => n.map(str::to_string),
        },
        start,
        end,
        rules: rules(&r.prestations)?,
        amc,
    })
}

/// The bad lines of `input` as (line number, reason), writing nothing (the benchmark checks its
/// generated files with it).
pub fn bad_lines(input: &[u8], format: Format) -> Vec<(u64, String)> {
    lines(Box::new(std::io::Cursor::new(input.to_vec())), format)
        .filter_map(|(n, r)| r.and_then(|r| validate(&r)).err().map(|e| (n, e)))
        .collect()
}

/// The lines of `input`, each with its number: validated, or the reason it is refused.
pub(crate) fn read(
    input: Box<dyn Read + Send>,
    format: Format,
) -> impl Iterator<Item = (u64, Result<RightsLine, String>)> + Send {
    lines(input, format).map(|(n, r)| (n, r.and_then(|r| validate(&r))))
}

/// Reads lines from `input`, yielding (line number, raw line or parse error).
fn lines(
    input: Box<dyn Read + Send>,
    format: Format,
) -> Box<dyn Iterator<Item = (u64, Result<RawLine, String>)> + Send> {
    match format {
        Format::Csv => {
            let reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(false)
                .from_reader(input);
            Box::new(
                reader
                    .into_deserialize::<RawLine>()
                    .enumerate()
                    .map(|(i, r)| {
                        // Line 1 is the header.
                        (i as u64 + 2, r.map_err(|e| csv_error(&e)))
                    }),
            )
        }
        Format::JsonLines => Box::new(
            BufReader::new(input)
                .lines()
                .enumerate()
                .filter(|(_, l)| l.as_ref().map_or(true, |s| !s.trim().is_empty()))
                .map(|(i, l)| {
                    let parsed = l
                        .map_err(|_| "lecture impossible (UTF-8 ?)".to_string())
                        .and_then(|s| {
                            serde_json::from_str::<RawLine>(&s).map_err(|e| json_error(&e))
                        });
                    (i as u64 + 1, parsed)
                }),
        ),
    }
}

/// A CSV error without the offending content (it may hold a NIR).
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} colonnes au lieu de {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "texte non UTF-8".into(),
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(i) => format!("colonne {} illisible", i + 1),
            None => "ligne illisible".into(),
        },
        _ => "ligne illisible".into(),
    }
}

fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde names unknown fields in backquotes; keep the field name only, never a value.
    if let Some(rest) = text.strip_prefix("unknown field `") {
        if let Some((field, _)) = rest.split_once('`') {
            return format!("{field}: champ inconnu");
        }
    }
    format!("JSON illisible (colonne {})", e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_line(fields: &[(&str, &str)]) -> String {
        let header = CSV_COLUMNS.join(",");
        let values: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| {
                fields
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default()
            })
            .collect();
        format!("{header}\n{}\n", values.join(","))
    }

    fn parse_csv(text: String) -> Vec<(u64, Result<RightsLine, String>)> {
        lines(
            Box::new(std::io::Cursor::new(text.into_bytes())),
            Format::Csv,
        )
        .map(|(n, r)| (n, r.and_then(|r| validate(&r))))
        .collect()
    }

    const GOOD: &[(&str, &str)] = &[
        ("numero_amc", "12345678"),
        ("nom_amc", "MUTUELLE"),
        ("ref_beneficiaire", "B1"),
        ("nir", "1850578006084"),
        ("cle_nir", "91"),
        ("date_naissance", "19850500"),
        ("rang_gemellaire", "1"),
        ("nom", "MARTIN"),
        ("prenom", "PAUL"),
        ("numero_contrat", "C1"),
        ("responsable", "true"),
        ("domaine", "PHAR"),
        ("libelle_domaine", "Pharmacie"),
        ("code_garantie", "G1"),
        ("priorite", "1"),
        ("debut", "2026-01-01"),
        ("fin", "2026-12-31"),
        ("prestations", "PH7:PO:100;PH4:TA:100;DEF:FO:5.00:150.00"),
    ];

    #[test]
    fn a_good_csv_line() {
        let parsed = parse_csv(csv_line(GOOD));
        let (n, line) = &parsed[0];
        assert_eq!(*n, 2);
        let line = line.as_ref().unwrap();
        assert_eq!(line.rules.len(), 3);
        assert_eq!(line.rules[0].code, "DEF");
        assert_eq!(
            line.rules[0].annual_ceiling,
            Some(Hundredths::from_hundredths(15000))
        );
        assert_eq!(line.birth.as_str(), "19850500");
    }

    #[test]
    fn bad_lines_name_the_field_and_never_the_value() {
        for (field, value, expected) in [
            ("cle_nir", "12", "nir: clé NIR invalide"),
            ("numero_amc", "12", "numero_amc:"),
            ("rang_gemellaire", "0", "rang_gemellaire:"),
            ("fin", "2025-01-01", "fin:"),
            ("prestations", "PH7:XX:100", "prestations: unité"),
            ("domaine", "phar", "domaine:"),
            // A year the database cannot store would fail the whole import, not this line.
            ("debut", "0000-01-01", "debut: date AAAA-MM-JJ attendue"),
        ] {
            let mut fields: Vec<(&str, &str)> =
                GOOD.iter().filter(|(k, _)| *k != field).copied().collect();
            fields.push((field, value));
            let parsed = parse_csv(csv_line(&fields));
            let err = parsed[0].1.as_ref().unwrap_err();
            assert!(err.starts_with(expected), "{field}: {err}");
            assert!(!err.contains("1850578006084"), "{err}");
        }
    }

    #[test]
    fn json_lines_with_rule_objects() {
        let json = r#"{"numero_amc":"12345678","nom_amc":"M","ref_beneficiaire":"B","nir_ouvrant_1":"1850578006084","cle_ouvrant_1":"91","date_naissance":"20100101","rang_gemellaire":2,"nom":"N","prenom":"P","numero_contrat":"C","responsable":false,"domaine":"PHAR","libelle_domaine":"Pharmacie","code_garantie":"G","priorite":3,"debut":"2026-01-01","fin":"2026-12-31","prestations":[{"code":"PH7","unite":"PO","valeur":"100"},{"code":"DEF","unite":"FO","valeur":5,"plafond_annuel":"150.00"}]}"#;
        let parsed: Vec<_> = lines(
            Box::new(std::io::Cursor::new(
                format!("{json}\n\n{{\"x\":1}}\n").into_bytes(),
            )),
            Format::JsonLines,
        )
        .map(|(n, r)| (n, r.and_then(|r| validate(&r))))
        .collect();
        let line = parsed[0].1.as_ref().unwrap();
        assert!(line.nir.is_none());
        assert_eq!(line.insured.len(), 1);
        assert_eq!(line.rank.get(), 2);
        assert_eq!(line.priority, 3);
        assert_eq!(parsed[1].0, 3, "blank lines keep the numbering");
        assert_eq!(parsed[1].1.as_ref().unwrap_err(), "x: champ inconnu");
    }
}
