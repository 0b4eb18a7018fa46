//! The acceptor: connection cap, TLS handshake with a deadline, identity fixed at accept time,
//! and read deadlines that hold for every client (HTTP/1.1 and HTTP/2 alike).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsAcceptor;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tower::Layer;

use super::identity::Connection;
use super::TlsContext;
use crate::config::Config;
use crate::metrics::Metrics;

/// Audits refused handshakes, rate-limited per peer and in total so that a flood cannot fill the
/// audit table (the metrics still count every refusal).
pub struct HandshakeAudit {
    pub store: crate::store::Store,
    pub instance: String,
    limits: std::sync::Mutex<RateState>,
}

struct RateState {
    window: std::time::Instant,
    total: u32,
    per_peer: std::collections::HashMap<std::net::IpAddr, u32>,
}

/// At most this many audited refusals per peer address, and in total, per minute.
const PER_PEER_PER_MINUTE: u32 = 20;
const TOTAL_PER_MINUTE: u32 = 600;

impl HandshakeAudit {
    pub fn new(store: crate::store::Store, instance: String) -> Self {
        HandshakeAudit {
            store,
            instance,
            limits: std::sync::Mutex::new(RateState {
                window: std::time::Instant::now(),
                total: 0,
                per_peer: std::collections::HashMap::new(),
            }),
        }
    }

    /// Audits a CRL refused at reload (the reason names the file, never request data).
    pub fn crl_refused(&self, reason: &str) {
        let rec = crate::store::audit::AuditRecord {
            instance: self.instance.clone(),
            operation: "crl",
            code: crate::code::Code::Technical.as_str(),
            reason: Some(crate::soap::fault::truncate(reason, 500)),
            ..Default::default()
        };
        let store = self.store.clone();
        tokio::spawn(async move { crate::exchange::write_audit_alone(&store, rec).await });
    }

    fn allow(&self, peer: std::net::IpAddr) -> bool {
        let mut s = self.limits.lock().expect("audit rate state");
        if s.window.elapsed() >= Duration::from_secs(60) {
            s.window = std::time::Instant::now();
            s.total = 0;
            s.per_peer.clear();
        }
        if s.total >= TOTAL_PER_MINUTE {
            return false;
        }
        let n = s.per_peer.entry(peer).or_insert(0);
        if *n >= PER_PEER_PER_MINUTE {
            return false;
        }
        *n += 1;
        s.total += 1;
        true
    }
}

/// Polls the handshake with the verifier's refused-certificate slot cleared before each poll and
/// read when the handshake fails in that poll.
struct CaptureRefusal<F> {
    inner: F,
}

impl<F, T> Future for CaptureRefusal<F>
where
    F: Future<Output = io::Result<T>> + Unpin,
{
    type Output = (io::Result<T>, Option<super::identity::ClientCertificate>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        super::verifier::clear_refused();
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(Err(e)) => Poll::Ready((Err(e), super::verifier::take_refused())),
            Poll::Ready(ok) => Poll::Ready((ok, None)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Wraps axum-server's rustls acceptor; see the module documentation.
#[derive(Clone)]
pub struct CpsAcceptor {
    tls: RustlsAcceptor,
    ctx: Arc<TlsContext>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    deadlines: Deadlines,
    audit: Arc<HandshakeAudit>,
}

/// Read deadlines of a connection (see [`Guarded`]).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From the handshake to the first byte of the first request.
    pub first: Duration,
    /// From the first byte of a request to the first byte of its response.
    pub request: Duration,
    /// From the last byte of a response to the first byte of the next request (keep-alive).
    pub idle: Duration,
}

impl CpsAcceptor {
    pub fn new(
        tls: RustlsAcceptor,
        ctx: Arc<TlsContext>,
        config: &Config,
        metrics: Arc<Metrics>,
        audit: Arc<HandshakeAudit>,
    ) -> Self {
        CpsAcceptor {
            tls: tls.handshake_timeout(config.limits.handshake_timeout),
            ctx,
            slots: Arc::new(Semaphore::new(config.limits.max_connections)),
            metrics,
            deadlines: Deadlines {
                first: config.limits.header_timeout,
                request: config.limits.header_timeout + config.limits.body_timeout,
                idle: config.limits.keep_alive,
            },
            audit,
        }
    }
}

impl<S> Accept<TcpStream, S> for CpsAcceptor
where
    S: Send + 'static,
{
    type Stream = Guarded<TlsStream<TcpStream>>;
    type Service = axum::middleware::AddExtension<S, Arc<Connection>>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let Ok(permit) = this.slots.clone().try_acquire_owned() else {
                this.metrics.connection_refused("connection_cap");
                return Err(io::Error::other("connection cap reached"));
            };
            let peer = stream.peer_addr()?;
            let _ = stream.set_nodelay(true);
            let handshake = CaptureRefusal {
                inner: Box::pin(this.tls.accept(stream, service)),
            };
            let (tls, service) = match handshake.await {
                (Ok(ok), _) => ok,
                (Err(e), cert) => {
                    let reason = handshake_failure_reason(&e);
                    this.metrics.handshake_refused(&reason);
                    tracing::info!(peer = %peer, reason = %reason, "TLS handshake refused");
                    if this.audit.allow(peer.ip()) {
                        let rec = crate::store::audit::AuditRecord {
                            instance: this.audit.instance.clone(),
                            operation: "handshake",
                            code: crate::code::Code::CertificatePolicy.as_str(),
                            peer: Some(peer.to_string()),
                            cert_subject: cert.as_ref().map(|c| c.subject.clone()),
                            cert_issuer: cert.as_ref().map(|c| c.issuer.clone()),
                            cert_serial: cert.as_ref().map(|c| c.serial.clone()),
                            cert_fingerprint: cert.as_ref().map(|c| c.fingerprint.clone()),
                            reason: Some(reason),
                            ..Default::default()
                        };
                        let store = this.audit.store.clone();
                        tokio::spawn(async move {
                            crate::exchange::write_audit_alone(&store, rec).await;
                        });
                    } else {
                        this.metrics
                            .connection_refused("handshake_audit_rate_limited");
                    }
                    return Err(e);
                }
            };
            let (_, conn) = tls.get_ref();
            let resumed = matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
            let tls_version = match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "?",
            };
            let (identity, path) = match conn.peer_certificates() {
                Some(chain) => this.ctx.identify(chain),
                None => (super::identity::PeerIdentity::Anonymous, None),
            };
            this.metrics.handshake_done(resumed);
            let connection = Arc::new(Connection {
                peer,
                tls_version,
                resumed,
                identity,
                path,
            });
            let guarded = Guarded::new(tls, permit, this.deadlines, this.metrics.clone());
            Ok((guarded, Extension(connection).layer(service)))
        })
    }
}

/// A short, stable reason for a refused handshake (metrics label and log field).
fn handshake_failure_reason(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return "handshake_timeout".into();
    }
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(e @ rustls::Error::InvalidCertificate(c)) => {
            if let Some(reason) = super::verifier::reason_of(e) {
                return reason.into();
            }
            let reason = match c {
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => "expired",
                rustls::CertificateError::NotValidYet
                | rustls::CertificateError::NotValidYetContext { .. } => "not_yet_valid",
                rustls::CertificateError::Revoked => "revoked",
                rustls::CertificateError::UnknownIssuer => "unknown_issuer",
                rustls::CertificateError::UnknownRevocationStatus => "no_crl",
                rustls::CertificateError::ExpiredRevocationList
                | rustls::CertificateError::ExpiredRevocationListContext { .. } => "crl_expired",
                rustls::CertificateError::BadSignature => "bad_signature",
                rustls::CertificateError::InvalidPurpose
                | rustls::CertificateError::InvalidPurposeContext { .. } => "invalid_purpose",
                _ => "invalid_certificate",
            };
            reason.into()
        }
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible".into(),
        Some(rustls::Error::NoCertificatesPresented) => "no_certificate".into(),
        Some(_) => "tls_error".into(),
        None => "io_error".into(),
    }
}

/// A TLS stream with a connection slot and read deadlines that hold whatever the HTTP version:
/// the first request must start within `first` of the handshake; a request, once its first byte
/// arrived, must be read and answered within `request` (a client dribbling its headers gains
/// nothing); between requests the connection may stay silent for `idle` (keep-alive).
/// hyper's own header timeout cannot be used: it also runs while a keep-alive connection waits
/// for its next request, which would cut the 30-minute keep-alive to 10 seconds.
pub struct Guarded<S> {
    inner: S,
    sleep: Pin<Box<Sleep>>,
    deadline: Instant,
    in_request: bool,
    deadlines: Deadlines,
    /// Armed while a write cannot progress (a client that does not read its response).
    write_sleep: Option<Pin<Box<Sleep>>>,
    _slot: ConnectionSlot,
}

/// Holds the connection's place under the cap and its gauge while the connection lives.
struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

impl<S> Guarded<S> {
    fn new(
        inner: S,
        permit: OwnedSemaphorePermit,
        deadlines: Deadlines,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.connection_opened();
        let deadline = Instant::now() + deadlines.first;
        Guarded {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            deadline,
            in_request: false,
            deadlines,
            write_sleep: None,
            _slot: ConnectionSlot {
                _permit: permit,
                metrics,
            },
        }
    }

    /// The underlying stream (e.g. to read the TLS session).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !this.in_request {
                    this.in_request = true;
                    this.deadline = Instant::now() + this.deadlines.request;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.sleep.deadline() != this.deadline {
                    let deadline = this.deadline;
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection deadline passed",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S> Guarded<S> {
    fn wrote(&mut self, n: usize) {
        self.write_sleep = None;
        if n > 0 {
            self.in_request = false;
            self.deadline = Instant::now() + self.deadlines.idle;
        }
    }

    /// A write is pending: give it `request` time to progress, then fail the connection.
    fn write_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.deadlines.request;
        let sleep = self
            .write_sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client does not read",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        match &res {
            Poll::Ready(Ok(n)) => this.wrote(*n),
            Poll::Pending => return this.write_stalled(cx),
            Poll::Ready(Err(_)) => {}
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.write_stalled(cx),
            ready => {
                this.write_sleep = None;
                ready
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        match &res {
            Poll::Ready(Ok(n)) => this.wrote(*n),
            Poll::Pending => return this.write_stalled(cx),
            Poll::Ready(Err(_)) => {}
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
