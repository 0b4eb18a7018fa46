//! `DldTar` → `FournitTarification`: the AMC's amount per dispensing line on a dossier, as a
//! quote (`DEVIS`) or a binding commitment (`PEC`, with an accreditation number).
//!
//! Runs only under `vd_tarif`: it never touches `identite`. Order of the checks: certificate
//! (8002, 8003), identity elements anywhere (7005), fields (6000), `ps` against the certificate
//! (8001), the structure (the certificate's, or declared and found in the directory: 8004),
//! retry of an `id_requete` (stored response or 7008), the dossier (7001, 7003, 7004, 7002),
//! encrypted payload (7007, 7006, then the same checks on its content), an existing PEC (7009).

use std::collections::BTreeSet;

use base64::Engine;
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::caller::{self, Caller};
use super::common::{self, Problems};
use super::rights::parse_date;
use super::{Call, ExchangeError, Exchanges};
use crate::audit;
use crate::code::Code;
use crate::domain::tarification::{self, DomainRules, Line};
use crate::domain::{DossierNumber, Hundredths};
use crate::soap::envelope::{parse_fragment, XmlLimits};
use crate::soap::writer::envelope;
use crate::soap::Element;
use crate::store::tarification::{self as store, NewTarification, StoredLine};
use crate::store::Role;

/// Patient identity elements: never in a tarification, in clear or encrypted (`ps/nom` is the
/// pharmacist's name and allowed).
pub const IDENTITY_ELEMENTS: &[&str] = &[
    "beneficiaire",
    "nir",
    "cle_nir",
    "date_naissance",
    "rang_gemellaire",
    "nom_beneficiaire",
    "prenom",
    "nom",
    "numero_adherent",
];

/// Maximum amount: 99999.99 in cents.
const MAX_AMOUNT: i64 = 9_999_999;

/// Whether identity elements appear anywhere outside `ps`.
pub fn carries_identity(el: &Element) -> bool {
    el.children.iter().filter(|c| c.name != "ps").any(|c| {
        IDENTITY_ELEMENTS.contains(&c.name.as_str()) || c.contains_named(IDENTITY_ELEMENTS)
    })
}

/// The caller of a tarification or a cancellation: the professional's certificate (8002, 8003)
/// bound to the message's `ps` (8001), whose `numero_structure` is required.
pub fn bound_caller(
    ex: &Exchanges,
    cert: &crate::tls::identity::CertIdentity,
    ps_id: &str,
    structure: &str,
) -> Result<Caller, ExchangeError> {
    caller::bind(cert, ps_id, Some(structure), ex.structure_check)?
        .ok_or(ExchangeError::Access(Code::StructureNotEstablished))
}

/// Reads `ps` with a required `numero_structure`; problems go to `p`.
pub fn ps(body: &Element, p: &mut Problems) -> Option<(String, String)> {
    let Some(ps) = body.child("ps") else {
        p.add("ps", "élément obligatoire absent");
        return None;
    };
    p.unexpected(ps, "ps", &["identifiant_ps", "numero_structure", "nom"]);
    let id = p.text(ps, "ps", "identifiant_ps", 20);
    let structure = p.text(ps, "ps", "numero_structure", 9).and_then(|s| {
        let ok = s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            p.add("ps/numero_structure", "9 chiffres attendus");
        }
        ok.then(|| s.to_string())
    });
    p.opt_text(ps, "ps", "nom", 45);
    Some((id?.to_string(), structure?))
}

/// `numero_dossier`, when well-formed.
pub fn dossier_number(body: &Element, p: &mut Problems) -> Option<DossierNumber> {
    p.text(body, "", "numero_dossier", 36).and_then(|v| {
        let n = DossierNumber::parse(v);
        if n.is_none() {
            p.add("numero_dossier", "UUID attendu");
        }
        n
    })
}

/// The SHA-256 of the request's content (its body element without `entete/horodatage`) and
/// SOAP version: "same content" for retries.
pub fn fingerprint(call: &Call<'_>) -> Vec<u8> {
    fn walk(el: &Element, h: &mut Sha256, top: bool) {
        h.update(el.name.as_bytes());
        h.update([0u8, u8::from(el.in_vd)]);
        h.update(el.value().as_bytes());
        h.update([1u8]);
        for c in &el.children {
            if top && c.name == "entete" {
                for e in c.children.iter().filter(|e| e.name != "horodatage") {
                    walk(e, h, false);
                }
            } else {
                walk(c, h, false);
            }
        }
        h.update([2u8]);
    }
    let mut h = Sha256::new();
    h.update(call.version.namespace().as_bytes());
    walk(call.body, &mut h, true);
    h.finalize().to_vec()
}

/// A valid prescription.
struct Prescription {
    id: i32,
    lines: Vec<StoredLine>,
}

fn amount(el: &Element, path: &str, name: &str, p: &mut Problems) -> Option<i64> {
    let v = p.text(el, path, name, 9)?;
    let a = Hundredths::parse(v, MAX_AMOUNT);
    if a.is_none() {
        p.add(&common::join(path, name), "montant de 0 à 99999.99 attendu");
    }
    a.map(Hundredths::get)
}

fn integer(
    el: &Element,
    path: &str,
    name: &str,
    min: i64,
    max: i64,
    p: &mut Problems,
) -> Option<i64> {
    let v = p.text(el, path, name, 10)?;
    match v.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => Some(n),
        _ => {
            p.add(
                &common::join(path, name),
                &format!("entier de {min} à {max} attendu"),
            );
            None
        }
    }
}

fn date(el: &Element, path: &str, name: &str, p: &mut Problems) -> Option<NaiveDate> {
    let v = p.text(el, path, name, 16)?;
    let d = parse_date(v);
    if d.is_none() {
        p.add(&common::join(path, name), "date AAAA-MM-JJ attendue");
    }
    d
}

fn parse_prescription(el: &Element, p: &mut Problems) -> Option<Prescription> {
    let path = "prescription";
    p.unexpected(
        el,
        path,
        &[
            "id_prescription",
            "date_prescription",
            "prescripteur",
            "date_facturation",
            "ligne",
        ],
    );
    let id = integer(el, path, "id_prescription", 1, 999_999_999, p);
    if el.child("date_prescription").is_some() {
        date(el, path, "date_prescription", p);
    }
    if let Some(v) = p.text(el, path, "prescripteur", 9) {
        if v.chars().count() != 9 {
            p.add("prescription/prescripteur", "9 caractères attendus");
        }
    }
    let billing = date(el, path, "date_facturation", p);
    let raw: Vec<&Element> = el.children_named("ligne").collect();
    if raw.is_empty() || raw.len() > 999 {
        p.add("prescription/ligne", "de 1 à 999 lignes attendues");
    }
    let mut lines = Vec::with_capacity(raw.len());
    let mut seen = BTreeSet::new();
    for (i, l) in raw.iter().enumerate() {
        let lp = format!("prescription/ligne[{}]", i + 1);
        p.unexpected(
            l,
            &lp,
            &[
                "id_ligne",
                "code_prestation",
                "date_execution",
                "quantite",
                "prix_unitaire",
                "montant_facture",
                "base_remboursement",
                "taux_ro",
                "montant_ro",
                "code_cip",
                "code_lpp",
            ],
        );
        let id = integer(l, &lp, "id_ligne", 1, 999_999, p);
        if let Some(id) = id {
            if !seen.insert(id) {
                p.add(&format!("{lp}/id_ligne"), "identifiant de ligne en double");
            }
        }
        let prestation = p.text(l, &lp, "code_prestation", 5).map(str::to_string);
        let execution = date(l, &lp, "date_execution", p);
        if let (Some(e), Some(b)) = (execution, billing) {
            if e > b {
                p.add(
                    &format!("{lp}/date_execution"),
                    "postérieure à la date de facturation",
                );
            }
        }
        let quantity = integer(l, &lp, "quantite", 1, 999, p);
        let unit_price = amount(l, &lp, "prix_unitaire", p);
        let billed = amount(l, &lp, "montant_facture", p);
        if let (Some(q), Some(u), Some(f)) = (quantity, unit_price, billed) {
            if q * u != f {
                p.add(
                    &format!("{lp}/montant_facture"),
                    "doit valoir quantite × prix_unitaire",
                );
            }
        }
        let base = amount(l, &lp, "base_remboursement", p);
        let rate = integer(l, &lp, "taux_ro", 0, 100, p);
        let amo = amount(l, &lp, "montant_ro", p);
        if let (Some(ro), Some(br)) = (amo, base) {
            if ro > br {
                p.add(
                    &format!("{lp}/montant_ro"),
                    "supérieur à la base de remboursement",
                );
            }
        }
        if let (Some(ro), Some(f)) = (amo, billed) {
            if ro > f {
                p.add(&format!("{lp}/montant_ro"), "supérieur au montant facturé");
            }
        }
        let cip = p.opt_text(l, &lp, "code_cip", 13).and_then(|v| {
            let ok = (v.len() == 7 || v.len() == 13) && v.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                p.add(&format!("{lp}/code_cip"), "7 ou 13 chiffres attendus");
            }
            ok.then(|| v.to_string())
        });
        let lpp = p.opt_text(l, &lp, "code_lpp", 7).and_then(|v| {
            let ok = v.chars().count() == 7;
            if !ok {
                p.add(&format!("{lp}/code_lpp"), "7 caractères attendus");
            }
            ok.then(|| v.to_string())
        });
        if let (
            Some(id),
            Some(prestation),
            Some(execution),
            Some(quantity),
            Some(unit_price),
            Some(billed),
            Some(base),
            Some(rate),
            Some(amo),
        ) = (
            id, prestation, execution, quantity, unit_price, billed, base, rate, amo,
        ) {
            lines.push(StoredLine {
                id: id as i32,
                prestation,
                execution,
                quantity: quantity as i32,
                unit_price,
                billed,
                base,
                rate: rate as i16,
                amo,
                cip,
                lpp,
            });
        }
    }
    Some(Prescription {
        id: id? as i32,
        lines,
    })
}

/// The wire checks of a prescription (no I/O), for [`super::wire`].
pub fn check_prescription(el: &Element, p: &mut Problems) {
    let _ = parse_prescription(el, p);
}

/// The rules snapshot of a dossier.
pub(crate) fn domains_of(rules_json: &str) -> anyhow::Result<Vec<DomainRules>> {
    #[derive(serde::Deserialize)]
    struct Snapshot {
        domaines: Vec<D>,
    }
    #[derive(serde::Deserialize)]
    struct D {
        domaine: String,
        code_garantie: String,
        prestations: Vec<P>,
    }
    #[derive(serde::Deserialize)]
    struct P {
        code: String,
        unite: String,
        valeur: i64,
        plafond_annuel: Option<i64>,
    }
    let s: Snapshot = serde_json::from_str(rules_json)?;
    s.domaines
        .into_iter()
        .map(|d| {
            let rules = d
                .prestations
                .into_iter()
                .map(|p| {
                    let unit = crate::domain::rules::Unit::parse(&p.unite)
                        .ok_or_else(|| anyhow::anyhow!("unknown unit in a dossier snapshot"))?;
                    Ok(tarification::rule(
                        &p.code,
                        unit,
                        p.valeur,
                        p.plafond_annuel,
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(DomainRules {
                domain: d.domaine,
                guarantee: d.code_garantie,
                rules,
            })
        })
        .collect()
}

/// A new accreditation number: owner code + `M` + 12 Crockford base32 characters of a random
/// 60-bit value + the instance's character.
pub fn accreditation_number(owner: &str, instance: char) -> Result<String, getrandom::Error> {
    const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    // getrandom(2) directly: OpenSSL's RAND_bytes (its DRBG behind provider locks) was 3.7 % of
    // the server's CPU per PEC.
    let v = getrandom::u64()? & ((1u64 << 60) - 1);
    let mut out = String::with_capacity(16);
    out.push_str(owner);
    out.push('M');
    for i in (0..12).rev() {
        out.push(CROCKFORD[((v >> (i * 5)) & 31) as usize] as char);
    }
    out.push(instance);
    Ok(out)
}

fn cents(v: i64) -> String {
    Hundredths::from_hundredths(v).to_string()
}

/// Handles `demande_tarification`.
pub async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let body = call.body;
    let cert = caller::professional(call, true)?
        .ok_or(ExchangeError::Access(Code::CertificateRequired))?;
    if carries_identity(body) {
        return Err(ExchangeError::Business(Code::MixedData));
    }
    let mut p = Problems::default();
    p.unexpected(
        body,
        "",
        &[
            "entete",
            "ps",
            "numero_dossier",
            "mode",
            "prescription",
            "prescription_chiffree",
        ],
    );
    let header = common::header(body, &mut p);
    if let Some(h) = &header {
        call.audit.client_time = h.client_time.map(|t| t.with_timezone(&chrono::Utc));
    }
    let ps = ps(body, &mut p);
    let dossier = dossier_number(body, &mut p);
    if let Some(d) = dossier {
        call.audit.dossier = Some(d.uuid());
        call.echo.push(("numero_dossier", d.to_string()));
    }
    let commitment = match p.text(body, "", "mode", 5) {
        Some("PEC") => Some(true),
        Some("DEVIS") => Some(false),
        Some(_) => {
            p.add("mode", "DEVIS ou PEC attendu");
            None
        }
        None => None,
    };
    if let Some(c) = commitment {
        call.echo
            .push(("mode", if c { "PEC" } else { "DEVIS" }.to_string()));
    }
    let clear = body.child("prescription");
    let encrypted = body.child("prescription_chiffree");
    let mut ciphertext = None;
    let mut declared_fingerprint = None;
    match (clear, encrypted) {
        (Some(_), Some(_)) => p.add(
            "prescription",
            "prescription ou prescription_chiffree, pas les deux",
        ),
        (None, None) => p.add("prescription", "élément obligatoire absent"),
        (None, Some(enc)) => {
            p.unexpected(
                enc,
                "prescription_chiffree",
                &["donnees", "empreinte_certificat"],
            );
            if let Some(d) = p.text(enc, "prescription_chiffree", "donnees", usize::MAX) {
                let compact: String = d.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                match base64::engine::general_purpose::STANDARD.decode(compact) {
                    Ok(der) => ciphertext = Some(der),
                    Err(_) => p.add("prescription_chiffree/donnees", "base64 attendu"),
                }
            }
            declared_fingerprint = p
                .opt_text(enc, "prescription_chiffree", "empreinte_certificat", 64)
                .map(str::to_string);
        }
        (Some(_), None) => {}
    }
    let mut prescription = clear.and_then(|c| parse_prescription(c, &mut p));
    if !p.is_empty() {
        return Err(ExchangeError::Invalid(p.0));
    }
    let (Some(header), Some((ps_id, structure)), Some(dossier), Some(commitment)) =
        (header, ps, dossier, commitment)
    else {
        return Err(ExchangeError::Invalid(vec!["requête incomplète".into()]));
    };
    let caller = bound_caller(ex, cert, &ps_id, &structure)?;
    caller.audit(call);

    let content = fingerprint(call);
    // Decryption (RSA, then the XML checks) runs before the transaction so that no database
    // connection waits on it; its outcome is reported in the spec's order, after the dossier's.
    let decrypted = ciphertext
        .as_deref()
        .map(|der| decrypt(ex, der, declared_fingerprint.as_deref()));
    let prescription_id = match (&decrypted, &prescription) {
        (Some(Ok(p)), _) | (None, Some(p)) => p.id,
        _ => 0,
    };

    let mut tx = ex.store.begin_as(Role::Tarification).await?;
    caller.confirm(&mut tx).await?;
    let state =
        store::request_state(&mut tx, header.request_id, dossier.uuid(), prescription_id).await?;
    if let Some((stored_fp, response)) = state.stored {
        if stored_fp == content {
            // The same request again: the same answer, nothing consumed twice.
            audit::insert(&mut tx, call.audit_as(Code::Ok)).await?;
            tx.commit().await?;
            return Ok(response);
        }
        return Err(ExchangeError::Business(Code::RequestIdReused));
    }
    let Some(d) = state.dossier else {
        return Err(ExchangeError::Business(Code::DossierUnknown));
    };
    call.audit.amc = Some(d.numero_amc.clone());
    if d.structure != caller.structure {
        return Err(ExchangeError::Business(Code::OtherStructure));
    }
    if d.statut != "OUVERT" {
        return Err(ExchangeError::Business(Code::DossierClosed));
    }
    if d.expiration < chrono::Utc::now() {
        return Err(ExchangeError::Business(Code::DossierExpired));
    }
    if let Some(result) = decrypted {
        prescription = Some(result?);
    }
    let Some(prescription) = prescription else {
        return Err(ExchangeError::Invalid(vec![
            "prescription: illisible".into()
        ]));
    };
    if commitment && state.live_commitment {
        return Err(ExchangeError::Business(Code::CommitmentExists));
    }

    let domains = domains_of(&d.regles)?;
    let lines: Vec<Line> = prescription
        .lines
        .iter()
        .map(|l| Line {
            id: l.id as u32,
            prestation: l.prestation.clone(),
            execution: l.execution,
            billed: l.billed,
            base: l.base,
            amo: l.amo,
        })
        .collect();
    let keys: Vec<_> = tarification::ceilings_touched(&domains, &lines)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let already = store::consumption(&mut tx, &d.cle_plafond, &keys, commitment).await?;
    let outcome = tarification::compute(&domains, &lines, &already);
    let accreditation = commitment
        .then(|| accreditation_number(&ex.owner_code, ex.instance_code))
        .transpose()
        .map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
    call.audit.accreditation = accreditation.clone();

    let response = envelope(call.version, |x| {
        x.open("fournit_tarification");
        common::write_head(
            x,
            &ex.server,
            call.request_id,
            call.response_id,
            Code::Ok,
            &[],
        );
        x.leaf("numero_dossier", &dossier.to_string())
            .leaf("mode", if commitment { "PEC" } else { "DEVIS" });
        x.open("resultat")
            .leaf("id_prescription", &prescription.id.to_string())
            .leaf("total_facture", &cents(outcome.total_billed))
            .leaf("total_ro", &cents(outcome.total_amo))
            .leaf("total_amc", &cents(outcome.total_amc))
            .leaf("total_reste_a_charge", &cents(outcome.total_patient))
            .leaf_opt("numero_accreditation", accreditation.as_deref());
        for r in &outcome.lines {
            x.open("ligne")
                .leaf("id_ligne", &r.id.to_string())
                .leaf("montant_amc", &cents(r.amc))
                .leaf("reste_a_charge", &cents(r.patient))
                .leaf_opt("code_garantie", r.guarantee.as_deref())
                .leaf("code_ligne", r.code.as_str())
                .leaf("libelle_ligne", r.code.label())
                .close("ligne");
        }
        x.close("resultat");
        x.close("fournit_tarification");
    });
    // The tarification, its lines and consumption, the stored response and the audit row: one
    // statement.
    let recorded = store::record(
        &mut tx,
        &NewTarification {
            dossier: dossier.uuid(),
            request_id: header.request_id,
            structure: &caller.structure,
            commitment,
            prescription: prescription.id,
            ciphertext: ciphertext.as_deref(),
            clear_lines: if ciphertext.is_some() {
                &[]
            } else {
                &prescription.lines
            },
            outcome: &outcome,
            accreditation: accreditation.as_deref(),
            ceiling_key: &d.cle_plafond,
            fingerprint: &content,
            response: &response,
        },
        call.audit_as(Code::Ok),
    )
    .await;
    if let Err(e) = &recorded {
        match e.as_database_error().and_then(|d| d.constraint()) {
            // Two PECs of one prescription raced: the unique index names the outcome.
            Some("tarification_pec_unique") => {
                return Err(ExchangeError::Business(Code::CommitmentExists))
            }
            // A concurrent retry of the same id_requete won the race.
            Some("reponse_pkey") => {
                drop(tx);
                return answer_stored(ex, call, header.request_id, &content).await;
            }
            _ => {}
        }
    }
    recorded?;
    tx.commit().await?;
    Ok(response)
}

/// Decrypts and checks an encrypted prescription, in memory only.
fn decrypt(
    ex: &Exchanges,
    der: &[u8],
    declared_fingerprint: Option<&str>,
) -> Result<Prescription, ExchangeError> {
    let Some(decryptor) = &ex.decryptor else {
        return Err(ExchangeError::Business(Code::EncryptedNotAccepted));
    };
    if declared_fingerprint.is_some_and(|f| !decryptor.is_our_certificate(f)) {
        return Err(ExchangeError::Business(Code::EncryptedUnreadable));
    }
    let clear = decryptor
        .decrypt(der)
        .ok_or(ExchangeError::Business(Code::EncryptedUnreadable))?;
    // The clear content lives in memory only, and is checked like a clear prescription.
    let text = std::str::from_utf8(&clear)
        .map_err(|_| ExchangeError::Business(Code::EncryptedUnreadable))?;
    let el = parse_fragment(text, &XmlLimits::default())
        .map_err(|_| ExchangeError::Business(Code::EncryptedUnreadable))?;
    if !el.in_vd || el.name != "prescription" {
        return Err(ExchangeError::Business(Code::EncryptedUnreadable));
    }
    if el.contains_named(IDENTITY_ELEMENTS) {
        return Err(ExchangeError::Business(Code::MixedData));
    }
    let mut inner = Problems::default();
    let parsed = parse_prescription(&el, &mut inner);
    match parsed {
        Some(p) if inner.is_empty() => Ok(p),
        _ => Err(ExchangeError::Business(Code::EncryptedUnreadable)),
    }
}

/// After a concurrent retry of the same `id_requete` won the race: its stored response if the
/// content is the same, else 7008.
pub async fn answer_stored(
    ex: &Exchanges,
    call: &mut Call<'_>,
    request_id: Uuid,
    content: &[u8],
) -> Result<String, ExchangeError> {
    let mut tx = ex.store.begin_as(Role::Tarification).await?;
    match store::stored_response(&mut tx, request_id).await? {
        Some((fp, response)) if fp == content => {
            audit::insert(&mut tx, call.audit_as(Code::Ok)).await?;
            tx.commit().await?;
            Ok(response)
        }
        _ => Err(ExchangeError::Business(Code::RequestIdReused)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accreditation_numbers_have_the_spec_format() {
        let re = regex::Regex::new("^VDM[0-9A-HJKMNP-TV-Z]{12}1$").unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let n = accreditation_number("VD", '1').unwrap();
            assert_eq!(n.len(), 16);
            assert!(re.is_match(&n), "{n}");
            assert!(seen.insert(n));
        }
    }
}
