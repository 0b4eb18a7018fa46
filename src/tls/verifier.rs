//! Client certificate verifier: rustls-webpki path building and CRL checks, plus what webpki does
//! not do for us: configured intermediates, CRL freshness with a grace period, degraded modes.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::crl::{CaSet, CrlSet, Freshness};
use crate::config::CrlSettings;

#[derive(Debug)]
pub struct CpsVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cas: Arc<CaSet>,
    crls: Arc<CrlSet>,
    grace: i64,
    allow_missing: bool,
    allow_stale: bool,
}

impl CpsVerifier {
    pub fn new(
        cas: Arc<CaSet>,
        crls: Arc<CrlSet>,
        settings: &CrlSettings,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for anchor in &cas.anchors {
            roots.add(anchor.der.clone())?;
        }
        let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            // The certificate is optional at the TLS level only: ServicesOuverts (and
            // DemandeDroits when configured) need none; every other exchange refuses with 8002.
            .allow_unauthenticated();
        for ca in &cas.intermediates {
            builder =
                builder.add_root_hint_subjects([DistinguishedName::from(ca.subject_der.clone())]);
        }
        Ok(CpsVerifier {
            inner: builder.build()?,
            cas,
            crls,
            grace: i64::try_from(settings.grace.as_secs()).unwrap_or(i64::MAX),
            allow_missing: settings.allow_missing,
            allow_stale: settings.allow_stale,
        })
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
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let result = self.verify_chain(end_entity, intermediates, now);
        if result.is_err() {
            let mut chain = vec![end_entity.clone()];
            chain.extend(intermediates.iter().cloned());
            self.remember_refused(&chain);
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let result = self.inner.verify_tls12_signature(message, cert, dss);
        if result.is_err() {
            self.remember_refused(std::slice::from_ref(cert));
        }
        result
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let result = self.inner.verify_tls13_signature(message, cert, dss);
        if result.is_err() {
            self.remember_refused(std::slice::from_ref(cert));
        }
        result
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

thread_local! {
    /// The certificate of the last refused verification on this thread. Verification runs
    /// synchronously inside the poll of the acceptor's handshake, which clears this slot before
    /// polling and takes it when the handshake fails in that same poll.
    static REFUSED: std::cell::RefCell<Option<super::identity::ClientCertificate>> = const { std::cell::RefCell::new(None) };
}

/// Clears the refused-certificate slot of this thread.
pub fn clear_refused() {
    REFUSED.with(|r| *r.borrow_mut() = None);
}

/// Takes the certificate refused on this thread, if any.
pub fn take_refused() -> Option<super::identity::ClientCertificate> {
    REFUSED.with(|r| r.borrow_mut().take())
}

impl CpsVerifier {
    /// Keeps the refused certificate for the audit of the handshake (read by the acceptor in the
    /// same poll).
    fn remember_refused(&self, chain: &[CertificateDer<'_>]) {
        let cert = super::identity::describe_der(chain, &self.cas);
        REFUSED.with(|r| *r.borrow_mut() = cert);
    }

    /// Every certificate below the anchor: its issuer's CRL must be present and fresh (unless a
    /// degraded mode allows otherwise) and must not list it.
    fn check_revocation(
        &self,
        end_entity: &CertificateDer<'_>,
        presented: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        let bad = || Error::InvalidCertificate(CertificateError::BadEncoding);
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let mut cert = openssl::x509::X509::from_der(end_entity).map_err(|_| bad())?;
        for _ in 0..8 {
            let issuer = cert.issuer_name().to_der().map_err(|_| bad())?;
            let subject = cert.subject_name().to_der().map_err(|_| bad())?;
            if issuer == subject {
                return Ok(()); // the anchor
            }
            match self.crls.freshness(&issuer, now, self.grace) {
                Freshness::Fresh => {}
                Freshness::Missing if self.allow_missing => {}
                Freshness::Stale if self.allow_stale => {}
                Freshness::Missing => {
                    return Err(Error::InvalidCertificate(
                        CertificateError::UnknownRevocationStatus,
                    ))
                }
                Freshness::Stale => {
                    return Err(Error::InvalidCertificate(
                        CertificateError::ExpiredRevocationList,
                    ))
                }
            }
            let serial = cert.serial_number().to_bn().map_err(|_| bad())?.to_vec();
            if self.crls.is_revoked(&issuer, &serial) {
                return Err(Error::InvalidCertificate(CertificateError::Revoked));
            }
            let next = match self.cas.by_subject(&issuer) {
                Some(ca) => ca.x509.clone(),
                None => presented
                    .iter()
                    .filter_map(|d| openssl::x509::X509::from_der(d).ok())
                    .find(|c| c.subject_name().to_der().ok().as_deref() == Some(&issuer[..]))
                    .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?,
            };
            cert = next;
        }
        Ok(())
    }

    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Card middleware often sends the leaf alone: offer the configured intermediates too.
        let mut all: Vec<CertificateDer<'_>> = intermediates.to_vec();
        all.extend(self.cas.intermediates.iter().map(|c| c.der.clone()));
        // Path, signatures, validity and usage by webpki; revocation here, against the CRLs
        // verified once at load: a hash lookup per certificate, where webpki would re-verify the
        // CRL's signature on every handshake (with a 1,000,000-entry CRL, ~20 ms each).
        let verified = self.inner.verify_client_cert(end_entity, &all, now)?;
        self.check_revocation(end_entity, intermediates, now)?;
        Ok(verified)
    }
}
