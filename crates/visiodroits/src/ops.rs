//! The operations listener (plain HTTP, localhost by default): `/healthz`, `/readyz`, `/metrics`
//! for whoever can reach it, and `POST /crl/refresh`, an action, only from loopback or with the
//! token of `VD_OPS_TOKEN_FILE`.

use std::sync::Arc;
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::{CrlSettings, Secret, StructureCheck};
use crate::metrics::{Metrics, Sampled};
use crate::store::Store;
use crate::tls::crl::Freshness;
use crate::tls::reload::Reloader;
use crate::tls::TlsContext;

#[derive(Clone)]
pub(crate) struct OpsState {
    pub store: Store,
    pub tls: Arc<TlsContext>,
    pub metrics: Arc<Metrics>,
    pub crl: CrlSettings,
    pub structure_check: StructureCheck,
    pub reloader: Reloader,
    pub token: Option<Secret<String>>,
}

pub(crate) fn router(state: OpsState) -> Router {
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

/// Ready when the database answers, every CA's CRLs are present and fresh — or the operator
/// chose a degraded mode, which is then named in the answer — and, when CPS cards' structures are
/// checked against the professional directory, a directory is loaded.
async fn readyz(State(s): State<OpsState>) -> Response {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let db_ok = tokio::time::timeout(Duration::from_secs(2), s.store.ping())
        .await
        .unwrap_or(false);
    let hosts = s.store.hosts();
    if !db_ok && hosts.several() && !hosts.reachable() {
        problems.push(format!(
            "database: no host gives a writable session among {}",
            hosts.labels().join(", ")
        ));
    } else if !db_ok {
        problems.push("database: unreachable".to_string());
    } else {
        if let (true, Some(host)) = (hosts.several(), hosts.current()) {
            notes.push(format!("database: host {host}"));
        }
        let level = tokio::time::timeout(
            Duration::from_secs(2),
            crate::store::schema::database_level(&s.store),
        )
        .await;
        match level {
            Ok(Ok(level)) => {
                if let Err(e) = crate::store::schema::compare(level) {
                    problems.push(format!("database: {e}"));
                }
            }
            _ => problems.push("database: migration level unreadable".to_string()),
        }
    }
    if db_ok && s.structure_check == StructureCheck::Directory {
        match tokio::time::timeout(Duration::from_secs(2), directory(&s.store)).await {
            Ok(Ok(Some((file, activities)))) => {
                notes.push(format!("directory: {file}, {activities} activities"))
            }
            Ok(Ok(None)) => problems.push(
                "directory: none loaded (annuaire import); CPS cards are refused with 8004"
                    .to_string(),
            ),
            _ => problems.push("directory: unreadable".to_string()),
        }
    }
    let crls = s.tls.crls();
    let grace = i64::try_from(s.crl.grace.as_secs()).unwrap_or(i64::MAX);
    let cas = s.tls.cas();
    for ca in cas.all() {
        let name = format!("{} [key {}]", ca.subject, ca.id.short());
        match crls.freshness(&ca.id, now(), grace) {
            Freshness::Fresh => {}
            Freshness::Missing if s.crl.allow_missing => notes.push(format!(
                "crl: none for {name} (degraded: VD_CRL_ALLOW_MISSING)"
            )),
            Freshness::Stale if s.crl.allow_stale => notes.push(format!(
                "crl: stale for {name} (degraded: VD_CRL_ALLOW_STALE)"
            )),
            Freshness::Missing => problems.push(format!("crl: none for {name}")),
            Freshness::Stale => problems.push(format!("crl: past nextUpdate for {name}")),
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

/// The directory load in force: (file, activities).
async fn directory(store: &Store) -> anyhow::Result<Option<(String, i64)>> {
    let mut tx = store.begin_as(crate::store::Role::Rights).await?;
    let loaded = crate::store::annuaire::loaded(&mut tx).await?;
    tx.commit().await?;
    Ok(loaded.map(|(file, activities, _)| (file, activities)))
}

/// Whether a request from `peer` may act (not only read): from loopback, or with the bearer
/// token when one is configured, compared in constant time.
fn may_act(peer: IpAddr, headers: &HeaderMap, token: Option<&Secret<String>>) -> bool {
    if peer.to_canonical().is_loopback() {
        return true;
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (token, presented) {
        (Some(token), Some(presented)) => {
            let (a, b) = (token.expose().as_bytes(), presented.trim().as_bytes());
            a.len() == b.len() && openssl::memcmp::eq(a, b)
        }
        _ => false,
    }
}

/// `crl refresh`: reload now.
async fn refresh(
    State(s): State<OpsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !may_act(peer.ip(), &headers, s.token.as_ref()) {
        tracing::warn!(%peer, "operations action refused: not from loopback, no valid token");
        let mut resp = (
            StatusCode::FORBIDDEN,
            "actions need loopback, or the token of VD_OPS_TOKEN_FILE\n",
        )
            .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
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
    let pools: Vec<(&str, u32, usize)> = s
        .store
        .pools()
        .iter()
        .map(|p| (p.user(), p.open(), p.idle()))
        .collect();
    let body = s.metrics.render(&Sampled {
        crls: &crls,
        now: now(),
        pools: &pools,
        db_hosts: s.store.hosts(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn actions_need_loopback_or_the_token() {
        let token = Secret::new("t".repeat(32));
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        let none = HeaderMap::new();
        assert!(may_act("127.0.0.1".parse().unwrap(), &none, None));
        assert!(may_act("::1".parse().unwrap(), &none, None));
        assert!(may_act("::ffff:127.0.0.1".parse().unwrap(), &none, None));
        assert!(!may_act(remote, &none, None));
        assert!(!may_act(remote, &none, Some(&token)));
        assert!(!may_act(remote, &bearer(&"t".repeat(31)), Some(&token)));
        assert!(!may_act(remote, &bearer(&"u".repeat(32)), Some(&token)));
        assert!(!may_act(remote, &bearer(&"t".repeat(32)), None));
        assert!(may_act(remote, &bearer(&"t".repeat(32)), Some(&token)));
    }
}
