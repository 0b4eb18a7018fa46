//! `fournit_services`: each AMC, its services and contact, and the certificate encrypted
//! prescriptions go to.

use super::super::head::{self, ServerInfo};
use super::super::Call;
use crate::code::Code;
use crate::soap::writer::envelope;
use crate::store::amc::{Amc, Service};

/// `encryption`: the trusted third party's certificate (base64 DER) when encrypted tarification
/// is open here; `signing`: the certificate that signs PEC proofs (base64 DER).
pub(super) fn write(
    call: &Call<'_>,
    server: &ServerInfo,
    amcs: &[Amc],
    encryption: Option<&str>,
    signing: &str,
) -> String {
    envelope(call.version, |x| {
        x.open("fournit_services");
        head::write_head(x, server, call.request_id, call.response_id, Code::Ok, &[]);
        for a in amcs {
            let tarification = a.is_open(Service::Tarification);
            // Encrypted tarification needs tarification open, its own flag, and this server
            // holding the trusted third party's key.
            let encrypted =
                tarification && a.is_open(Service::EncryptedTarification) && encryption.is_some();
            x.open("amc")
                .leaf("numero_amc", &a.number)
                .leaf("nom", &a.name);
            for service in Service::ALL {
                let on = match service {
                    Service::EncryptedTarification => encrypted,
                    s => a.is_open(s),
                };
                x.open("service")
                    .leaf("code", service.wire())
                    .leaf("actif", if on { "true" } else { "false" })
                    .close("service");
            }
            if encrypted {
                x.leaf_opt("certificat_chiffrement", encryption);
            }
            x.leaf("certificat_signature", signing);
            x.leaf_opt(
                "delai_grace_jours",
                a.grace_days.map(|d| d.to_string()).as_deref(),
            );
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
    })
}
