//! The four requests of spec/exchanges.md as a pharmacy's software sends them (SOAP 1.2 by
//! default), and reading fields back from responses. Text is escaped; shapes follow
//! `wsdl/visiodroits.xsd`.

use uuid::Uuid;

use visiodroits_wire::xml::{envelope, fragment, Xml};
use visiodroits_wire::{SoapVersion, VD_NS};

/// The software sending the requests (`entete`).
#[derive(Debug, Clone)]
pub struct Software {
    pub id: String,
    pub version: String,
}

impl Default for Software {
    fn default() -> Self {
        Software {
            id: "VISIODROITS-CLIENT".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The pharmacist and the pharmacy (`ps`).
#[derive(Debug, Clone)]
pub struct Pharmacist {
    pub ps_id: String,
    pub structure: Option<String>,
}

/// A `demande_droits`.
#[derive(Debug, Clone)]
pub struct RightsRequest {
    pub nir: String,
    pub key: String,
    pub birth: String,
    pub rank: u8,
    pub amc: String,
    pub adherent: Option<String>,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub domains: Vec<String>,
}

/// One dispensing line (amounts as decimal text with two digits, e.g. `10.00`).
#[derive(Debug, Clone)]
pub struct Line {
    pub id: u32,
    pub prestation: String,
    pub execution: String,
    pub quantity: u32,
    pub unit_price: String,
    pub billed: String,
    pub base: String,
    pub rate: u32,
    pub amo: String,
    pub cip: Option<String>,
    pub lpp: Option<String>,
}

/// A `vd:prescription`.
#[derive(Debug, Clone)]
pub struct Prescription {
    pub id: u32,
    pub date: String,
    pub prescriber: String,
    pub billing_date: String,
    pub lines: Vec<Line>,
}

/// How the prescription travels in a `demande_tarification`.
#[derive(Debug, Clone)]
pub enum Payload {
    Clear(Prescription),
    /// A `vd:prescription` element written by the caller (the command-line client's file).
    Markup(String),
    /// DER CMS EnvelopedData, and the fingerprint of the certificate it was encrypted to.
    Encrypted {
        der: Vec<u8>,
        fingerprint: Option<String>,
    },
}

/// Builds request envelopes.
#[derive(Debug, Clone)]
pub struct Messages {
    pub version: SoapVersion,
    pub software: Software,
    pub pharmacist: Pharmacist,
}

impl Messages {
    fn envelope(&self, body: impl FnOnce(&mut Xml)) -> String {
        envelope(self.version, body)
    }

    fn head(&self, w: &mut Xml, request_id: Uuid) {
        w.open("entete")
            .leaf("id_logiciel", &self.software.id)
            .leaf("version_logiciel", &self.software.version)
            .leaf("id_requete", &request_id.to_string())
            .close("entete");
    }

    fn ps(&self, w: &mut Xml) {
        w.open("ps")
            .leaf("identifiant_ps", &self.pharmacist.ps_id)
            .leaf_opt("numero_structure", self.pharmacist.structure.as_deref())
            .close("ps");
    }

    /// `demande_services`, for every AMC or one.
    pub fn services(&self, request_id: Uuid, amc: Option<&str>) -> String {
        self.envelope(|w| {
            w.open("demande_services");
            self.head(w, request_id);
            w.leaf_opt("numero_amc", amc).close("demande_services");
        })
    }

    /// `demande_droits`.
    pub fn rights(&self, request_id: Uuid, r: &RightsRequest) -> String {
        self.envelope(|w| {
            w.open("demande_droits");
            self.head(w, request_id);
            self.ps(w);
            w.open("beneficiaire")
                .leaf("nir", &r.nir)
                .leaf("cle_nir", &r.key)
                .leaf("date_naissance", &r.birth)
                .leaf("rang_gemellaire", &r.rank.to_string())
                .close("beneficiaire")
                .open("amc")
                .leaf("numero_amc", &r.amc)
                .leaf_opt("numero_adherent", r.adherent.as_deref())
                .close("amc")
                .leaf("date_reference", &r.date)
                .open("domaines");
            for d in &r.domains {
                w.leaf("domaine", d);
            }
            w.close("domaines").close("demande_droits");
        })
    }

    /// `demande_tarification` in `DEVIS` (quote) or `PEC` (commitment) mode.
    pub fn tarification(
        &self,
        request_id: Uuid,
        dossier: &str,
        commitment: bool,
        payload: &Payload,
    ) -> String {
        self.envelope(|w| {
            w.open("demande_tarification");
            self.head(w, request_id);
            self.ps(w);
            w.leaf("numero_dossier", dossier)
                .leaf("mode", if commitment { "PEC" } else { "DEVIS" });
            match payload {
                Payload::Clear(p) => prescription_into(w, p),
                Payload::Markup(m) => {
                    w.raw(m);
                }
                Payload::Encrypted { der, fingerprint } => {
                    use base64::Engine;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
                    w.open("prescription_chiffree")
                        .leaf("donnees", &b64)
                        .leaf_opt("empreinte_certificat", fingerprint.as_deref())
                        .close("prescription_chiffree");
                }
            }
            w.close("demande_tarification");
        })
    }

    /// `demande_annulation` of a PEC.
    pub fn cancellation(
        &self,
        request_id: Uuid,
        dossier: &str,
        accreditation: &str,
        prescription: u32,
    ) -> String {
        self.envelope(|w| {
            w.open("demande_annulation");
            self.head(w, request_id);
            self.ps(w);
            w.leaf("numero_dossier", dossier)
                .leaf("numero_accreditation", accreditation)
                .leaf("id_prescription", &prescription.to_string())
                .close("demande_annulation");
        })
    }

    /// `demande_accreditation`: a PEC's status and justification.
    pub fn consultation(&self, request_id: Uuid, accreditation: &str) -> String {
        self.envelope(|w| {
            w.open("demande_accreditation");
            self.head(w, request_id);
            self.ps(w);
            w.leaf("numero_accreditation", accreditation)
                .close("demande_accreditation");
        })
    }
}

fn prescription_into(w: &mut Xml, p: &Prescription) {
    w.open("prescription")
        .leaf("id_prescription", &p.id.to_string())
        .leaf("date_prescription", &p.date)
        .leaf("prescripteur", &p.prescriber)
        .leaf("date_facturation", &p.billing_date);
    for l in &p.lines {
        w.open("ligne")
            .leaf("id_ligne", &l.id.to_string())
            .leaf("code_prestation", &l.prestation)
            .leaf("date_execution", &l.execution)
            .leaf("quantite", &l.quantity.to_string())
            .leaf("prix_unitaire", &l.unit_price)
            .leaf("montant_facture", &l.billed)
            .leaf("base_remboursement", &l.base)
            .leaf("taux_ro", &l.rate.to_string())
            .leaf("montant_ro", &l.amo)
            .leaf_opt("code_cip", l.cip.as_deref())
            .leaf_opt("code_lpp", l.lpp.as_deref())
            .close("ligne");
    }
    w.close("prescription");
}

/// The standalone XML of a prescription (with its namespace declaration): the clear content of
/// an encrypted payload.
pub fn prescription_document(p: &Prescription) -> String {
    fragment(|w| prescription_into(w, p)).replacen(
        "<vd:prescription>",
        &format!(r#"<vd:prescription xmlns:vd="{VD_NS}">"#),
        1,
    )
}

/// The text of the first `<vd:NAME>` of a response, unescaped only for the five XML entities.
pub fn field(body: &str, name: &str) -> Option<String> {
    fields(body, name).into_iter().next()
}

/// Every `<vd:NAME>` text of a response.
pub fn fields(body: &str, name: &str) -> Vec<String> {
    let open = format!("<vd:{name}>");
    let close = format!("</vd:{name}>");
    body.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prescription() -> Prescription {
        Prescription {
            id: 7,
            date: "2026-03-10".into(),
            prescriber: "123456789".into(),
            billing_date: "2026-03-15".into(),
            lines: vec![Line {
                id: 1,
                prestation: "PH7".into(),
                execution: "2026-03-15".into(),
                quantity: 2,
                unit_price: "10.00".into(),
                billed: "20.00".into(),
                base: "20.00".into(),
                rate: 65,
                amo: "13.00".into(),
                cip: Some("3400930000001".into()),
                lpp: None,
            }],
        }
    }

    #[test]
    fn the_standalone_prescription_declares_its_namespace() {
        let doc = prescription_document(&prescription());
        assert!(doc.starts_with(r#"<vd:prescription xmlns:vd="urn:visiodroits:v1">"#));
        assert_eq!(fields(&doc, "ligne").len(), 1);
    }
}
