//! The SOAP request extractor: a request that reaches an exchange has an admitted caller, a SOAP
//! Content-Type, a body within its size and time, UTF-8 text, a well-formed envelope and a known
//! operation whose action (if any) agrees. Anything else is a [`Refusal`]: a SOAP Fault (6000, or
//! 8002 for the certificate), counted, logged and audited before it is answered.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{soap_response, HttpState};
use crate::code::Code;
use crate::exchange::{self, Operation};
use crate::soap::envelope::{self, Envelope, EnvelopeError};
use crate::soap::fault::Fault;
use crate::soap::{parse_content_type, ContentType, SoapVersion};
use crate::tls::identity::{Connection, PeerIdentity};

/// Label used in metrics and the audit for requests refused before an operation is known.
const ENVELOPE: &str = "envelope";

/// A SOAP request ready for its exchange.
pub(crate) struct SoapRequest {
    pub(crate) conn: Arc<Connection>,
    pub(crate) envelope: Envelope,
    pub(crate) operation: Operation,
    /// The `Authorization: Bearer` token, when one came.
    pub(crate) bearer: Option<String>,
    pub(crate) started: Instant,
}

/// The token of an `Authorization: Bearer …` header (RFC 6750 §2.1; the scheme is
/// case-insensitive). Other schemes are not ours and are ignored.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// A request refused before any exchange: a Fault in the request's SOAP version.
pub(crate) struct Refusal {
    version: SoapVersion,
    status: StatusCode,
    fault: Fault,
    /// Whether the connection is closed after the answer (a certificate no longer acceptable).
    close: bool,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = self.fault.to_xml(self.version);
        soap_response(self.version, self.status, body, self.close)
    }
}

impl Refusal {
    /// `fault` at the HTTP status its SOAP binding gives it.
    fn new(version: SoapVersion, fault: Fault) -> Self {
        Refusal {
            version,
            status: fault.http_status(version),
            fault,
            close: false,
        }
    }

    /// A 6000 Fault (`Sender`).
    fn invalid(version: SoapVersion, detail: impl Into<String>) -> Self {
        Refusal::new(version, Fault::invalid(detail))
    }

    /// A 6000 Fault for a body refused before it is read (its Content-Type, size or time): the
    /// HTTP status says what, whatever the SOAP version.
    fn unread(version: SoapVersion, status: StatusCode, detail: impl Into<String>) -> Self {
        Refusal {
            status,
            ..Refusal::invalid(version, detail)
        }
    }
}

impl FromRequest<HttpState> for SoapRequest {
    type Rejection = Refusal;

    async fn from_request(req: Request<Body>, s: &HttpState) -> Result<Self, Refusal> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let Some(conn) = parts.extensions.get::<Arc<Connection>>().cloned() else {
            // The acceptor attaches the connection to every request: this is a wiring fault.
            tracing::error!("request without its TLS connection");
            let refusal = Refusal::new(SoapVersion::V12, Fault::for_code(Code::Technical));
            return Err(Refusal {
                close: true,
                ..refusal
            });
        };
        match read(s, &conn, &parts.headers, body).await {
            Ok((envelope, operation)) => Ok(SoapRequest {
                conn,
                envelope,
                operation,
                bearer: bearer(&parts.headers),
                started,
            }),
            Err((refusal, reason)) => {
                refused(s, &conn, started, &refusal, reason);
                Err(refusal)
            }
        }
    }
}

/// The checks, in order; a refusal comes with the reason the audit keeps.
async fn read(
    s: &HttpState,
    conn: &Connection,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Envelope, Operation), (Refusal, String)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(parse_content_type);
    admitted(s, conn, content_type.as_ref())?;
    let ct = match content_type.unwrap_or(Err(false)) {
        Ok(ct) => ct,
        Err(bad_charset) => {
            let detail = if bad_charset {
                "Content-Type: seul le jeu de caractères utf-8 est accepté"
            } else {
                "Content-Type: application/soap+xml (SOAP 1.2) ou text/xml (SOAP 1.1) attendu"
            };
            let status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return Err(with_details(Refusal::unread(
                SoapVersion::V12,
                status,
                detail,
            )));
        }
    };
    let version = ct.version;
    let text = text(s, headers, body, version)
        .await
        .map_err(with_details)?;
    let env = envelope::parse(&text, version, &s.xml).map_err(|e| {
        let mut fault = Fault::invalid(e.to_string());
        fault.soap_code = match e {
            // An envelope of an unknown namespace, or of the other SOAP version than the
            // Content-Type's: both are a VersionMismatch (SOAP 1.2 Part 1, 5.4.7).
            EnvelopeError::VersionMismatch | EnvelopeError::ContentTypeMismatch => {
                Some("VersionMismatch")
            }
            EnvelopeError::MustUnderstand => Some("MustUnderstand"),
            _ => None,
        };
        with_details(Refusal::new(version, fault))
    })?;
    let op = operation(&env, &ct, headers).map_err(with_details)?;
    Ok((env, op))
}

/// A certificate that no profile recognises, or whose path no longer passes (revoked since the
/// handshake, expired, its CRLs stale or its CA removed), is refused before anything of the
/// request is read: identity comes only from the TLS session. The latter closes the connection.
fn admitted(
    s: &HttpState,
    conn: &Connection,
    content_type: Option<&Result<ContentType, bool>>,
) -> Result<(), (Refusal, String)> {
    let (reason, close) = match (s.tls.admit(conn), &conn.identity) {
        (Err(path), _) => (path.to_string(), true),
        (Ok(()), PeerIdentity::Refused { reason, .. }) => ((*reason).to_string(), false),
        (Ok(()), _) => return Ok(()),
    };
    if close {
        tracing::warn!(peer = %conn.peer, reason = %reason, "certificate no longer acceptable: refused, connection closed");
    } else {
        tracing::info!(peer = %conn.peer, reason = %reason, "certificate refused by the certificate profiles");
    }
    let version = match content_type {
        Some(Ok(ct)) => ct.version,
        _ => SoapVersion::V12,
    };
    let refusal = Refusal {
        close,
        ..Refusal::new(version, Fault::for_code(Code::CertificatePolicy))
    };
    Err((refusal, reason))
}

/// The body as UTF-8 text: refused at once on a declared length above the limit, capped in what
/// is actually read, and in the time it takes.
async fn text(
    s: &HttpState,
    headers: &HeaderMap,
    body: Body,
    version: SoapVersion,
) -> Result<String, Refusal> {
    let too_large = || {
        let detail = format!("corps de requête limité à {} octets", s.limits.body_bytes);
        Refusal::unread(version, StatusCode::PAYLOAD_TOO_LARGE, detail)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.limits.body_bytes as u64) {
        return Err(too_large());
    }
    let limited = Limited::new(body, s.limits.body_bytes).collect();
    let bytes = match tokio::time::timeout(s.limits.body_timeout, limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(_)) => {
            let detail = "corps de requête incomplet";
            return Err(Refusal::invalid(version, detail));
        }
        Err(_) => {
            let detail = "corps de requête trop lent";
            return Err(Refusal::unread(
                version,
                StatusCode::REQUEST_TIMEOUT,
                detail,
            ));
        }
    };
    String::from_utf8(bytes.into()).map_err(|_| {
        let detail = EnvelopeError::Encoding.to_string();
        Refusal::invalid(version, detail)
    })
}

/// The operation named by the body's element. The action (SOAP 1.2 parameter or SOAP 1.1 header)
/// is optional; when present it must agree.
fn operation(env: &Envelope, ct: &ContentType, headers: &HeaderMap) -> Result<Operation, Refusal> {
    let version = env.version;
    let Some(op) = Operation::from_element(&env.body.name).filter(|_| env.body.in_vd) else {
        let detail = "opération inconnue";
        return Err(Refusal::invalid(version, detail));
    };
    let action = match version {
        SoapVersion::V12 => ct.action.clone(),
        SoapVersion::V11 => headers
            .get("soapaction")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_matches('"').to_string()),
    };
    if action
        .as_deref()
        .is_some_and(|a| !a.is_empty() && a != op.action())
    {
        let detail = "l'action ne correspond pas à l'élément de Body";
        return Err(Refusal::invalid(version, detail));
    }
    Ok(op)
}

/// A 6000 refusal, whose audit reason is its details.
fn with_details(refusal: Refusal) -> (Refusal, String) {
    let reason = refusal.fault.details.join("; ");
    (refusal, reason)
}

/// Counts, logs and audits a refusal (the audit row is written off the response path).
fn refused(s: &HttpState, conn: &Connection, started: Instant, refusal: &Refusal, reason: String) {
    let code = refusal.fault.code;
    s.metrics
        .exchange(ENVELOPE, code.as_str(), started.elapsed());
    if code == Code::InvalidRequest {
        tracing::info!(status = refusal.status.as_u16(), detail = ?refusal.fault.details, "request refused before any exchange");
    }
    let mut rec = exchange::audit_base(&s.exchanges.server.instance_id, ENVELOPE, conn);
    rec.code = code.as_str();
    rec.duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    rec.reason = Some(reason);
    crate::audit::spawn_alone(&s.exchanges.store, rec);
}
