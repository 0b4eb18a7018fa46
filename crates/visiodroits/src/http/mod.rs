//! The HTTP face of the server, routing only: `POST /visiodroits` (SOAP),
//! `GET /visiodroits?wsdl`, and the token exchange (`POST /token`, `GET /.well-known/jwks.json`). What makes a request acceptable (its caller, Content-Type, body size
//! and time, UTF-8, envelope, operation) is the [`SoapRequest`] extractor; the exchange is
//! `exchange`'s.

mod soap_request;
mod token;

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::config::Limits;
use crate::exchange::{self, Exchanges};
use crate::metrics::Metrics;
use crate::soap::envelope::XmlLimits;
use crate::soap::SoapVersion;
use crate::tls::TlsContext;
use crate::wsdl;
use soap_request::SoapRequest;

/// Everything the handlers share.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub exchanges: Arc<Exchanges>,
    pub tls: Arc<TlsContext>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub xml: XmlLimits,
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/visiodroits", post(soap).get(wsdl_file))
        .route("/token", post(token::exchange))
        .route("/.well-known/jwks.json", axum::routing::get(token::jwks))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// `POST /visiodroits`: the exchange of an accepted SOAP request.
async fn soap(State(s): State<HttpState>, req: SoapRequest) -> Response {
    let op = req.operation;
    let outcome = exchange::dispatch(
        &s.exchanges,
        &req.envelope,
        op,
        &req.conn,
        req.bearer.as_deref(),
    )
    .await;
    s.metrics
        .exchange(op.name(), outcome.code.as_str(), req.started.elapsed());
    let mut resp = soap_response(req.envelope.version, outcome.status, outcome.body, false);
    if let Some(challenge) = outcome.challenge {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    resp
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

/// `GET /visiodroits?wsdl` (with `&single`, the schema inlined) and
/// `GET /visiodroits?xsd=visiodroits.xsd`, addressed to the host the caller used: its `Host`
/// header (HTTP/1.1) or the request's `:authority` (HTTP/2).
async fn wsdl_file(RawQuery(query): RawQuery, uri: Uri, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| wsdl::is_plain_host(h));
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "Host header required").into_response();
    };
    let base = format!("https://{host}/visiodroits");
    let doc = match query.as_deref() {
        Some("wsdl" | "WSDL") => wsdl::wsdl(&base),
        Some("wsdl&single" | "WSDL&single" | "single&wsdl") => wsdl::wsdl_single(&base),
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
