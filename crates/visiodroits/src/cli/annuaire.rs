//! `annuaire import FILE`: the ANS "Annuaire Santé" public extract
//! (`PS_LibreAcces_Personne_activite_*.txt`: UTF-8, `|`-separated, a header line) into the schema
//! `annuaire`, replacing the previous load in one transaction.
//!
//! Columns are found by their header name, so that the extract's other columns (names,
//! addresses, added columns of later versions) are ignored. A line with a malformed identifier
//! is counted with its number and skipped; a line without any structure identifier (a
//! professional with no site of activity) is not an error and is not loaded.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;

use crate::store::annuaire::{Activity, Replacement};

/// The header names of the columns read.
pub(crate) const PS_ID: &str = "Identification nationale PP";
pub(crate) const PROFESSION: &str = "Code profession";
pub(crate) const FINESS_SITE: &str = "Numéro FINESS site";
pub(crate) const FINESS_EJ: &str = "Numéro FINESS établissement juridique";
pub(crate) const SIRET_SITE: &str = "Numéro SIRET site";

/// Activities per COPY batch.
const BATCH: usize = 10_000;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Data lines read (the header excluded).
    pub read: u64,
    pub loaded: u64,
    /// Lines without any structure identifier.
    pub without_structure: u64,
    pub rejected: u64,
    /// The first rejected lines: `ligne N: reason` (never the line's content).
    pub errors: Vec<String>,
}

/// Where each column read sits in a line.
struct Columns {
    ps_id: usize,
    profession: usize,
    finess_site: usize,
    finess_ej: usize,
    siret_site: usize,
    count: usize,
}

impl Columns {
    fn of(header: &str) -> anyhow::Result<Self> {
        let names: Vec<&str> = header
            .trim_start_matches('\u{feff}')
            .trim_end_matches(['\r', '\n'])
            .split('|')
            .map(str::trim)
            .collect();
        let find = |name: &str| {
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(name))
                .with_context(|| format!("the header has no column \"{name}\""))
        };
        Ok(Columns {
            ps_id: find(PS_ID)?,
            profession: find(PROFESSION)?,
            finess_site: find(FINESS_SITE)?,
            finess_ej: find(FINESS_EJ)?,
            siret_site: find(SIRET_SITE)?,
            count: names.len(),
        })
    }
}

fn optional(v: &str) -> Option<&str> {
    Some(v.trim()).filter(|v| !v.is_empty())
}

/// A FINESS: 9 characters, digits (2A/2B for Corsica).
fn finess(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 9
        && b.iter().enumerate().all(|(i, c)| {
            c.is_ascii_digit() || (i == 1 && (*c == b'A' || *c == b'B') && b[0] == b'2')
        })
}

/// One data line; `Ok(None)` for a professional without any structure.
fn parse_line(line: &str, c: &Columns) -> Result<Option<Activity>, String> {
    let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split('|').collect();
    if fields.len() != c.count {
        return Err(format!(
            "{} champs au lieu des {} de l'en-tête",
            fields.len(),
            c.count
        ));
    }
    let ps_id = optional(fields[c.ps_id]).ok_or(format!("{PS_ID}: vide"))?;
    let id_ok = ps_id.len() <= 20
        && ps_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/')
        && ps_id.as_bytes()[0].is_ascii_digit();
    if !id_ok {
        return Err(format!(
            "{PS_ID}: chiffre de type puis identifiant attendus (20 caractères au plus)"
        ));
    }
    let profession = optional(fields[c.profession]);
    if profession.is_some_and(|p| p.len() > 10 || !p.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return Err(format!("{PROFESSION}: code attendu"));
    }
    let finess_site = optional(fields[c.finess_site]);
    let finess_ej = optional(fields[c.finess_ej]);
    let siret_site = optional(fields[c.siret_site]);
    for (name, v) in [(FINESS_SITE, finess_site), (FINESS_EJ, finess_ej)] {
        if v.is_some_and(|v| !finess(v)) {
            return Err(format!("{name}: 9 chiffres attendus"));
        }
    }
    if siret_site.is_some_and(|v| v.len() != 14 || !v.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("{SIRET_SITE}: 14 chiffres attendus"));
    }
    if finess_site.is_none() && finess_ej.is_none() && siret_site.is_none() {
        return Ok(None);
    }
    let own = |v: Option<&str>| v.map(str::to_string);
    Ok(Some(Activity {
        ps_id: ps_id.to_string(),
        profession: own(profession),
        finess_site: own(finess_site),
        finess_ej: own(finess_ej),
        siret_site: own(siret_site),
    }))
}

/// Imports `path`, replacing the directory in force; progress on a terminal when `progress`.
pub async fn run(pool: &PgPool, path: &Path, progress: bool) -> anyhow::Result<Summary> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_reader(pool, Box::new(file), &name, progress).await
}

/// Imports from any reader (the demo's embedded extract); `name` is recorded with the load.
pub async fn run_reader(
    pool: &PgPool,
    input: Box<dyn Read>,
    name: &str,
    progress: bool,
) -> anyhow::Result<Summary> {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut header = String::new();
    reader
        .read_line(&mut header)
        .context("cannot read the header line")?;
    let columns = Columns::of(&header).context("not an Annuaire Santé extract")?;
    let show = progress && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut summary = Summary::default();
    let mut replacement = Replacement::begin(pool).await?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = Vec::new();
    let mut number = 1u64;
    loop {
        bytes.clear();
        if reader.read_until(b'\n', &mut bytes)? == 0 {
            break;
        }
        number += 1;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        summary.read += 1;
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| "UTF-8 invalide".to_string())
            .and_then(|line| parse_line(line, &columns));
        match parsed {
            Ok(Some(a)) => batch.push(a),
            Ok(None) => summary.without_structure += 1,
            Err(reason) => {
                summary.rejected += 1;
                if summary.errors.len() < 1000 {
                    summary.errors.push(format!("ligne {number}: {reason}"));
                }
            }
        }
        if batch.len() >= BATCH {
            replacement.add(&batch).await?;
            summary.loaded += batch.len() as u64;
            batch.clear();
        }
        if show && last_report.elapsed().as_millis() >= 500 {
            last_report = Instant::now();
            let rate = summary.read as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r{} lignes lues, {} activités, {} rejetées ({:.0} lignes/s)   ",
                summary.read, summary.loaded, summary.rejected, rate
            );
            let _ = std::io::stderr().flush();
        }
    }
    replacement.add(&batch).await?;
    summary.loaded += batch.len() as u64;
    replacement
        .commit(name, summary.read, summary.loaded, summary.rejected)
        .await?;
    if show {
        eprintln!();
    }
    Ok(summary)
}

/// The header line of the public extract (the columns of its 2024 layout), for generated files.
pub const EXTRACT_HEADER: &str = "Type d'identifiant PP|Identifiant PP|Identification nationale PP|Code civilité d'exercice|Libellé civilité d'exercice|Code civilité|Libellé civilité|Nom d'exercice|Prénom d'exercice|Code profession|Libellé profession|Code catégorie professionnelle|Libellé catégorie professionnelle|Code type savoir-faire|Libellé type savoir-faire|Code savoir-faire|Libellé savoir-faire|Code mode exercice|Libellé mode exercice|Numéro SIRET site|Numéro SIREN site|Numéro FINESS site|Numéro FINESS établissement juridique|Identifiant technique de la structure|Raison sociale site|Enseigne commerciale site|Complément destinataire (coord. structure)|Complément point géographique (coord. structure)|Numéro Voie (coord. structure)|Indice répétition voie (coord. structure)|Code type de voie (coord. structure)|Libellé type de voie (coord. structure)|Libellé Voie (coord. structure)|Mention distribution (coord. structure)|Bureau cedex (coord. structure)|Code postal (coord. structure)|Code commune (coord. structure)|Libellé commune (coord. structure)|Code pays (coord. structure)|Libellé pays (coord. structure)|Téléphone (coord. structure)|Téléphone 2 (coord. structure)|Télécopie (coord. structure)|Adresse e-mail (coord. structure)|Code Département (structure)|Libellé Département (structure)|Ancien identifiant de la structure|Autorité d'enregistrement|Code secteur d'activité|Libellé secteur d'activité|Code section tableau pharmaciens|Libellé section tableau pharmaciens|Code rôle|Libellé rôle|Code genre activité|Libellé genre activité|";

/// One line in the extract's layout (for generated files and tests): the other columns filled
/// as the extract fills them for a pharmacist of an officine.
pub fn extract_line(
    rpps: &str,
    name: (&str, &str),
    finess_site: &str,
    finess_ej: &str,
    siret: &str,
) -> String {
    let columns = EXTRACT_HEADER.split('|').count();
    let mut f = vec![String::new(); columns];
    let set = |f: &mut Vec<String>, header: &str, v: &str| {
        let i = EXTRACT_HEADER
            .split('|')
            .position(|h| h == header)
            .expect("a column of the extract");
        f[i] = v.to_string();
    };
    set(&mut f, "Type d'identifiant PP", "8");
    set(&mut f, "Identifiant PP", rpps);
    set(&mut f, PS_ID, &format!("8{rpps}"));
    set(&mut f, "Nom d'exercice", name.0);
    set(&mut f, "Prénom d'exercice", name.1);
    set(&mut f, PROFESSION, "21");
    set(&mut f, "Libellé profession", "Pharmacien");
    set(&mut f, "Code catégorie professionnelle", "C");
    set(&mut f, "Libellé catégorie professionnelle", "Civil");
    set(&mut f, "Code mode exercice", "L");
    set(&mut f, "Libellé mode exercice", "Libéral");
    set(&mut f, SIRET_SITE, siret);
    set(&mut f, FINESS_SITE, finess_site);
    set(&mut f, FINESS_EJ, finess_ej);
    set(&mut f, "Raison sociale site", "PHARMACIE DE DEMONSTRATION");
    set(&mut f, "Code secteur d'activité", "SA33");
    set(&mut f, "Libellé secteur d'activité", "Pharmacie d'officine");
    set(&mut f, "Code section tableau pharmaciens", "A");
    set(
        &mut f,
        "Libellé section tableau pharmaciens",
        "Pharmacien titulaire d'officine",
    );
    f.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Columns {
        Columns::of(EXTRACT_HEADER).unwrap()
    }

    #[test]
    fn columns_are_found_by_name_in_any_layout() {
        let c = columns();
        assert_eq!((c.ps_id, c.finess_site, c.count), (2, 21, 57));
        let short = Columns::of("\u{feff}Numéro FINESS site|Code profession|Identification nationale PP|Numéro SIRET site|Numéro FINESS établissement juridique\r\n").unwrap();
        assert_eq!((short.ps_id, short.finess_site, short.count), (2, 0, 5));
        assert!(Columns::of("Identifiant PP|Nom").is_err());
    }

    #[test]
    fn lines_of_the_extract() {
        let c = columns();
        let line = extract_line(
            "10001234565",
            ("DUPONT", "JEAN"),
            "750000001",
            "750000019",
            "",
        );
        assert_eq!(
            parse_line(&format!("{line}\r\n"), &c).unwrap(),
            Some(Activity {
                ps_id: "810001234565".into(),
                profession: Some("21".into()),
                finess_site: Some("750000001".into()),
                finess_ej: Some("750000019".into()),
                siret_site: None,
            })
        );
        let nowhere = extract_line("10001234565", ("DUPONT", "JEAN"), "", "", "");
        assert_eq!(parse_line(&nowhere, &c).unwrap(), None);
        let corsica = extract_line("10001234565", ("D", "J"), "2A0000019", "", "");
        assert!(parse_line(&corsica, &c).unwrap().is_some());
        for (bad, field) in [
            (
                extract_line("1000123456€", ("D", "J"), "750000001", "", ""),
                PS_ID,
            ),
            (
                extract_line("10001234565", ("D", "J"), "75000001", "", ""),
                FINESS_SITE,
            ),
            (
                extract_line("10001234565", ("D", "J"), "", "", "1234"),
                SIRET_SITE,
            ),
        ] {
            let e = parse_line(&bad, &c).unwrap_err();
            assert!(e.starts_with(field), "{e}");
        }
        assert!(parse_line("8100|x", &c).unwrap_err().contains("champs"));
    }
}
