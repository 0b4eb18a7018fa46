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
            .with_crls(crls.ders())
            // The certificate is optional at the TLS level only: ServicesOuverts (and
            // DemandeDroits when configured) need none; every other exchange refuses with 8002.
            .allow_unauthenticated();
        for ca in &cas.intermediates {
            builder =
                builder.add_root_hint_subjects([DistinguishedName::from(ca.subject_der.clone())]);
        }
        if settings.allow_missing {
            builder = builder.allow_unknown_revocation_status();
        }
        Ok(CpsVerifier {
            inner: builder.build()?,
            cas,
            crls,
            grace: i64::try_from(settings.grace.as_secs()).unwrap_or(i64::MAX),
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

    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Card middleware often sends the leaf alone: offer the configured intermediates too.
        let mut all: Vec<CertificateDer<'_>> = intermediates.to_vec();
        all.extend(self.cas.intermediates.iter().map(|c| c.der.clone()));
        let verified = self.inner.verify_client_cert(end_entity, &all, now)?;

        // Freshness of the CRL of every issuer up the chain (webpki checked the signatures and
        // the revocation itself; it accepts an expired CRL unless told, and knows no grace).
        if !self.allow_stale {
            let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            let leaf = openssl::x509::X509::from_der(end_entity)
                .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
            let mut issuer = leaf
                .issuer_name()
                .to_der()
                .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
            for _ in 0..8 {
                let Some(ca) = self.cas.by_subject(&issuer) else {
                    break;
                };
                if self.crls.freshness(&issuer, now, self.grace) == Freshness::Stale {
                    return Err(Error::InvalidCertificate(
                        CertificateError::ExpiredRevocationList,
                    ));
                }
                if ca.is_self_issued() {
                    break;
                }
                issuer = ca.issuer_der.clone();
            }
        }
        Ok(verified)
    }
}
