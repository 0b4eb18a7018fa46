//! The operations listener (plain HTTP, localhost by default): `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::CrlSettings;
use crate::metrics::{Metrics, Sampled};
use crate::store::Store;
use crate::tls::crl::Freshness;
use crate::tls::reload::Reloader;
use crate::tls::TlsContext;

#[derive(Clone)]
pub struct OpsState {
    pub store: Store,
    pub tls: Arc<TlsContext>,
    pub metrics: Arc<Metrics>,
    pub crl: CrlSettings,
    pub reloader: Reloader,
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/crl/refresh", axum::routing::post(refresh))
        .with_state(state)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Ready when the database answers and every CA's CRL is present and fresh — or the operator
/// chose a degraded mode, which is then named in the answer.
async fn readyz(State(s): State<OpsState>) -> Response {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let db_ok = tokio::time::timeout(Duration::from_secs(2), s.store.ping())
        .await
        .unwrap_or(false);
    if !db_ok {
        problems.push("database: unreachable".to_string());
    }
    let crls = s.tls.crls();
    let grace = i64::try_from(s.crl.grace.as_secs()).unwrap_or(i64::MAX);
    for ca in s.tls.cas.all() {
        match crls.freshness(&ca.subject_der, now(), grace) {
            Freshness::Fresh => {}
            Freshness::Missing if s.crl.allow_missing => notes.push(format!(
                "crl: none for {} (degraded: VD_CRL_ALLOW_MISSING)",
                ca.subject
            )),
            Freshness::Stale if s.crl.allow_stale => notes.push(format!(
                "crl: stale for {} (degraded: VD_CRL_ALLOW_STALE)",
                ca.subject
            )),
            Freshness::Missing => problems.push(format!("crl: none for {}", ca.subject)),
            Freshness::Stale => problems.push(format!("crl: past nextUpdate for {}", ca.subject)),
        }
    }
    let mut text = String::new();
    for line in problems.iter().chain(&notes) {
        text.push_str(line);
        text.push('\n');
    }
    if problems.is_empty() {
        text.insert_str(0, "ready\n");
        (StatusCode::OK, text).into_response()
    } else {
        text.insert_str(0, "not ready\n");
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

/// `crl refresh`: reload now (this listener is bound to localhost by default).
async fn refresh(State(s): State<OpsState>) -> Response {
    match s.reloader.refresh().await {
        Ok(summary) => (StatusCode::OK, format!("{summary}\n")).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e:#}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<OpsState>) -> Response {
    let crls = s.tls.crls();
    let pool = s.store.pool();
    let body = s.metrics.render(&Sampled {
        crls: &crls,
        now: now(),
        pool_size: pool.open(),
        pool_idle: pool.idle(),
        crl_allow_missing: s.crl.allow_missing,
        crl_allow_stale: s.crl.allow_stale,
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
