//! `DemandeDroits` → `FournitDroits`: the patient's rights and a dossier number.
//!
//! Order of the checks: who calls (8002, 8003), one kind of data per exchange (7005), the
//! message's fields (6000, every faulty field named), the `ps` against the certificate (8001), the
//! structure (from the certificate, or declared and checked in the directory: 8004), the AMC
//! (6020/6021), then the search (6005/6001), the rights at the date (6002) and the requested
//! domains (6003). A success issues the dossier, its pairing row and the audit row in one
//! transaction.

use std::collections::BTreeMap;

use chrono::{NaiveDate, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::caller::{self, Caller};
use super::common::{self, Problems};
use super::{Call, ExchangeError, Exchanges};
use crate::code::Code;
use crate::config::RightsClientCert;
use crate::domain::{AmcNumber, BirthDate, BirthRank, DomainCode, DossierNumber, Nir};
use crate::soap::writer::envelope;
use crate::soap::Element;
use crate::store::rights::{self, Guarantee, NewDossier};
use crate::store::Role;

/// Elements of dispensing data: never in a rights request.
pub const DISPENSING_ELEMENTS: &[&str] = &["prescription", "ligne", "prescription_chiffree"];

/// A valid `demande_droits`.
struct Request {
    ps_id: String,
    structure: Option<String>,
    nir: Nir,
    birth: BirthDate,
    rank: BirthRank,
    amc: AmcNumber,
    adherent: Option<String>,
    date: NaiveDate,
    domains: Vec<DomainCode>,
}

/// Parses an `xs:date`, with or without a time zone.
pub fn parse_date(v: &str) -> Option<NaiveDate> {
    let date = v.get(..10)?;
    let zone = &v[10..];
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone.as_bytes()[3] == b':');
    if !zone_ok {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

fn parse(body: &Element, p: &mut Problems) -> Option<Request> {
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
    let ps = body.child("ps");
    let (ps_id, structure) = match ps {
        None => {
            p.add("ps", "élément obligatoire absent");
            (None, None)
        }
        Some(ps) => {
            p.unexpected(ps, "ps", &["identifiant_ps", "numero_structure", "nom"]);
            let id = p.text(ps, "ps", "identifiant_ps", 20);
            let structure = p.opt_text(ps, "ps", "numero_structure", 9).and_then(|s| {
                let ok = s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    p.add("ps/numero_structure", "9 chiffres attendus");
                }
                ok.then(|| s.to_string())
            });
            p.opt_text(ps, "ps", "nom", 45);
            (id.map(str::to_string), structure)
        }
    };

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

    let date = p.text(body, "", "date_reference", 16).and_then(|v| {
        let d = parse_date(v);
        if d.is_none() {
            p.add("date_reference", "date AAAA-MM-JJ attendue");
        }
        d
    });

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

    Some(Request {
        ps_id: ps_id?,
        structure,
        nir: nir?,
        birth: birth?,
        rank: rank?,
        amc: amc?,
        adherent,
        date: date?,
        domains,
    })
}

/// The wire checks of a `demande_droits` (no I/O), for [`super::wire::check`].
pub fn check(body: &Element, p: &mut Problems) {
    common::header(body, p);
    let _ = parse(body, p);
}

/// The ceiling key: HMAC-SHA256(pseudonymisation key, numero_amc ":" beneficiary internal id).
pub fn ceiling_key(key: &[u8], amc: &str, beneficiary: i64) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(amc.as_bytes());
    mac.update(b":");
    mac.update(beneficiary.to_string().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The guarantees answered: open at the date, requested, of the one contract that covers the
/// most requested domains (then the best priority), one per domain.
fn select(guarantees: Vec<Guarantee>, req: &Request) -> Result<Vec<Guarantee>, Code> {
    let open: Vec<Guarantee> = guarantees
        .into_iter()
        .filter(|g| g.start <= req.date && req.date <= g.end)
        .collect();
    if open.is_empty() {
        return Err(Code::RightsNotOpen);
    }
    let requested: Vec<Guarantee> = open
        .into_iter()
        .filter(|g| req.domains.iter().any(|d| d.as_str() == g.domain))
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

/// The snapshot of the rules a dossier carries into tarification: no identity in it.
fn rules_snapshot(chosen: &[Guarantee]) -> serde_json::Result<String> {
    // Written straight from borrowed fields: building a `serde_json::Value` tree first was ~5 % of
    // the server's CPU per rights exchange (a map and a string per field).
    #[derive(serde::Serialize)]
    struct Snapshot<'a> {
        domaines: Vec<Domain<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Domain<'a> {
        domaine: &'a str,
        code_garantie: &'a str,
        prestations: Vec<Service<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Service<'a> {
        code: &'a str,
        unite: &'static str,
        valeur: i64,
        plafond_annuel: Option<i64>,
    }
    let snapshot = Snapshot {
        domaines: chosen
            .iter()
            .map(|g| Domain {
                domaine: &g.domain,
                code_garantie: &g.code,
                prestations: g
                    .rules
                    .iter()
                    .map(|r| Service {
                        code: &r.code,
                        unite: r.unit.as_str(),
                        valeur: r.value.get(),
                        plafond_annuel: r.annual_ceiling.map(|c| c.get()),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_string(&snapshot)
}

/// Handles `demande_droits`.
pub async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let body = call.body;
    let cert = caller::professional(call, ex.rights_client_cert == RightsClientCert::Required)?;
    if body.contains_named(DISPENSING_ELEMENTS) {
        return Err(ExchangeError::Business(Code::MixedData));
    }
    let mut p = Problems::default();
    if let Some(h) = common::header(body, &mut p) {
        call.audit.client_time = h.client_time.map(|t| t.with_timezone(&Utc));
    }
    let req = parse(body, &mut p);
    if let Some(r) = &req {
        call.audit.amc = Some(r.amc.as_str().to_string());
    }
    let req = match req {
        Some(r) if p.is_empty() => r,
        _ => return Err(ExchangeError::Invalid(p.0)),
    };
    let caller = match cert {
        Some(cert) => {
            match caller::bind(
                cert,
                &req.ps_id,
                req.structure.as_deref(),
                ex.structure_check,
            )? {
                Some(c) => c,
                None => {
                    return Err(ExchangeError::Invalid(vec![
                        "ps/numero_structure: obligatoire, la carte ne porte pas la structure"
                            .into(),
                    ]))
                }
            }
        }
        // Without a certificate (when configured), the dossier is bound to the declared structure.
        None => match &req.structure {
            Some(s) => Caller::uncertified(&req.ps_id, s),
            None => {
                return Err(ExchangeError::Invalid(vec![
                    "ps/numero_structure: obligatoire sans certificat client".into(),
                ]))
            }
        },
    };
    caller.audit(call);
    let structure = caller.structure.clone();

    let mut tx = ex.store.begin_as(Role::Rights).await?;
    caller.confirm(&mut tx).await?;
    let found = rights::lookup_by_nir(&mut tx, &req.amc, &req.nir, &req.birth, req.rank).await?;
    let Some((amc_number, amc_name, open)) = found.amc else {
        return Err(ExchangeError::Business(Code::AmcUnknown));
    };
    if !open {
        return Err(ExchangeError::Business(Code::ServiceClosed));
    }
    let (beneficiary, guarantees) = match (found.beneficiary, &req.adherent) {
        (Some(b), _) => (b, found.guarantees),
        (None, Some(adherent)) => {
            match rights::find_by_adherent(&mut tx, &req.amc, &req.birth, req.rank, adherent)
                .await?
            {
                Some(b) => (b, rights::guarantees(&mut tx, b).await?),
                None => return Err(ExchangeError::Business(Code::BeneficiaryUnknown)),
            }
        }
        (None, None) => return Err(ExchangeError::Business(Code::AdherentNeeded)),
    };
    let chosen = select(guarantees, &req).map_err(ExchangeError::Business)?;

    let number = DossierNumber::new();
    let expiration = Utc::now()
        + chrono::Duration::from_std(ex.dossier_ttl)
            .map_err(|e| anyhow::anyhow!("dossier TTL: {e}"))?;
    let key = ceiling_key(ex.pseudonymisation_key.expose(), &amc_number, beneficiary);
    let rules = rules_snapshot(&chosen).map_err(|e| anyhow::anyhow!("rules snapshot: {e}"))?;
    call.audit.dossier = Some(number.uuid());
    rights::issue_dossier(
        &mut tx,
        &NewDossier {
            number: number.uuid(),
            beneficiary,
            contract: chosen[0].contract_id,
            amc: &amc_number,
            structure: &structure,
            expiration,
            ceiling_key: &key,
            rules: &rules,
        },
        call.audit_as(Code::Ok),
    )
    .await?;
    tx.commit().await?;

    let contract = &chosen[0];
    Ok(envelope(call.version, |x| {
        x.open("fournit_droits");
        common::write_head(
            x,
            &ex.server,
            call.request_id,
            call.response_id,
            Code::Ok,
            &[],
        );
        x.open("dossier")
            .leaf("numero_dossier", &number.to_string())
            .leaf(
                "expiration",
                &expiration.to_rfc3339_opts(SecondsFormat::Secs, true),
            )
            .close("dossier");
        x.open("droits");
        x.open("amc")
            .leaf("numero_amc", &amc_number)
            .leaf("nom", &amc_name)
            .close("amc");
        x.open("contrat")
            .leaf("numero_contrat", &contract.contract_number)
            .leaf_opt("numero_adherent", contract.adherent_number.as_deref())
            .leaf(
                "responsable",
                if contract.responsible {
                    "true"
                } else {
                    "false"
                },
            )
            .close("contrat");
        for g in &chosen {
            x.open("domaine")
                .leaf("code", &g.domain)
                .leaf("libelle", &g.label)
                .leaf("code_garantie", &g.code)
                .leaf("priorite", &format!("{:02}", g.priority))
                .leaf_opt("reseau", g.network.as_deref());
            x.open("periode")
                .leaf("debut", &g.start.to_string())
                .leaf("fin", &g.end.to_string())
                .close("periode");
            for r in &g.rules {
                x.open("prestation")
                    .leaf("code", &r.code)
                    .leaf("unite", r.unit.as_str())
                    .leaf("valeur", &r.value.to_string())
                    .leaf_opt(
                        "plafond_annuel",
                        r.annual_ceiling.map(|c| c.to_string()).as_deref(),
                    )
                    .close("prestation");
            }
            x.close("domaine");
        }
        x.close("droits");
        x.close("fournit_droits");
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("2026-11-22"),
            NaiveDate::from_ymd_opt(2026, 11, 22)
        );
        assert!(parse_date("2026-11-22Z").is_some());
        assert!(parse_date("2026-11-22+01:00").is_some());
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_date("22/11/2026").is_none());
        assert!(parse_date("2026-11-22T10:00:00").is_none());
    }

    #[test]
    fn the_rules_snapshot_is_what_tarification_reads_back() {
        use crate::domain::rules::Unit;
        use crate::domain::tarification::{rule, DomainRules};
        let guarantee =
            |domain: &str, code: &str, rules: Vec<crate::domain::rules::Rule>| Guarantee {
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
            };
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
        let json = rules_snapshot(&chosen).unwrap();
        let back = crate::exchange::tarification::domains_of(&json).unwrap();
        assert_eq!(
            back,
            vec![
                DomainRules {
                    domain: "PHAR".into(),
                    guarantee: "G-\"é\\".into(),
                    rules: chosen[0].rules.clone(),
                },
                DomainRules {
                    domain: "OPTI".into(),
                    guarantee: "G2".into(),
                    rules: vec![]
                },
            ]
        );
    }

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
