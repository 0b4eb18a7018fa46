//! PEM reading errors in words: rustls-pki-types prints the missing END line as a list of byte
//! values (`missing section end marker: [45, 45, …]`), which an operator cannot act on.

use rustls_pki_types::pem::Error;

/// The error, with the lines it names shown as text.
pub fn readable(e: Error) -> anyhow::Error {
    match e {
        Error::MissingSectionEnd { end_marker } => {
            anyhow::anyhow!(
                "no \"-----END {}-----\" line: the file is cut short",
                line(&end_marker)
            )
        }
        Error::IllegalSectionStart { line: l } => {
            anyhow::anyhow!("malformed BEGIN line \"{}\"", line(&l))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

/// At most 80 characters of a line, control characters escaped.
fn line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(80)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateRevocationListDer;

    #[test]
    fn a_pem_file_cut_short_is_named_in_words() {
        let cut = b"-----BEGIN X509 CRL-----\nMIIB\n";
        let e = CertificateRevocationListDer::from_pem_slice(cut).unwrap_err();
        assert_eq!(
            readable(e).to_string(),
            "no \"-----END X509 CRL-----\" line: the file is cut short"
        );
        let e =
            CertificateRevocationListDer::from_pem_slice(b"-----BEGIN X509 CRL\x07\n").unwrap_err();
        let text = readable(e).to_string();
        assert!(
            text.starts_with("malformed BEGIN line \"-----BEGIN X509 CRL\\u{7}"),
            "{text}"
        );
    }
}
