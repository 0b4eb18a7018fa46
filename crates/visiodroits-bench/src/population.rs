//! The synthetic population of the benchmarks: beneficiary `i` has a NIR computed from `i` (with
//! a correct key), so the load generator can ask for any of them without reading the data file.
//! `bench gen-droits` writes the same population in the import format.

use std::io::Write;

/// The AMC of the generated population (the demo's).
pub const AMC: &str = "12345678";
/// Its rules: every pharmacy rate, and LPP with an annual ceiling high enough that a benchmark
/// never exhausts it (so every PEC locks and consumes it).
pub const RULES: &str =
    "PH7:PO:100;PH4:TA:100;PH2:TA:100;PH1:PO:100;DEF:PO:100;LPP:PO:100:99999.99";

/// Beneficiary `i`: (NIR, key, birth date). Sex 1/2, years 40–99, department 01–95; birth date
/// 19YYMM15, rank 1.
pub fn person(i: u64) -> (String, String, String) {
    let sex = 1 + i % 2;
    let year = 40 + (i / 2) % 60;
    let month = 1 + (i / 120) % 12;
    let dept = 1 + (i / 1440) % 95;
    let order = i % 1_000_000;
    let nir = format!("{sex}{year:02}{month:02}{dept:02}{order:06}");
    let number: u64 = nir.parse().expect("13 digits");
    let key = format!("{:02}", 97 - number % 97);
    (nir, key, format!("19{year:02}{month:02}15"))
}

/// Writes `count` beneficiaries (one PHAR guarantee each, contract C-i, adherent A-i) as CSV.
pub fn write_csv(count: u64, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", visiodroits::rights_file::CSV_COLUMNS.join(","))?;
    for i in 0..count {
        let (nir, key, birth) = person(i);
        writeln!(
            out,
            "{AMC},MUTUELLE DEMO,GEN-{i},{nir},{key},{birth},1,NOM,PRENOM,,,,,C-{i},A-{i},true,PHAR,Pharmacie,G-PHAR-GEN,1,,2026-01-01,2030-12-31,{RULES}"
        )?;
    }
    Ok(())
}

/// Professional `i` of the generated directory: an RPPS (11 digits, Luhn-valid, from `i`).
pub fn rpps(i: u64) -> String {
    let body = format!("2{:09}", i % 1_000_000_000);
    (0..10u32)
        .map(|d| format!("{body}{d}"))
        .find(|s| visiodroits::tls::profile::luhn_valid(s))
        .expect("one of ten check digits is right")
}

/// Writes `count` lines of the Annuaire Santé extract (every column of the public file): about
/// one professional in five has a second activity, one line in fifty has no structure, like the
/// national file's mix of officines, hospitals and practices.
pub fn write_directory(count: u64, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", visiodroits::cli::annuaire::EXTRACT_HEADER)?;
    for i in 0..count {
        // Every fifth line is a second activity of the previous line's professional.
        let person = if i % 5 == 1 { i - 1 } else { i };
        let rpps = rpps(person);
        let finess = format!("{:02}{:07}", 1 + i % 95, i % 10_000_000);
        let line = match i % 50 {
            0 => visiodroits::cli::annuaire::extract_line(&rpps, ("NOM", "PRENOM"), "", "", ""),
            1..=9 => visiodroits::cli::annuaire::extract_line(
                &rpps,
                ("NOM", "PRENOM"),
                "",
                "",
                &format!("{:014}", 10_000_000_000_000 + i),
            ),
            _ => visiodroits::cli::annuaire::extract_line(
                &rpps,
                ("NOM", "PRENOM"),
                &finess,
                &finess,
                "",
            ),
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use visiodroits::domain::Nir;

    #[test]
    fn every_generated_nir_is_valid_and_distinct_over_a_million() {
        let mut seen = std::collections::HashSet::new();
        for i in (0..1_000_000).step_by(997).chain([1, 999_999]) {
            let (nir, key, birth) = person(i);
            Nir::parse(&nir, &key).unwrap_or_else(|e| panic!("{i}: {nir} {key}: {e:?}"));
            assert_eq!(birth.len(), 8);
            assert!(seen.insert((nir, birth)), "{i} collides");
        }
    }

    #[test]
    fn the_csv_goes_through_the_importer_s_parser() {
        let mut out = Vec::new();
        write_csv(3, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 4);
        let bad = visiodroits::rights_file::bad_lines(
            text.as_bytes(),
            visiodroits::rights_file::Format::Csv,
        );
        assert!(bad.is_empty(), "{bad:?}");
    }
}
