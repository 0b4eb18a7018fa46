//! `ServicesOuverts` → `FournitServices`: which AMCs are hosted here and which services each opens.

use base64::Engine;

use super::common::{self, Problems};
use super::{Call, ExchangeError, Exchanges};
use crate::audit;
use crate::code::Code;
use crate::soap::writer::envelope;
use crate::store::amc::{self, Service};
use crate::store::Role;

/// Handles `demande_services`.
pub async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let body = call.body;
    let mut p = Problems::default();
    p.unexpected(body, "", &["entete", "numero_amc"]);
    if let Some(h) = common::header(body, &mut p) {
        call.audit.client_time = h.client_time.map(|t| t.with_timezone(&chrono::Utc));
    }
    let only = p.opt_text(body, "", "numero_amc", 10);
    if let Some(n) = only {
        if !(8..=10).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_digit()) {
            p.add("numero_amc", "8 à 10 chiffres attendus");
        }
    }
    if !p.is_empty() {
        return Err(ExchangeError::Invalid(p.0));
    }

    call.audit.amc = only.map(str::to_string);
    let mut tx = ex.store.begin_as(Role::Rights).await?;
    let amcs = amc::list(&mut tx, only).await?;
    if only.is_some() && amcs.is_empty() {
        return Err(ExchangeError::Business(Code::AmcUnknown));
    }
    audit::insert(&mut tx, call.audit_as(Code::Ok)).await?;
    tx.commit().await?;

    let cert_b64 = ex
        .ttp_cert_der
        .as_ref()
        .map(|der| base64::engine::general_purpose::STANDARD.encode(der));
    Ok(envelope(call.version, |x| {
        x.open("fournit_services");
        common::write_head(
            x,
            &ex.server,
            call.request_id,
            call.response_id,
            Code::Ok,
            &[],
        );
        for a in &amcs {
            let tarification = a.is_open(Service::Tarification);
            let encrypted = tarification && ex.decryptor.is_some() && cert_b64.is_some();
            x.open("amc")
                .leaf("numero_amc", &a.number)
                .leaf("nom", &a.name);
            for (code, on) in [
                ("DROITS", a.is_open(Service::Rights)),
                ("TARIFICATION", tarification),
                ("TARIFICATION_CHIFFREE", encrypted),
                ("ANNULATION", a.is_open(Service::Cancellation)),
            ] {
                x.open("service")
                    .leaf("code", code)
                    .leaf("actif", if on { "true" } else { "false" })
                    .close("service");
            }
            if encrypted {
                x.leaf_opt("certificat_chiffrement", cert_b64.as_deref());
            }
            let c = &a.contact;
            if c.name.is_some() || c.email.is_some() || c.phone.is_some() {
                x.open("contact")
                    .leaf_opt("nom", c.name.as_deref())
                    .leaf_opt("email", c.email.as_deref())
                    .leaf_opt("telephone", c.phone.as_deref())
                    .close("contact");
            }
            x.close("amc");
        }
        x.close("fournit_services");
    }))
}
