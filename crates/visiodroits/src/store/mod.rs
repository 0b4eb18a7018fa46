//! PostgreSQL access. Every transaction starts with `SET LOCAL ROLE` to the role of spec/data.md
//! that the work needs; the login role inherits nothing (NOINHERIT), so a query outside such a
//! transaction has no rights at all.

pub mod accreditation;
pub mod amc;
pub mod annuaire;
pub(crate) mod cancellation;
pub mod hosts;
pub mod import;
pub mod pool;
pub(crate) mod retention;
pub mod rights;
pub(crate) mod schema;
pub mod tarification;
pub(crate) mod token;
pub mod transactions;

use std::time::Duration;

use sqlx::PgPool;

use crate::config::{ConfigError, Secret};
pub use hosts::Hosts;
pub use pool::{Pool, Tx};

/// Migrations embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The database roles of spec/data.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Rights,
    Tarification,
    AuditWriter,
    /// Chains audit rows (`vd_audit_sealer`): reads the journal, inserts seals.
    AuditSealer,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Rights => "vd_droits",
            Role::Tarification => "vd_tarif",
            Role::AuditWriter => "vd_audit_writer",
            Role::AuditSealer => "vd_audit_sealer",
        }
    }

    /// `BEGIN` and the role in one simple query: one round trip.
    fn begin(self) -> &'static str {
        match self {
            Role::Rights => "BEGIN; SET LOCAL ROLE vd_droits",
            Role::Tarification => "BEGIN; SET LOCAL ROLE vd_tarif",
            Role::AuditWriter => "BEGIN; SET LOCAL ROLE vd_audit_writer",
            Role::AuditSealer => "BEGIN; SET LOCAL ROLE vd_audit_sealer",
        }
    }
}

/// The roles the server's login role is granted: the exchange roles and the audit sealer, not the
/// auditor's nor the trusted third party's (those are for admin commands).
pub(crate) const SERVER_ROLES: &[Role] = &[
    Role::Rights,
    Role::Tarification,
    Role::AuditWriter,
    Role::AuditSealer,
];

/// `DATABASE_URL`'s hosts, for the server and every admin command alike: libpq's URL form, with
/// one host or several ([`hosts`]), `target_session_attrs`, `connect_timeout`, and `sslmode`
/// (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`), `sslrootcert`, and `sslcert` with
/// `sslkey` for a client certificate. Over TCP, anything short of `verify-full` leaves the
/// database server unauthenticated, and says so in the log.
pub fn database_hosts(url: &Secret<String>) -> Result<Hosts, ConfigError> {
    Hosts::parse(url.expose(), |o| o)
}

/// Whether an error means the database went away under a statement (its server stopped, the
/// connection cut) or the host stopped taking writes (a standby, `25006`): what a failover
/// looks like from an exchange. Another connection, possibly to another host, may succeed.
pub(crate) fn lost_database(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "25006"),
        _ => false,
    }
}

/// Whether a server's SQLSTATE refuses the connection itself — its rules (authentication, no such
/// database or role), too many connections, or the server starting or shutting down — rather
/// than what was asked of it.
pub(crate) fn refuses_connection(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("28")
        || code.starts_with("57P")
        || code == "3D000"
        || code == "53300"
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// A pool that connects lazily: the server starts (and `/readyz` says why it is not ready)
    /// even while the database is down.
    pub(crate) fn connect_lazy(
        url: &Secret<String>,
        size: u32,
        acquire: Duration,
    ) -> anyhow::Result<Self> {
        let hosts = Hosts::parse(url.expose(), |o| o.application_name("visiodroits"))?
            .require_writable()?;
        Ok(Store {
            pool: Pool::new(hosts, size, acquire),
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Begins a transaction under `role` (one round trip).
    pub(crate) async fn begin_as(&self, role: Role) -> sqlx::Result<Tx> {
        self.pool.begin_with(role.begin()).await
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> bool {
        self.pool.ping().await
    }

    /// The pool's generation now: give it to [`Store::lost`] after the work that follows.
    pub(crate) fn generation(&self) -> u64 {
        self.pool.generation()
    }

    /// After `e` ended work begun at pool generation `since`: when the database went away or
    /// stopped taking writes, no connection opened until then is used again. Whether that was
    /// the case (the work may then be tried once more).
    pub(crate) fn lost(&self, e: &sqlx::Error, since: u64) -> bool {
        let lost = lost_database(e);
        if lost {
            self.pool.forsake_connections_of(since);
        }
        lost
    }
}

/// Creates (or updates) a login role for the server, member of [`SERVER_ROLES`] without
/// inheriting their rights. Run with a superuser connection (demo, tests, operators' setup).
pub async fn provision_login_role(admin: &PgPool, login: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !login.is_empty()
            && login
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "login role names are lower-case letters, digits and _"
    );
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(login)
            .fetch_one(admin)
            .await?;
    if !exists {
        // Concurrent test databases may race here: a duplicate is as good as a success.
        let create = format!("CREATE ROLE {login} LOGIN NOINHERIT");
        if let Err(e) = sqlx::query(&create).execute(admin).await {
            let dup = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42710" || c == "23505");
            if !dup {
                return Err(e.into());
            }
        }
    }
    for role in SERVER_ROLES {
        let grant = format!("GRANT {} TO {login}", role.name());
        sqlx::query(&grant).execute(admin).await?;
    }
    Ok(())
}
