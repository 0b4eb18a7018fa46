//! Client certificate verification: rustls-webpki builds and verifies the path; this module adds
//! what webpki does not do for us and decides it *on the path webpki accepted*: the leaf's key
//! usages, revocation and CRL freshness of every certificate of that path (by its issuer's name
//! and key, so that a re-keyed CA of the same name never masks the other), degraded modes.
//!
//! When a candidate path fails revocation, webpki goes on with the other candidates (a
//! cross-signed intermediate, say): the path accepted is one that passed every check.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::certinfo::UsageError;
use super::crl::CrlSet;
use super::identity::{ChainCache, Described};
use super::path::{RevocationPolicy, VerifiedChain};
use super::trust::CaSet;

/// Why a chain was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rejection {
    Unparsable,
    Usage(UsageError),
    Path(webpki::Error),
}

impl Rejection {
    /// The reason in metrics, logs and the audit.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Rejection::Unparsable => "bad_encoding",
            Rejection::Usage(u) => match u {
                UsageError::KeyUsageAbsent => "no_key_usage",
                UsageError::DigitalSignatureNotAllowed => "no_digital_signature",
                UsageError::ExtendedKeyUsageAbsent => "no_extended_key_usage",
                UsageError::ClientAuthNotAllowed => "invalid_purpose",
            },
            Rejection::Path(e) => match e {
                webpki::Error::CertExpired { .. } => "expired",
                webpki::Error::CertNotValidYet { .. } => "not_yet_valid",
                webpki::Error::CertRevoked => "revoked",
                webpki::Error::UnknownIssuer => "unknown_issuer",
                webpki::Error::UnknownRevocationStatus => "no_crl",
                webpki::Error::CrlExpired { .. } => "crl_expired",
                webpki::Error::InvalidSignatureForPublicKey => "bad_signature",
                #[allow(deprecated)]
                webpki::Error::RequiredEkuNotFound => "invalid_purpose",
                webpki::Error::RequiredEkuNotFoundContext(_) => "invalid_purpose",
                _ => "invalid_certificate",
            },
        }
    }

    fn into_rustls(self) -> Error {
        let c = match &self {
            Rejection::Unparsable => CertificateError::BadEncoding,
            Rejection::Usage(UsageError::ClientAuthNotAllowed) => CertificateError::InvalidPurpose,
            Rejection::Usage(_) => CertificateError::Other(OtherError(Arc::new(self.clone()))),
            Rejection::Path(e) => match e {
                webpki::Error::CertExpired { .. } => CertificateError::Expired,
                webpki::Error::CertNotValidYet { .. } => CertificateError::NotValidYet,
                webpki::Error::CertRevoked => CertificateError::Revoked,
                webpki::Error::UnknownIssuer => CertificateError::UnknownIssuer,
                webpki::Error::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
                webpki::Error::CrlExpired { .. } => CertificateError::ExpiredRevocationList,
                webpki::Error::InvalidSignatureForPublicKey => CertificateError::BadSignature,
                #[allow(deprecated)]
                webpki::Error::RequiredEkuNotFound => CertificateError::InvalidPurpose,
                webpki::Error::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
                _ => CertificateError::Other(OtherError(Arc::new(self.clone()))),
            },
        };
        Error::InvalidCertificate(c)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Rejection {}

/// The reason a rustls handshake error carries, when it is one of ours or a certificate error.
pub(crate) fn reason_of(e: &rustls::Error) -> Option<&'static str> {
    match e {
        Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<Rejection>().map(Rejection::reason)
        }
        _ => None,
    }
}

/// Path verification with the process's signature algorithms and revocation policy; shared by
/// the handshake and by the acceptor when a resumed session's path must be verified again.
#[derive(Debug)]
pub(crate) struct PathVerifier {
    pub algs: WebPkiSupportedAlgorithms,
    pub policy: RevocationPolicy,
}

impl PathVerifier {
    /// Verifies `chain` (leaf first) at `now` with the CAs and CRLs given; on success the path is
    /// remembered in `described`.
    pub(crate) fn verify(
        &self,
        cas: &CaSet,
        crls: &CrlSet,
        described: &Described,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Arc<VerifiedChain>, Rejection> {
        described
            .leaf
            .usage
            .check_client_auth()
            .map_err(Rejection::Usage)?;
        let end_entity = chain.first().ok_or(Rejection::Unparsable)?;
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(|_| Rejection::Unparsable)?;
        // Paths go through configured intermediates only, whatever the client sends (card
        // middleware often sends the leaf alone): every certificate of an accepted path is then
        // one whose CRLs are known, and is checked as itself, not as another of its name and key.
        let all: Vec<CertificateDer<'_>> =
            cas.intermediates.iter().map(|c| c.der.clone()).collect();
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let accepted = std::cell::RefCell::new(None);
        let check = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let verified = VerifiedChain::of_path(path, &described.leaf, cas);
            verified
                .check(cas, crls, secs, &self.policy)
                .map_err(|r| r.webpki_error(secs))?;
            *accepted.borrow_mut() = Some(verified);
            Ok(())
        };
        ee.verify_for_usage(
            self.algs.all,
            &cas.roots,
            &all,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&check),
        )
        .map_err(Rejection::Path)?;
        let verified = Arc::new(accepted.into_inner().ok_or(Rejection::Unparsable)?);
        described.remember(verified.clone());
        Ok(verified)
    }
}

/// The rustls client verifier: the certificate is optional at the TLS level (ServicesOuverts, and
/// DemandeDroits when configured, need none); a presented one must pass [`PathVerifier`].
#[derive(Debug)]
pub(crate) struct CpsVerifier {
    cas: Arc<CaSet>,
    crls: Arc<ArcSwap<CrlSet>>,
    chains: Arc<ChainCache>,
    paths: Arc<PathVerifier>,
}

impl CpsVerifier {
    pub(crate) fn new(
        cas: Arc<CaSet>,
        crls: Arc<ArcSwap<CrlSet>>,
        chains: Arc<ChainCache>,
        paths: Arc<PathVerifier>,
    ) -> Self {
        CpsVerifier {
            cas,
            crls,
            chains,
            paths,
        }
    }
}

impl ClientCertVerifier for CpsVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.cas.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let result = match self.chains.get(&chain) {
            None => Err(Rejection::Unparsable),
            Some(described) => {
                let crls = self.crls.load();
                self.paths
                    .verify(&self.cas, &crls, &described, &chain, now)
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(ClientCertVerified::assertion()),
            Err(r) => {
                remember_refused(&chain);
                Err(r.into_rustls())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let result = rustls::crypto::verify_tls12_signature(message, cert, dss, &self.paths.algs);
        if result.is_err() {
            remember_refused(std::slice::from_ref(cert));
        }
        result
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let result = rustls::crypto::verify_tls13_signature(message, cert, dss, &self.paths.algs);
        if result.is_err() {
            remember_refused(std::slice::from_ref(cert));
        }
        result
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.paths.algs.supported_schemes()
    }
}

thread_local! {
    /// The certificate of the last refused verification on this thread. Verification runs
    /// synchronously inside the poll of the acceptor's handshake, which clears this slot before
    /// polling and takes it when the handshake fails in that same poll.
    static REFUSED: std::cell::RefCell<Option<super::identity::ClientCertificate>> = const { std::cell::RefCell::new(None) };
}

/// Clears the refused-certificate slot of this thread.
pub(crate) fn clear_refused() {
    REFUSED.with(|r| *r.borrow_mut() = None);
}

/// Takes the certificate refused on this thread, if any.
pub(crate) fn take_refused() -> Option<super::identity::ClientCertificate> {
    REFUSED.with(|r| r.borrow_mut().take())
}

/// Keeps the refused certificate for the audit of the handshake (read by the acceptor in the
/// same poll).
fn remember_refused(chain: &[CertificateDer<'_>]) {
    let cert = super::identity::describe_der(chain);
    REFUSED.with(|r| *r.borrow_mut() = cert);
}
