//! `demande_droits`: who asks (`ps`), for whom (`beneficiaire`), at which AMC, at which date, for
//! which domains.

use chrono::NaiveDate;

use super::super::fields::{self, Declared, Problems};
use super::super::Seen;
use crate::domain::{AmcNumber, BirthDate, BirthRank, DomainCode, Nir};
use crate::soap::Element;

/// Elements of dispensing data: never in a rights request (7005).
pub(crate) const DISPENSING_ELEMENTS: &[&str] = &["prescription", "ligne", "prescription_chiffree"];

/// A valid `demande_droits`.
pub struct RightsRequest {
    pub ps: Declared,
    pub nir: Nir,
    pub birth: BirthDate,
    pub rank: BirthRank,
    pub amc: AmcNumber,
    pub adherent: Option<String>,
    pub date: NaiveDate,
    pub domains: Vec<DomainCode>,
}

/// Reads the request; every faulty field is named.
pub fn parse(body: &Element) -> (Seen, Result<RightsRequest, Vec<String>>) {
    let mut p = Problems::default();
    let mut seen = Seen::default();
    if let Some(h) = fields::header(body, &mut p) {
        seen.client_time = h.client_time;
    }
    let req = fields(body, &mut p);
    seen.amc = req.as_ref().map(|r| r.amc.as_str().to_string());
    match req {
        Some(r) if p.is_empty() => (seen, Ok(r)),
        _ => (seen, Err(p.0)),
    }
}

fn fields(body: &Element, p: &mut Problems) -> Option<RightsRequest> {
    p.unexpected(
        body,
        "",
        &[
            "entete",
            "ps",
            "beneficiaire",
            "amc",
            "date_reference",
            "domaines",
        ],
    );
    let ps = p.ps(body, false);
    let (mut nir, mut birth, mut rank) = (None, None, None);
    match body.child("beneficiaire") {
        None => p.add("beneficiaire", "élément obligatoire absent"),
        Some(b) => {
            p.unexpected(
                b,
                "beneficiaire",
                &["nir", "cle_nir", "date_naissance", "rang_gemellaire"],
            );
            let raw_nir = p.text(b, "beneficiaire", "nir", 13);
            let raw_key = p.text(b, "beneficiaire", "cle_nir", 2);
            if let Some(n) = raw_nir {
                match Nir::check_format(n) {
                    Err(e) => p.add("beneficiaire/nir", e.text()),
                    Ok(_) => {
                        if let Some(k) = raw_key {
                            match Nir::parse(n, k) {
                                Ok(v) => nir = Some(v),
                                Err(e) => p.add("beneficiaire/cle_nir", e.text()),
                            }
                        }
                    }
                }
            }
            birth = p
                .text(b, "beneficiaire", "date_naissance", 8)
                .and_then(|v| {
                    let d = BirthDate::parse(v);
                    if d.is_none() {
                        p.add(
                            "beneficiaire/date_naissance",
                            "8 chiffres AAAAMMJJ attendus",
                        );
                    }
                    d
                });
            rank = p
                .text(b, "beneficiaire", "rang_gemellaire", 1)
                .and_then(|v| {
                    let r = BirthRank::parse(v);
                    if r.is_none() {
                        p.add("beneficiaire/rang_gemellaire", "entier de 1 à 9 attendu");
                    }
                    r
                });
        }
    }

    let (mut amc, mut adherent) = (None, None);
    match body.child("amc") {
        None => p.add("amc", "élément obligatoire absent"),
        Some(a) => {
            p.unexpected(a, "amc", &["numero_amc", "numero_adherent"]);
            amc = p.text(a, "amc", "numero_amc", 10).and_then(|v| {
                let n = AmcNumber::parse(v);
                if n.is_none() {
                    p.add("amc/numero_amc", "8 à 10 chiffres attendus");
                }
                n
            });
            adherent = p
                .opt_text(a, "amc", "numero_adherent", 15)
                .map(str::to_string);
        }
    }

    let date = p.date(body, "", "date_reference");

    let mut domains = Vec::new();
    match body.child("domaines") {
        None => p.add("domaines", "élément obligatoire absent"),
        Some(d) => {
            p.unexpected(d, "domaines", &["domaine"]);
            let all: Vec<&Element> = d.children_named("domaine").collect();
            if all.is_empty() || all.len() > 20 {
                p.add("domaines/domaine", "de 1 à 20 domaines attendus");
            }
            for (i, el) in all.iter().enumerate() {
                match DomainCode::parse(el.value()) {
                    Some(c) => {
                        if !domains.contains(&c) {
                            domains.push(c);
                        }
                    }
                    None => p.add(
                        &format!("domaines/domaine[{}]", i + 1),
                        "code de 1 à 8 lettres majuscules ou chiffres attendu",
                    ),
                }
            }
        }
    }

    Some(RightsRequest {
        ps: ps?,
        nir: nir?,
        birth: birth?,
        rank: rank?,
        amc: amc?,
        adherent,
        date: date?,
        domains,
    })
}
