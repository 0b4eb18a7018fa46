//! `fournit_annulation`: the accreditation number, cancelled.

use super::super::head::{self, ServerInfo};
use super::super::Call;
use crate::code::Code;
use crate::domain::AccreditationNumber;
use crate::soap::writer::envelope;

pub(super) fn write(
    call: &Call<'_>,
    server: &ServerInfo,
    accreditation: &AccreditationNumber,
) -> String {
    envelope(call.version, |x| {
        x.open("fournit_annulation");
        head::write_head(x, server, call.request_id, call.response_id, Code::Ok, &[]);
        x.leaf("numero_accreditation", accreditation.as_str())
            .leaf("annulee", "true")
            .close("fournit_annulation");
    })
}
