//! PostgreSQL access, through one pool per role of spec/data.md that the server acts as. Each
//! pool logs in as its own login role, a member of that role alone (`VD_DB_LOGINS=per-pool`,
//! the default): a connection of the tarification pool cannot reach `identite` whatever
//! statement it runs. With `VD_DB_LOGINS=shared`, one login role serves every pool and each
//! transaction starts with `SET LOCAL ROLE`.

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

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::config::{ConfigError, DbLogins, Secret};
pub use hosts::Hosts;
pub use pool::{Pool, Tx};

/// Migrations embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The database roles of spec/data.md that the server acts as, one pool each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Rights,
    Tarification,
    AuditWriter,
    /// Chains audit rows (`vd_audit_sealer`): reads the journal, inserts seals.
    AuditSealer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Rights => "vd_droits",
            Role::Tarification => "vd_tarif",
            Role::AuditWriter => "vd_audit_writer",
            Role::AuditSealer => "vd_audit_sealer",
        }
    }

    /// The end of the login role of this role's pool: `{user}_{suffix}`.
    pub fn login_suffix(self) -> &'static str {
        match self {
            Role::Rights => "droits",
            Role::Tarification => "tarif",
            Role::AuditWriter => "audit",
            Role::AuditSealer => "sceau",
        }
    }

    /// The login role of this role's pool, for the prefix `user` (`DATABASE_URL`'s user).
    pub fn login(self, user: &str) -> String {
        format!("{user}_{}", self.login_suffix())
    }

    fn index(self) -> usize {
        self as usize
    }

    /// How a transaction begins on this role's pool (one round trip): `BEGIN` where the login
    /// role is the pool's own, `BEGIN` and `SET LOCAL ROLE` in one simple query otherwise.
    fn begin(self, logins: DbLogins) -> &'static str {
        if logins == DbLogins::PerPool {
            return "BEGIN";
        }
        match self {
            Role::Rights => "BEGIN; SET LOCAL ROLE vd_droits",
            Role::Tarification => "BEGIN; SET LOCAL ROLE vd_tarif",
            Role::AuditWriter => "BEGIN; SET LOCAL ROLE vd_audit_writer",
            Role::AuditSealer => "BEGIN; SET LOCAL ROLE vd_audit_sealer",
        }
    }
}

/// The roles the server acts as, in [`Role`]'s order: the exchange roles and the audit sealer,
/// not the auditor's nor the trusted third party's (those are for admin commands).
pub const SERVER_ROLES: &[Role] = &[
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
    /// One per [`SERVER_ROLES`] entry, in its order; with shared logins, the same pool four times.
    pools: Arc<[Pool; 4]>,
    logins: DbLogins,
}

impl Store {
    /// Pools that connect lazily: the server starts (and `/readyz` says why it is not ready)
    /// even while the database is down. With per-pool logins, the rights, tarification and
    /// audit writer's pools have `size` connections each and the sealer's 2; with a shared
    /// login, one pool of `size` serves every role.
    pub fn connect_lazy(
        url: &Secret<String>,
        size: u32,
        acquire: Duration,
        statement_timeout: Option<Duration>,
        logins: DbLogins,
    ) -> anyhow::Result<Self> {
        let hosts = Arc::new(
            Hosts::parse(url.expose(), |o| o.application_name("visiodroits"))?
                .require_writable()?
                .with_statement_timeout(statement_timeout),
        );
        let pools = match logins {
            DbLogins::Shared => {
                let p = Pool::new(hosts, None, size, acquire);
                [p.clone(), p.clone(), p.clone(), p]
            }
            DbLogins::PerPool => {
                let user = hosts.user().to_string();
                anyhow::ensure!(
                    !user.is_empty(),
                    ConfigError {
                        name: "DATABASE_URL",
                        message:
                            "names no user: with VD_DB_LOGINS=per-pool its user is the prefix \
                                  of the pools' login roles"
                                .into(),
                    }
                );
                let pool = |role: Role, size: u32| {
                    Pool::new(Arc::clone(&hosts), Some(role.login(&user)), size, acquire)
                };
                [
                    pool(Role::Rights, size),
                    pool(Role::Tarification, size),
                    // Failure rows and token replay, inside the requests: as many as they.
                    pool(Role::AuditWriter, size),
                    pool(Role::AuditSealer, 2),
                ]
            }
        };
        Ok(Store {
            pools: Arc::new(pools),
            logins,
        })
    }

    /// The pool of `role`.
    pub fn pool(&self, role: Role) -> &Pool {
        &self.pools[role.index()]
    }

    /// Each pool once (with a shared login, the one pool).
    pub fn pools(&self) -> &[Pool] {
        match self.logins {
            DbLogins::PerPool => &self.pools[..],
            DbLogins::Shared => &self.pools[..1],
        }
    }

    pub fn logins(&self) -> DbLogins {
        self.logins
    }

    /// The database hosts, and the one in use (shared by the pools).
    pub fn hosts(&self) -> &Hosts {
        self.pools[0].hosts()
    }

    /// Begins a transaction under `role` (one round trip).
    pub(crate) async fn begin_as(&self, role: Role) -> sqlx::Result<Tx> {
        self.pool(role).begin_with(role.begin(self.logins)).await
    }

    /// Work under `role` that begins with `read` (safe to run twice: see [`Pool::read_with`]):
    /// autocommit statements on the role's own pool, no `BEGIN` nor `COMMIT` sent, or a
    /// transaction where the login role is shared (its `SET LOCAL ROLE` needs one). End it with
    /// [`Tx::commit`] either way.
    pub(crate) async fn read_as<T, F, Fut>(&self, role: Role, read: F) -> sqlx::Result<(Tx, T)>
    where
        F: FnMut(sqlx::PgConnection) -> Fut,
        Fut: std::future::Future<Output = (sqlx::PgConnection, sqlx::Result<T>)>,
    {
        let begin = (self.logins == DbLogins::Shared).then(|| role.begin(self.logins));
        self.pool(role).read_with(begin, read).await
    }

    /// Whether the database answers every pool's login role.
    pub(crate) async fn ping(&self) -> bool {
        for pool in self.pools() {
            if !pool.ping().await {
                return false;
            }
        }
        true
    }

    /// The connections' generation now: give it to [`Store::lost`] after the work that follows.
    pub(crate) fn generation(&self) -> u64 {
        self.hosts().generation()
    }

    /// After `e` ended work begun at generation `since`: when the database went away or
    /// stopped taking writes, no connection of any pool opened until then is used again.
    /// Whether that was the case (the work may then be tried once more).
    pub(crate) fn lost(&self, e: &sqlx::Error, since: u64) -> bool {
        let lost = lost_database(e);
        if lost && self.hosts().advance(since) {
            for pool in self.pools() {
                pool.close_idle_upto(since);
            }
        }
        lost
    }
}

/// Creates (or updates) the login roles of the server's pools for the prefix `login`:
/// `{login}_droits`, `{login}_tarif`, `{login}_audit` and `{login}_sceau`, each a member of its
/// one role of [`SERVER_ROLES`] (inheriting it) and of no other. Run with a superuser connection
/// (demo, tests, operators' setup).
pub async fn provision_login_role(admin: &PgPool, login: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !login.is_empty()
            && login.len() <= 56
            && login
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "login role names are lower-case letters, digits and _ (56 at most)"
    );
    for role in SERVER_ROLES {
        let name = role.login(login);
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&name)
                .fetch_one(admin)
                .await?;
        if !exists {
            // Concurrent test databases may race here: a duplicate is as good as a success.
            let create = format!("CREATE ROLE {name} LOGIN INHERIT");
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
        sqlx::query(&format!("ALTER ROLE {name} INHERIT"))
            .execute(admin)
            .await?;
        for other in SERVER_ROLES {
            let sql = if other == role {
                format!("GRANT {} TO {name}", other.name())
            } else {
                format!("REVOKE {} FROM {name}", other.name())
            };
            sqlx::query(&sql).execute(admin).await?;
        }
    }
    Ok(())
}
