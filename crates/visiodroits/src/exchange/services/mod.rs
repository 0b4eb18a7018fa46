//! `ServicesOuverts` → `FournitServices`: which AMCs are hosted here and which services each
//! opens. No certificate needed.

mod request;
mod response;

/// The wire checks of a `demande_services` (no I/O), for [`super::wire`].
pub fn check(body: &crate::soap::Element) -> Option<Vec<String>> {
    request::parse(body).1.err()
}

use base64::Engine;

use super::{Call, ExchangeError, Exchanges};
use crate::audit;
use crate::code::Code;
use crate::store::{amc, Role};

/// Handles `demande_services`: the fields (6000), the AMC asked about (6020).
pub(crate) async fn handle(ex: &Exchanges, call: &mut Call<'_>) -> Result<String, ExchangeError> {
    let req = call.take(request::parse(call.body))?;
    let only = req.only.as_ref().map(|a| a.as_str());
    let mut tx = ex.store.begin_as(Role::Rights).await?;
    let amcs = amc::list(&mut tx, only).await?;
    if only.is_some() && amcs.is_empty() {
        return Err(ExchangeError::Business(Code::AmcUnknown));
    }
    audit::insert(&mut tx, call.audit_as(Code::Ok)).await?;
    tx.commit().await?;
    // The certificate to encrypt to, published only where this server decrypts.
    let encryption = ex
        .ttp_cert_der
        .as_ref()
        .filter(|_| ex.decryptor.is_some())
        .map(|der| base64::engine::general_purpose::STANDARD.encode(der));
    Ok(response::write(
        call,
        &ex.server,
        &amcs,
        encryption.as_deref(),
        ex.signer.certificate_base64(),
    ))
}
