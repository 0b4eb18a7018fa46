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
use super::identity::ChainCache;
use crate::config::CrlSettings;

#[derive(Debug)]
pub struct CpsVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cas: Arc<CaSet>,
    chains: Arc<ChainCache>,
    crls: Arc<CrlSet>,
    grace: i64,
    allow_missing: bool,
    allow_stale: bool,
}

impl CpsVerifier {
    pub fn new(
        cas: Arc<CaSet>,
        chains: Arc<ChainCache>,
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
            chains,
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
    /// degraded mode allows otherwise) and must not list it. The chain's (issuer, serial) pairs
    /// come from the chain cache: hash lookups only, no certificate parsing on a known chain.
    fn check_revocation(
        &self,
        end_entity: &CertificateDer<'_>,
        presented: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let mut chain = Vec::with_capacity(1 + presented.len());
        chain.push(end_entity.clone());
        chain.extend(presented.iter().cloned());
        let described = self
            .chains
            .get(&chain)
            .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if !described.complete {
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        }
        for (issuer, serial) in &described.cert.chain {
            match self.crls.freshness(issuer, now, self.grace) {
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
            if self.crls.is_revoked(issuer, serial) {
                return Err(Error::InvalidCertificate(CertificateError::Revoked));
            }
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
