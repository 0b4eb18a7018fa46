//! The acceptor: connection cap, the PROXY protocol header of a configured balancer, the cap per
//! peer address on unfinished connections, TLS handshake with a deadline, identity fixed at
//! accept time, and read deadlines that follow requests for every client (HTTP/1.1 and HTTP/2
//! alike).

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

use super::heads::{self, HeadWatch, Protocol};
use super::identity::Connection;
use super::pending::{PendingByPeer, PendingSlot};
use super::{proxy, TlsContext};
use crate::audit::handshake::HandshakeAudit;
use crate::config::{Config, Network};
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
    pending: Arc<PendingByPeer>,
    /// Balancers whose PROXY protocol v2 header is read (empty: off).
    proxy_from: Arc<Vec<Network>>,
    handshake_timeout: Duration,
}

/// Read deadlines of a connection (see [`Guarded`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From the handshake to the end of the first request's head (HTTP/2: to the first complete
    /// request head); and for a later request's head, from its first byte.
    pub head: Duration,
    /// From the first byte of a request to the first byte of its response.
    pub request: Duration,
    /// From the last byte of a response to the first byte of the next request (keep-alive);
    /// HTTP/2: from the last complete request head.
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
                head: config.limits.header_timeout,
                request: config.limits.header_timeout + config.limits.body_timeout,
                idle: config.limits.keep_alive,
            },
            audit,
            pending: PendingByPeer::new(config.limits.max_pending_per_peer),
            proxy_from: Arc::new(config.proxy_from.clone()),
            handshake_timeout: config.limits.handshake_timeout,
        }
    }

    /// The client's address and its slot under the per-address cap of unfinished connections:
    /// the peer's, or the one a configured balancer's PROXY header carries. A PROXY header from
    /// anyone else, or a malformed one, refuses the connection. Within `deadline` (the
    /// handshake's, which this time counts against).
    async fn client(
        &self,
        stream: &mut TcpStream,
        deadline: Instant,
    ) -> io::Result<(std::net::SocketAddr, PendingSlot)> {
        let peer = stream.peer_addr()?;
        let refuse = |label: &'static str| {
            self.metrics.connection_refused(label);
            tracing::info!(peer = %peer, reason = label, "connection refused");
            proxy::refused(label)
        };
        let claim = |addr: std::net::SocketAddr| match self.pending.claim(addr.ip()) {
            Some(slot) => Ok((addr, slot)),
            None => {
                self.metrics.connection_refused("peer_pending_cap");
                Err(io::Error::other("unfinished connections cap reached"))
            }
        };
        if self.proxy_from.is_empty() {
            return claim(peer);
        }
        if self.proxy_from.iter().any(|n| n.contains(peer.ip())) {
            let carried = tokio::time::timeout_at(deadline, proxy::read_header(stream)).await;
            return match carried {
                Ok(Ok(carried)) => claim(carried.unwrap_or(peer)),
                Ok(Err(r)) => Err(refuse(r.label())),
                Err(_) => Err(refuse(proxy::Refusal::Truncated.label())),
            };
        }
        // Anyone else speaks TLS at once; a PROXY header from them would choose their address.
        // Counted under their own address while we look.
        let slot = claim(peer)?;
        let mut start = [0u8; 12];
        match tokio::time::timeout_at(deadline, stream.peek(&mut start)).await {
            Ok(Ok(n)) if proxy::opens_a_header(&start[..n]) => Err(refuse("proxy_not_allowed")),
            Ok(_) => Ok(slot),
            Err(_) => {
                self.metrics.handshake_refused("handshake_timeout");
                Err(io::Error::new(io::ErrorKind::TimedOut, "nothing sent"))
            }
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
            let mut stream = stream;
            // One deadline for the PROXY header (or the look for one) and the TLS handshake.
            let deadline = Instant::now() + this.handshake_timeout;
            let (peer, pending) = this.client(&mut stream, deadline).await?;
            let _ = stream.set_nodelay(true);
            // The handshake gets what is left of the deadline (one timer).
            let left = deadline.saturating_duration_since(Instant::now());
            let handshake = CaptureRefusal {
                inner: Box::pin(
                    this.tls
                        .clone()
                        .handshake_timeout(left)
                        .accept(stream, service),
                ),
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
            let guarded = Guarded::new(tls, permit, pending, this.deadlines, this.metrics.clone());
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

/// A TLS stream with a connection slot and read deadlines that follow requests, whatever the HTTP
/// version. HTTP/1.1: the head of the first request must end within `head` of the handshake, a
/// later head within `head` of its first byte; a request, once its first byte arrived, must be
/// read and answered within `request` (a client dribbling its headers or body gains nothing);
/// between requests the connection may stay silent for `idle` (keep-alive). HTTP/2: the first
/// complete request head must arrive within `head` of the handshake, then each one pushes the
/// deadline `idle` further; frames the server writes (SETTINGS, PING answers) and frames that
/// carry no request never extend it. The connection's slot under the per-address cap of
/// unfinished connections is released at its first complete request head.
/// hyper's own header timeout cannot be used: it also runs while a keep-alive connection waits
/// for its next request, which would cut the 30-minute keep-alive to 10 seconds.
pub(crate) struct Guarded<S> {
    inner: S,
    sleep: Pin<Box<Sleep>>,
    deadline: Instant,
    /// HTTP/1: when the last head started, and whether a request is being served (its head
    /// read, its final response not yet written).
    head_since: Instant,
    request_active: bool,
    // Boxed: the connection future hyper allocates holds this stream inline, and its size class
    // is what an idle connection costs.
    heads: Box<HeadWatch>,
    deadlines: Deadlines,
    pending: PendingSlot,
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
        pending: PendingSlot,
        deadlines: Deadlines,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.connection_opened();
        let deadline = Instant::now() + deadlines.head;
        Guarded {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            deadline,
            head_since: Instant::now(),
            request_active: false,
            heads: Box::new(HeadWatch::new()),
            deadlines,
            pending,
            write_sleep: None,
            _slot: ConnectionSlot {
                _permit: permit,
                metrics,
            },
        }
    }

    /// The client sent `bytes`: move the deadline as the module documentation says.
    fn read(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        let seen = self.heads.feed(bytes);
        match self.heads.protocol() {
            Protocol::Http2 => {
                if seen.completed {
                    self.deadline = now + self.deadlines.idle;
                }
            }
            Protocol::Http1 | Protocol::Unknown => {
                if seen.started {
                    self.head_since = now;
                    // A new head has `head` from its first byte, never more than the first
                    // request's deadline from the handshake; one pipelined behind a request being
                    // served gets it from that request's response.
                    if !self.request_active {
                        self.deadline = self.deadline.min(now + self.deadlines.head);
                    }
                }
                if seen.completed {
                    self.request_active = true;
                    self.deadline = self.head_since + self.deadlines.request;
                }
            }
        }
        if seen.completed {
            self.pending.release();
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
                if buf.filled().len() > before {
                    this.read(&buf.filled()[before..]);
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
    /// The server wrote `buf` (of which `n` bytes went). HTTP/1: a final response (not only
    /// interim `1xx` heads, such as the `100 Continue` a .NET client waits for) ends the request;
    /// the connection is then idle until the next head, or a head already started behind it has
    /// `head` from now. HTTP/2: writes never move the deadline.
    fn wrote(&mut self, buf: &[u8], n: usize) {
        self.write_sleep = None;
        if n == 0 || self.heads.protocol() != Protocol::Http1 || heads::only_interim(buf) {
            return;
        }
        let now = Instant::now();
        self.request_active = false;
        self.heads.response_written();
        if self.heads.in_head() {
            self.deadline = now + self.deadlines.head;
        } else if self.heads.waiting() {
            self.deadline = now + self.deadlines.idle;
        } else {
            // The next request's head is read and its body is coming: its own deadline holds.
            self.request_active = true;
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
            Poll::Ready(Ok(n)) => this.wrote(buf, *n),
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
            Poll::Ready(Ok(n)) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                this.wrote(first, *n)
            }
            Poll::Pending => return this.write_stalled(cx),
            Poll::Ready(Err(_)) => {}
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
