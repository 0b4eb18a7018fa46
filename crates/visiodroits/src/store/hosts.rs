//! The database hosts of `DATABASE_URL`, as libpq lists them, and the one to use.
//!
//! A URL may name several hosts, in its authority (`postgres://a:5432,b:5433/db`) or in its query
//! (`postgres://u@localhost/db?host=/run/a,/run/b&port=5432`), with `target_session_attrs`
//! (`any`, `read-write`, `read-only`, `primary`, `standby`, `prefer-standby`) saying which
//! session is wanted and `connect_timeout` bounding each host's attempt. A new connection tries
//! the host in use first, then the others in their order; a host whose session does not fit is
//! left (its connection closed) and the next one tried. Every other parameter applies to every
//! host.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use crate::config::ConfigError;

/// The session a connection must find (libpq's `target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl SessionAttrs {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "any" => SessionAttrs::Any,
            "read-write" => SessionAttrs::ReadWrite,
            "read-only" => SessionAttrs::ReadOnly,
            "primary" => SessionAttrs::Primary,
            "standby" => SessionAttrs::Standby,
            "prefer-standby" => SessionAttrs::PreferStandby,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::ReadWrite => "read-write",
            SessionAttrs::ReadOnly => "read-only",
            SessionAttrs::Primary => "primary",
            SessionAttrs::Standby => "standby",
            SessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a session (in recovery, read-only) fits; `first_pass` of `prefer-standby` takes
    /// standbys only.
    fn fits(self, in_recovery: bool, read_only: bool, first_pass: bool) -> bool {
        match self {
            SessionAttrs::Any => true,
            SessionAttrs::ReadWrite => !read_only,
            SessionAttrs::ReadOnly => read_only,
            SessionAttrs::Primary => !in_recovery,
            SessionAttrs::Standby => in_recovery,
            SessionAttrs::PreferStandby => !first_pass || in_recovery,
        }
    }
}

/// One host of the URL.
struct Host {
    /// `host:port`, or the socket directory with its port: for the log, `/readyz`, metrics.
    label: String,
    options: PgConnectOptions,
}

/// The hosts of `DATABASE_URL` and which one is in use.
pub struct Hosts {
    hosts: Vec<Host>,
    attrs: SessionAttrs,
    connect_timeout: Option<Duration>,
    /// `statement_timeout` of every new connection (`None`: the database's own).
    statement_timeout: Option<Duration>,
    /// Index of the host of the last connection made; `usize::MAX` before the first.
    current: AtomicUsize,
    /// Whether the last attempt found a host (so that losing all of them is logged once).
    reachable: AtomicBool,
    /// Times a new connection went to another host than the previous one.
    switches: AtomicU64,
    /// The pools' generation: connections opened under an older one are not used again.
    generation: AtomicU64,
}

impl std::fmt::Debug for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosts")
            .field("hosts", &self.labels())
            .field("attrs", &self.attrs)
            .finish()
    }
}

/// Each host's attempt is bounded by this when several hosts are listed and the URL sets no
/// `connect_timeout`: an unreachable first host must not hold every new connection.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl Hosts {
    /// Parses `url`; `adjust` is applied to every host's options (e.g. the application name).
    pub fn parse(
        url: &str,
        adjust: impl Fn(PgConnectOptions) -> PgConnectOptions,
    ) -> Result<Hosts, ConfigError> {
        let invalid = |message: String| ConfigError {
            name: "DATABASE_URL",
            message,
        };
        let split = split(url).map_err(invalid)?;
        let mut hosts = Vec::with_capacity(split.urls.len());
        for (label, one) in split.labels.into_iter().zip(split.urls) {
            let options = PgConnectOptions::from_str(&one)
                .map_err(|_| invalid("not a valid PostgreSQL URL".into()))?;
            let over_tcp = options.get_socket().is_none() && !options.get_host().starts_with('/');
            if over_tcp && !matches!(options.get_ssl_mode(), PgSslMode::VerifyFull) {
                tracing::warn!(
                    host = %label,
                    "DATABASE_URL: the database server is not authenticated (use sslmode=verify-full with sslrootcert)"
                );
            }
            hosts.push(Host {
                label,
                options: adjust(options),
            });
        }
        let several = hosts.len() > 1;
        Ok(Hosts {
            hosts,
            attrs: split.attrs,
            connect_timeout: split
                .connect_timeout
                .or(several.then_some(DEFAULT_CONNECT_TIMEOUT)),
            statement_timeout: None,
            current: AtomicUsize::new(usize::MAX),
            reachable: AtomicBool::new(true),
            switches: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        })
    }

    pub fn attrs(&self) -> SessionAttrs {
        self.attrs
    }

    /// Gives every new connection this `statement_timeout`, set once after it opens (a `SET`,
    /// not the startup packet's `options`, which connection poolers in front of PostgreSQL may
    /// refuse): a statement held by a lock or a stalled plan is cancelled, and its exchange
    /// answered, instead of holding a pharmacy and a connection until the lock goes.
    pub fn with_statement_timeout(mut self, limit: Option<Duration>) -> Hosts {
        self.statement_timeout = limit;
        self
    }

    /// Makes every connection need a writable session when several hosts are listed: what the
    /// server asks, since every exchange writes (a single host is used as it is, unless the URL
    /// asks for a check). A URL asking for a standby is refused.
    pub fn require_writable(mut self) -> Result<Hosts, ConfigError> {
        match self.attrs {
            SessionAttrs::Any if !self.several() => {}
            SessionAttrs::Any | SessionAttrs::ReadWrite => self.attrs = SessionAttrs::ReadWrite,
            SessionAttrs::Primary => {}
            other => {
                return Err(ConfigError {
                    name: "DATABASE_URL",
                    message: format!(
                        "target_session_attrs={}: the server writes; use read-write or primary",
                        other.as_str()
                    ),
                })
            }
        }
        Ok(self)
    }

    pub fn several(&self) -> bool {
        self.hosts.len() > 1
    }

    pub fn labels(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.label.as_str()).collect()
    }

    /// The host of the last connection made, if one was.
    pub fn current(&self) -> Option<&str> {
        self.hosts
            .get(self.current.load(Ordering::Relaxed))
            .map(|h| h.label.as_str())
    }

    /// Whether the last attempt to connect found a host that fits.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// How many times new connections moved to another host.
    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// The connections' generation now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Moves on from `generation`, unless a newer one began meanwhile; whether it did.
    pub(crate) fn advance(&self, generation: u64) -> bool {
        self.generation
            .compare_exchange(
                generation,
                generation + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The first host's options: for a single host, what connecting means.
    pub fn first_options(&self) -> &PgConnectOptions {
        &self.hosts[0].options
    }

    /// The URL's user (the login role, or the prefix of the pools' login roles).
    pub fn user(&self) -> &str {
        self.hosts[0].options.get_username()
    }

    /// A connection to the first host that fits, as `user` when given (else the URL's), the host
    /// in use tried first; whether it is on another host than the previous connection (a
    /// failover).
    pub async fn connect(&self, user: Option<&str>) -> sqlx::Result<(PgConnection, bool)> {
        let n = self.hosts.len();
        let start = match self.current.load(Ordering::Relaxed) {
            i if i < n => i,
            _ => 0,
        };
        let passes = if self.attrs == SessionAttrs::PreferStandby {
            2
        } else {
            1
        };
        let mut last = None;
        for pass in 0..passes {
            for k in 0..n {
                let i = (start + k) % n;
                match self.try_host(i, user, pass == 0).await {
                    Ok(conn) => return Ok((conn, self.note_current(i))),
                    Err(e) => last = Some(e),
                }
            }
        }
        let e = last.expect("a URL has at least one host");
        if self.reachable.swap(false, Ordering::Relaxed) && self.several() {
            tracing::warn!(
                hosts = %self.labels().join(","),
                target_session_attrs = self.attrs.as_str(),
                error = %e,
                "database: no listed host gives a fitting session"
            );
        }
        Err(e)
    }

    /// A connection to host `i` with a fitting session, within `connect_timeout` (the session's
    /// check included: a host that accepts and then stalls is left too).
    async fn try_host(
        &self,
        i: usize,
        user: Option<&str>,
        first_pass: bool,
    ) -> sqlx::Result<PgConnection> {
        let attempt = self.attempt(i, user, first_pass);
        match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, attempt).await.map_err(|_| {
                sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{}: no session within {limit:?}", self.hosts[i].label),
                ))
            })?,
            None => attempt.await,
        }
    }

    async fn attempt(
        &self,
        i: usize,
        user: Option<&str>,
        first_pass: bool,
    ) -> sqlx::Result<PgConnection> {
        let host = &self.hosts[i];
        let mut conn = match user {
            Some(user) => host.options.clone().username(user).connect().await?,
            None => host.options.connect().await?,
        };
        if let Some(limit) = self.statement_timeout {
            let set = format!("SET statement_timeout = {}", limit.as_millis());
            sqlx::query(&set)
                .persistent(false)
                .execute(&mut conn)
                .await?;
        }
        if self.attrs == SessionAttrs::Any {
            return Ok(conn);
        }
        let (in_recovery, read_only): (bool, bool) = sqlx::query_as(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'",
        )
        .fetch_one(&mut conn)
        .await?;
        if self.attrs.fits(in_recovery, read_only, first_pass) {
            return Ok(conn);
        }
        let _ = conn.close().await;
        let session = match (in_recovery, read_only) {
            (true, _) => "a standby",
            (false, true) => "read-only",
            (false, false) => "a primary",
        };
        Err(sqlx::Error::Io(std::io::Error::other(format!(
            "{} is {session} (target_session_attrs={})",
            host.label,
            self.attrs.as_str()
        ))))
    }

    /// Records that host `i` served a connection; true when that is a move from another host.
    fn note_current(&self, i: usize) -> bool {
        let previous = self.current.swap(i, Ordering::Relaxed);
        let was_reachable = self.reachable.swap(true, Ordering::Relaxed);
        let moved = previous != usize::MAX && previous != i;
        if moved {
            self.switches.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                host = %self.hosts[i].label,
                previous = %self.hosts[previous].label,
                "database: now on another host"
            );
        } else if self.several() && (previous == usize::MAX || !was_reachable) {
            tracing::info!(host = %self.hosts[i].label, "database: host in use");
        }
        moved
    }

    /// The options of the first host that fits (for admin commands, one short-lived pool).
    pub async fn resolve(&self) -> sqlx::Result<PgConnectOptions> {
        if !self.several() && self.attrs == SessionAttrs::Any {
            return Ok(self.hosts[0].options.clone());
        }
        let (conn, _) = self.connect(None).await?;
        let _ = conn.close().await;
        let i = self.current.load(Ordering::Relaxed);
        Ok(self.hosts[i].options.clone())
    }
}

/// A URL cut into one URL per host.
#[derive(Debug)]
struct Split {
    urls: Vec<String>,
    labels: Vec<String>,
    attrs: SessionAttrs,
    connect_timeout: Option<Duration>,
}

/// Cuts a libpq URL with several hosts into one URL per host (the query's `host` and `port`
/// lists win over the authority's, as in libpq).
fn split(url: &str) -> Result<Split, String> {
    const NOT_URL: &str = "not a valid PostgreSQL URL";
    let (scheme, rest) = url.split_once("://").ok_or(NOT_URL)?;
    if scheme != "postgres" && scheme != "postgresql" {
        return Err(NOT_URL.into());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, netloc) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));

    let mut kept = Vec::new();
    let (mut q_hosts, mut q_ports, mut attrs, mut timeout) = (None, None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "host" => q_hosts = Some(decode(v)?),
            "port" => q_ports = Some(decode(v)?),
            "target_session_attrs" => {
                attrs = Some(
                    SessionAttrs::parse(&decode(v)?)
                        .ok_or("target_session_attrs: not one of any, read-write, read-only, primary, standby, prefer-standby")?,
                )
            }
            "connect_timeout" => {
                let secs: i64 = decode(v)?
                    .parse()
                    .map_err(|_| "connect_timeout: not a number of seconds")?;
                // libpq: 0 or less waits forever; under 2 s counts as 2 s.
                timeout = (secs > 0).then(|| Duration::from_secs(secs.max(2).unsigned_abs()));
            }
            _ => kept.push(pair),
        }
    }

    // (host, port) from the authority: `h`, `h:p`, `[v6]`, `[v6]:p`, or nothing.
    let mut hosts: Vec<(String, Option<String>)> = Vec::new();
    if !netloc.is_empty() {
        for entry in netloc.split(',') {
            let (h, p) = if let Some(v6) = entry.strip_prefix('[') {
                let (addr, after) = v6.split_once(']').ok_or(NOT_URL)?;
                let port = after.strip_prefix(':').map(str::to_string);
                (format!("[{addr}]"), port)
            } else {
                match entry.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p.to_string())),
                    None => (entry.to_string(), None),
                }
            };
            hosts.push((h, p.filter(|p| !p.is_empty())));
        }
    }
    if path.contains('@') {
        // A password's unencoded `/` or `?` cut the URL short: say so without echoing any of it.
        return Err(
            "not a valid PostgreSQL URL (percent-encode '/', '?' and '@' in the password)".into(),
        );
    }
    if let Some(list) = &q_hosts {
        // The query's hosts keep the authority's port(s) when the query gives none, as in libpq.
        let ports: Vec<Option<String>> = hosts.iter().map(|h| h.1.clone()).collect();
        hosts = list.split(',').map(|h| (h.to_string(), None)).collect();
        if q_ports.is_none() {
            if ports.len() == hosts.len() {
                for (h, p) in hosts.iter_mut().zip(ports) {
                    h.1 = p;
                }
            } else if let [Some(p)] = ports.as_slice() {
                for h in &mut hosts {
                    h.1 = Some(p.clone());
                }
            }
        }
    }
    if hosts.is_empty() {
        hosts.push((String::new(), None));
    }
    if let Some(list) = &q_ports {
        let ports: Vec<&str> = list.split(',').collect();
        if ports.len() == 1 {
            for h in &mut hosts {
                h.1 = Some(ports[0].to_string());
            }
        } else if ports.len() == hosts.len() {
            for (h, p) in hosts.iter_mut().zip(ports) {
                h.1 = Some(p.to_string());
            }
        } else {
            return Err(format!(
                "{} ports for {} hosts: give one port, or one per host",
                ports.len(),
                hosts.len()
            ));
        }
    }
    for (_, p) in &hosts {
        if let Some(p) = p {
            // Not echoed: a password's unencoded character may have made it.
            p.parse::<u16>().map_err(|_| {
                "a port is not a number (percent-encode '/', '?' and '@' in the password)"
                    .to_string()
            })?;
        }
    }

    let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let mut urls = Vec::with_capacity(hosts.len());
    let mut labels = Vec::with_capacity(hosts.len());
    for (h, p) in &hosts {
        let mut query: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
        // An IPv6 address from the query goes in brackets.
        let h = if h.contains(':') && !h.starts_with('[') && !h.starts_with('/') {
            format!("[{h}]")
        } else {
            h.clone()
        };
        let netloc = if h.starts_with('/') || h.is_empty() {
            if h.is_empty() {
                // `postgres:///db?port=…`: the default host, on that port.
                if let Some(p) = p {
                    query.push(format!("port={p}"));
                }
                String::new()
            } else {
                query.push(format!("host={}", encode(&h)));
                if let Some(p) = p {
                    query.push(format!("port={p}"));
                }
                "localhost".to_string()
            }
        } else {
            match p {
                Some(p) => format!("{h}:{p}"),
                None => h.clone(),
            }
        };
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        urls.push(format!("{scheme}://{user}{netloc}{path}{query}"));
        labels.push(match (h.as_str(), p) {
            ("", Some(p)) => format!("localhost:{p}"),
            ("", None) => "localhost".to_string(),
            (h, Some(p)) => format!("{h}:{p}"),
            (h, None) if h.starts_with('/') => h.to_string(),
            (h, None) => format!("{h}:5432"),
        });
    }
    Ok(Split {
        urls,
        labels,
        attrs: attrs.unwrap_or(SessionAttrs::Any),
        connect_timeout: timeout,
    })
}

/// Percent-decodes a query value (`+` is kept: libpq does not read it as a space).
fn decode(v: &str) -> Result<String, String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad percent escape in DATABASE_URL")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "DATABASE_URL: not UTF-8 once decoded".into())
}

/// Percent-encodes what a query value may not hold as is.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '%' | '&' | '#' | '+' | ' ' | '=' | '?' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_hosts_become_one_url_each_with_the_rest_of_the_url() {
        let s = split(
            "postgres://app:pw@db1:5432,db2:5433,[::1]/visio?sslmode=verify-full&target_session_attrs=read-write&application_name=x",
        )
        .unwrap();
        assert_eq!(
            s.urls,
            [
                "postgres://app:pw@db1:5432/visio?sslmode=verify-full&application_name=x",
                "postgres://app:pw@db2:5433/visio?sslmode=verify-full&application_name=x",
                "postgres://app:pw@[::1]/visio?sslmode=verify-full&application_name=x",
            ]
        );
        assert_eq!(s.labels, ["db1:5432", "db2:5433", "[::1]:5432"]);
        assert_eq!(s.attrs, SessionAttrs::ReadWrite);
    }

    #[test]
    fn query_hosts_and_ports_win_and_a_single_port_serves_all() {
        let s = split("postgres://app@localhost/visio?host=/run/a,/run/b&port=5433").unwrap();
        assert_eq!(
            s.urls,
            [
                "postgres://app@localhost/visio?host=/run/a&port=5433",
                "postgres://app@localhost/visio?host=/run/b&port=5433",
            ]
        );
        assert_eq!(s.labels, ["/run/a:5433", "/run/b:5433"]);
        assert_eq!(s.attrs, SessionAttrs::Any);
        let s = split("postgres:///visio?host=a,b&port=1,2&connect_timeout=1").unwrap();
        assert_eq!(s.urls, ["postgres://a:1/visio", "postgres://b:2/visio"]);
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn ports_and_hosts_land_where_libpq_puts_them() {
        // The authority's port stays with the query's socket or host.
        let s = split("postgres://u@localhost:5433/db?host=/var/run/postgresql").unwrap();
        assert_eq!(
            s.urls,
            ["postgres://u@localhost/db?host=/var/run/postgresql&port=5433"]
        );
        let s = split("postgres://u@db:6432/x?host=db2").unwrap();
        assert_eq!(s.urls, ["postgres://u@db2:6432/x"]);
        // The default host on another port; an IPv6 address from the query.
        let s = split("postgres:///db?port=5433").unwrap();
        assert_eq!(s.urls, ["postgres:///db?port=5433"]);
        assert_eq!(s.labels, ["localhost:5433"]);
        let s = split("postgres://u@/db?host=::1,db2&port=5432").unwrap();
        assert_eq!(
            s.urls,
            ["postgres://u@[::1]:5432/db", "postgres://u@db2:5432/db"]
        );
        // libpq's "wait forever".
        assert_eq!(
            split("postgres://a/db?connect_timeout=-1")
                .unwrap()
                .connect_timeout,
            None
        );
    }

    #[test]
    fn a_password_that_breaks_the_url_is_never_echoed() {
        for url in [
            "postgres://app:Xy7/kQ@db/v",
            "postgres://app:1234/kQ@db/v",
            "postgres://app:Xy7?kQ@db/v",
        ] {
            let e = split(url).unwrap_err();
            assert!(
                !e.contains("Xy7") && !e.contains("1234") && !e.contains("kQ"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_lists_and_values_are_refused_by_name() {
        assert!(split("postgres:///v?host=a,b,c&port=1,2")
            .unwrap_err()
            .contains("2 ports for 3 hosts"));
        assert!(split("postgres://a,b/v?target_session_attrs=writable")
            .unwrap_err()
            .contains("target_session_attrs"));
        assert!(split("postgres://a:x/v")
            .unwrap_err()
            .contains("a port is not a number"));
        assert!(split("mysql://a/v").is_err());
    }

    #[test]
    fn a_single_host_url_keeps_its_meaning() {
        for url in [
            "postgres://u@localhost/db?host=/tmp/vd/run",
            "postgres://u:p@db.example:6432/db?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            "postgresql://u@db/db",
            "postgres://u@localhost:5433/db?host=/var/run/postgresql",
            "postgres://u@localhost/db?host=%2Fvar%2Frun%2Fpostgresql",
            "postgres://u:p%2Fw%40rd@[::1]:5433/db",
        ] {
            let hosts = Hosts::parse(url, |o| o).unwrap();
            let direct = PgConnectOptions::from_str(url).unwrap();
            let one = hosts.first_options();
            assert_eq!(one.get_host(), direct.get_host(), "{url}");
            assert_eq!(one.get_port(), direct.get_port(), "{url}");
            assert_eq!(one.get_socket(), direct.get_socket(), "{url}");
            assert_eq!(one.get_database(), direct.get_database(), "{url}");
            assert_eq!(one.get_username(), direct.get_username(), "{url}");
            assert!(!hosts.several());
        }
    }

    #[test]
    fn the_server_needs_a_writable_session() {
        let h = Hosts::parse("postgres://a,b/db", |o| o).unwrap();
        assert_eq!(
            h.require_writable().unwrap().attrs(),
            SessionAttrs::ReadWrite
        );
        let h = Hosts::parse("postgres://a/db", |o| o).unwrap();
        assert_eq!(h.require_writable().unwrap().attrs(), SessionAttrs::Any);
        let h = Hosts::parse(
            "postgres://a,b/db?target_session_attrs=prefer-standby",
            |o| o,
        )
        .unwrap();
        assert!(h
            .require_writable()
            .unwrap_err()
            .message
            .contains("the server writes"));
    }

    #[test]
    fn sessions_fit_as_libpq_says() {
        use SessionAttrs::*;
        // (in recovery, read-only)
        let standby = (true, true);
        let primary = (false, false);
        let read_only_primary = (false, true);
        for (attrs, fits) in [
            (ReadWrite, [false, true, false]),
            (Primary, [false, true, true]),
            (ReadOnly, [true, false, true]),
            (Standby, [true, false, false]),
            (Any, [true, true, true]),
        ] {
            for (session, fit) in [standby, primary, read_only_primary].into_iter().zip(fits) {
                assert_eq!(
                    attrs.fits(session.0, session.1, true),
                    fit,
                    "{attrs:?} {session:?}"
                );
            }
        }
        assert!(!PreferStandby.fits(false, false, true));
        assert!(PreferStandby.fits(false, false, false));
    }
}
