//! `POST /token`: RFC 8693 token exchange (spec/security.md "Pro Santé Connect"). The client
//! authenticates by its ORG certificate (RFC 8705 `tls_client_auth`: the certificate's subject is
//! a configured client's), and trades a Pro Santé Connect access token for one of this server's,
//! short-lived and bound to that certificate. Errors are RFC 6749 §5.2 JSON. Each call is
//! audited (operation `EchangeJeton`) with the subject token's issuer, `jti` and SHA-256.
//!
//! `GET /.well-known/jwks.json`: the public key our tokens verify with.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};

use super::HttpState;
use crate::config::normalise_subject;
use crate::domain::StructureNumber;
use crate::tls::identity::{Connection, PeerIdentity};
use crate::tls::profile::CertProfile;
use crate::token::issuer::{Grant, Issuer};
use crate::token::{token_sha256, TokenError};

/// The audit's and the metrics' name of the operation.
const OPERATION: &str = "EchangeJeton";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const MAX_FORM_BYTES: usize = 16 * 1024;

/// An RFC 6749 §5.2 error: status, `error`, `error_description` (ASCII), and the audit's reason.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
    reason: &'static str,
}

fn oauth(error: &'static str, description: &'static str, reason: &'static str) -> OAuthError {
    let status = match error {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    OAuthError {
        status,
        error,
        description,
        reason,
    }
}

fn json(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /.well-known/jwks.json`.
pub(super) async fn jwks(State(s): State<HttpState>) -> Response {
    let Some(issuer) = s.exchanges.tokens.issuer.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut resp = issuer.jwks().to_string().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    resp
}

/// `POST /token`.
pub(super) async fn exchange(State(s): State<HttpState>, req: Request<Body>) -> Response {
    let Some(issuer) = s.exchanges.tokens.issuer.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let started = Instant::now();
    let Some(conn) = req.extensions().get::<Arc<Connection>>().cloned() else {
        tracing::error!("request without its TLS connection");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut rec = crate::exchange::audit_base(&s.exchanges.server.instance_id, OPERATION, &conn);
    let result = grant(&s, &issuer, &conn, req, &mut rec).await;
    let (code, resp) = match result {
        Ok(body) => ("0000", json(StatusCode::OK, body)),
        Err(e) => {
            rec.reason = Some(e.reason.to_string());
            let body = serde_json::json!({"error": e.error, "error_description": e.description});
            let code = if e.status == StatusCode::INTERNAL_SERVER_ERROR {
                "0999"
            } else {
                "8002"
            };
            tracing::info!(error = e.error, reason = e.reason, "token exchange refused");
            (code, json(e.status, body.to_string()))
        }
    };
    rec.code = code;
    rec.duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    s.metrics.exchange(OPERATION, code, started.elapsed());
    crate::audit::spawn_alone(&s.exchanges.store, rec);
    resp
}

/// The checks in order: the client (its certificate still acceptable, an ORG certificate of a
/// configured client), the form, the subject token (a valid PSC token, bound to this certificate
/// if bound at all, never exchanged before), then our token.
async fn grant(
    s: &HttpState,
    issuer: &Issuer,
    conn: &Connection,
    req: Request<Body>,
    rec: &mut crate::audit::AuditRecord,
) -> Result<String, OAuthError> {
    let not_client = |reason| {
        oauth(
            "invalid_client",
            "an ORG certificate of a registered client is required (tls_client_auth)",
            reason,
        )
    };
    if let Err(reason) = s.tls.admit(conn) {
        return Err(not_client(reason));
    }
    let cert = match &conn.identity {
        PeerIdentity::Certified(c) if c.profile == CertProfile::Org => c,
        PeerIdentity::Anonymous => return Err(not_client("no_client_certificate")),
        _ => return Err(not_client("not_an_org_certificate")),
    };
    let subject = normalise_subject(&cert.cert.subject);
    let Some(client) = issuer.clients.iter().find(|c| c.subject == subject) else {
        return Err(not_client("unknown_client"));
    };
    let structure = cert
        .structure
        .as_deref()
        .and_then(StructureNumber::parse)
        .ok_or_else(|| not_client("no_structure"))?;
    rec.structure = Some(structure.to_string());

    let form = read_form(s, req).await?;
    let param = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("grant_type").is_none() {
        return Err(oauth(
            "invalid_request",
            "grant_type is required",
            "no_grant_type",
        ));
    }
    if param("grant_type") != Some(TOKEN_EXCHANGE) {
        return Err(oauth(
            "unsupported_grant_type",
            "grant_type must be urn:ietf:params:oauth:grant-type:token-exchange",
            "grant_type",
        ));
    }
    let invalid = |d, r| oauth("invalid_request", d, r);
    let subject_token = param("subject_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("subject_token is required", "no_subject_token"))?;
    if !matches!(param("subject_token_type"), Some(ACCESS_TOKEN | JWT)) {
        return Err(invalid(
            "subject_token_type must be urn:ietf:params:oauth:token-type:access_token (or :jwt)",
            "subject_token_type",
        ));
    }
    if param("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN && t != JWT) {
        return Err(invalid(
            "requested_token_type: only access tokens are issued",
            "requested_token_type",
        ));
    }
    if param("actor_token").is_some() {
        return Err(invalid("actor_token is not supported", "actor_token"));
    }
    for target in ["audience", "resource"] {
        if param(target).is_some_and(|t| t != issuer.issuer) {
            return Err(oauth(
                "invalid_target",
                "this server issues tokens for itself only",
                "target",
            ));
        }
    }

    let bad_grant = |reason| {
        oauth(
            "invalid_grant",
            "the subject token is not acceptable",
            reason,
        )
    };
    let sha256 = token_sha256(subject_token);
    rec.token(None, None, &sha256);
    let token = s
        .exchanges
        .tokens
        .verify(subject_token, &sha256)
        .await
        .map_err(|e| refused_grant(e, "issuer_unavailable"))?;
    rec.token(Some(&token.issuer), token.jti.as_deref(), &token.sha256);
    rec.ps_id = Some(token.ps_id.clone());
    if token.ours {
        return Err(bad_grant("subject_token_ours"));
    }
    let thumbprint = cert
        .cert
        .sha256()
        .ok_or_else(|| not_client("fingerprint"))?;
    s.exchanges
        .tokens
        .bound(&token, Some(&thumbprint), false)
        .map_err(|r| bad_grant(r.0))?;
    s.exchanges
        .tokens
        .replay(&s.exchanges.store, &token, true)
        .await
        .map_err(|e| refused_grant(e, "replay_unavailable"))?;
    let (access_token, expires_in) = issuer
        .mint(&Grant {
            ps_id: &token.ps_id,
            structure: structure.as_str(),
            thumbprint: &thumbprint,
            client_id: &client.id,
            subject_expires: token.expires,
        })
        .map_err(|e| {
            tracing::error!(error = format!("{e:#}"), "token exchange: cannot sign");
            oauth("server_error", "the token cannot be issued", "sign")
        })?;
    tracing::info!(client_id = %client.id, expires_in, "token exchanged");
    Ok(serde_json::json!({
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": expires_in,
    })
    .to_string())
}

/// A subject token refused (`invalid_grant`), or a check that could not be made (`server_error`,
/// the cause logged, `reason` audited).
fn refused_grant(e: TokenError, reason: &'static str) -> OAuthError {
    match e {
        TokenError::Refused(r) => {
            oauth("invalid_grant", "the subject token is not acceptable", r.0)
        }
        TokenError::Unavailable(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                reason,
                "token exchange: a check could not be made"
            );
            oauth("server_error", "try again later", reason)
        }
    }
}

/// The form body: `application/x-www-form-urlencoded`, bounded, each parameter at most once
/// (RFC 6749 §3.2).
async fn read_form(s: &HttpState, req: Request<Body>) -> Result<Vec<(String, String)>, OAuthError> {
    let invalid = |d, r| oauth("invalid_request", d, r);
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(invalid(
            "Content-Type must be application/x-www-form-urlencoded",
            "content_type",
        ));
    }
    let limited = Limited::new(req.into_body(), MAX_FORM_BYTES).collect();
    let bytes = match tokio::time::timeout(s.limits.body_timeout, limited).await {
        Ok(Ok(c)) => c.to_bytes(),
        _ => return Err(invalid("the body is too large, incomplete or slow", "body")),
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| invalid("the body is not a form", "form"))?;
    for (i, (k, _)) in form.iter().enumerate() {
        if form[..i].iter().any(|(j, _)| j == k) {
            return Err(invalid("a parameter is repeated", "repeated_parameter"));
        }
    }
    Ok(form)
}
