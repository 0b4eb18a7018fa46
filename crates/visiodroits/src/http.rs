//! The HTTP face of the server: `POST /visiodroits` (SOAP) and `GET /visiodroits?wsdl`.
//! Transport concerns live here (Content-Type, body size and time, UTF-8); the envelope goes to
//! `soap`, the exchange to `exchange`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::code::Code;
use crate::config::Limits;
use crate::exchange::{self, Exchanges, Operation};
use crate::metrics::Metrics;
use crate::soap::envelope::{self, EnvelopeError, XmlLimits};
use crate::soap::fault::Fault;
use crate::soap::{parse_content_type, SoapVersion};
use crate::tls::identity::{Connection, PeerIdentity};
use crate::tls::TlsContext;
use crate::wsdl;

/// Everything the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub exchanges: Arc<Exchanges>,
    pub tls: Arc<TlsContext>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub xml: XmlLimits,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/visiodroits", post(soap).get(wsdl_file))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// Label used in metrics for requests refused before an operation is known.
const ENVELOPE: &str = "envelope";

async fn soap(
    State(s): State<HttpState>,
    Extension(conn): Extension<Arc<Connection>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // Refusals before any exchange are audited too, off the response path.
    let audit_refusal = |fault: &Fault, reason: String| {
        let mut rec = exchange::audit_base(&s.exchanges.server.instance_id, ENVELOPE, &conn);
        rec.code = fault.code.as_str();
        rec.duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        rec.reason = Some(reason);
        let store = s.exchanges.store.clone();
        crate::audit::spawn_alone(&store, rec);
    };
    let refuse = |version: SoapVersion, status: StatusCode, fault: Fault| {
        s.metrics
            .exchange(ENVELOPE, fault.code.as_str(), started.elapsed());
        tracing::info!(status = status.as_u16(), detail = ?fault.details, "request refused before any exchange");
        audit_refusal(&fault, fault.details.join("; "));
        soap_response(version, status, fault.to_xml(version), false)
    };

    // A certificate that no profile recognises, or whose path no longer passes (revoked since the
    // handshake, expired, its CRLs stale or its CA removed), is refused before anything of the
    // request is read: identity comes only from the TLS session. The latter closes the connection.
    let admitted = s.tls.admit(&conn);
    if admitted.is_err() || matches!(conn.identity, PeerIdentity::Refused { .. }) {
        let version = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_content_type(v).ok())
            .map_or(SoapVersion::V12, |ct| ct.version);
        let fault = Fault::for_code(Code::CertificatePolicy);
        s.metrics
            .exchange(ENVELOPE, fault.code.as_str(), started.elapsed());
        let (reason, close) = match (&conn.identity, admitted) {
            (_, Err(path)) => (path.to_string(), true),
            (PeerIdentity::Refused { reason, .. }, Ok(())) => ((*reason).to_string(), false),
            _ => (String::new(), false),
        };
        audit_refusal(&fault, reason.clone());
        if close {
            tracing::warn!(peer = %conn.peer, reason = %reason, "certificate no longer acceptable: refused, connection closed");
        } else {
            tracing::info!(peer = %conn.peer, reason = %reason, "certificate refused by the certificate profiles");
        }
        return soap_response(version, fault.http_status(), fault.to_xml(version), close);
    }

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ct = match parse_content_type(content_type) {
        Ok(ct) => ct,
        Err(bad_charset) => {
            let detail = if bad_charset {
                "Content-Type: seul le jeu de caractères utf-8 est accepté"
            } else {
                "Content-Type: application/soap+xml (SOAP 1.2) ou text/xml (SOAP 1.1) attendu"
            };
            return refuse(
                SoapVersion::V12,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Fault::invalid(detail),
            );
        }
    };
    let version = ct.version;

    // Size: refuse at once on a declared length, and cap what is actually read.
    let too_large = || {
        Fault::invalid(format!(
            "corps de requête limité à {} octets",
            s.limits.body_bytes
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.limits.body_bytes as u64) {
        return refuse(version, StatusCode::PAYLOAD_TOO_LARGE, too_large());
    }
    let read = tokio::time::timeout(
        s.limits.body_timeout,
        Limited::new(body, s.limits.body_bytes).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return refuse(version, StatusCode::PAYLOAD_TOO_LARGE, too_large());
        }
        Ok(Err(_)) => {
            return refuse(
                version,
                StatusCode::BAD_REQUEST,
                Fault::invalid("corps de requête incomplet"),
            )
        }
        Err(_) => {
            return refuse(
                version,
                StatusCode::REQUEST_TIMEOUT,
                Fault::invalid("corps de requête trop lent"),
            )
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return refuse(
            version,
            StatusCode::BAD_REQUEST,
            Fault::invalid(EnvelopeError::Encoding.to_string()),
        );
    };

    let env = match envelope::parse(text, version, &s.xml) {
        Ok(env) => env,
        Err(e) => {
            let mut fault = Fault::invalid(e.to_string());
            fault.soap_code = match e {
                EnvelopeError::VersionMismatch => Some("VersionMismatch"),
                EnvelopeError::MustUnderstand => Some("MustUnderstand"),
                _ => None,
            };
            return refuse(version, StatusCode::BAD_REQUEST, fault);
        }
    };
    let Some(op) = Operation::from_element(&env.body.name).filter(|_| env.body.in_vd) else {
        return refuse(
            version,
            StatusCode::BAD_REQUEST,
            Fault::invalid("opération inconnue"),
        );
    };
    // The action (SOAP 1.2 parameter or SOAP 1.1 header) is optional; when present it must agree.
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
        return refuse(
            version,
            StatusCode::BAD_REQUEST,
            Fault::invalid("l'action ne correspond pas à l'élément de Body"),
        );
    }

    let outcome = exchange::dispatch(&s.exchanges, &env, op, &conn).await;
    s.metrics
        .exchange(op.name(), outcome.code.as_str(), started.elapsed());
    soap_response(version, outcome.status, outcome.body, false)
}

fn soap_response(version: SoapVersion, status: StatusCode, body: String, close: bool) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(version.content_type()),
    );
    if close {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `GET /visiodroits?wsdl` and `GET /visiodroits?xsd=visiodroits.xsd`, addressed to the host the
/// caller used.
async fn wsdl_file(RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| wsdl::is_plain_host(h));
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "Host header required").into_response();
    };
    let base = format!("https://{host}/visiodroits");
    let doc = match query.as_deref() {
        Some("wsdl") | Some("WSDL") => wsdl::wsdl(&base),
        Some(q) => match q.strip_prefix("xsd=").and_then(wsdl::xsd) {
            Some(text) => text.to_string(),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
        None => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut resp = doc.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    resp
}
