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
use crate::audit::handshake::HandshakeAudit;
use crate::config::Config;
use crate::metrics::Metrics;

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
pub(crate) struct CpsAcceptor {
    tls: RustlsAcceptor,
    ctx: Arc<TlsContext>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    deadlines: Deadlines,
    audit: Arc<HandshakeAudit>,
}

/// Read deadlines of a connection (see [`Guarded`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From the handshake to the first byte of the first request.
    pub first: Duration,
    /// From the first byte of a request to the first byte of its response.
    pub request: Duration,
    /// From the last byte of a response to the first byte of the next request (keep-alive).
    pub idle: Duration,
}

impl CpsAcceptor {
    pub(crate) fn new(
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
                    if !this.audit.refused(peer, cert.as_ref(), reason) {
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
pub(crate) struct Guarded<S> {
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
