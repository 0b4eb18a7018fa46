//! The database's migration level against the binary's, and what the server's login role may act
//! as: `serve` refuses a database behind or ahead of it, `/readyz` and `check-config` say why.

use std::sync::atomic::{AtomicU8, Ordering};

use super::{Role, Store, MIGRATOR, SERVER_ROLES};
use crate::config::DbLogins;

/// The first migration that publishes the level (`public.vd_migration_level()`).
const LEVEL_SINCE: i64 = 20261201000012;

/// The last migration this binary embeds.
pub(crate) fn binary_level() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The database's level: `None` when it predates [`LEVEL_SINCE`] (its function is missing).
pub(crate) async fn database_level(store: &Store) -> sqlx::Result<Option<i64>> {
    let mut tx = store.begin_as(Role::Rights).await?;
    let level = sqlx::query_scalar::<_, Option<i64>>("SELECT public.vd_migration_level()")
        .fetch_one(&mut *tx)
        .await;
    match level {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        // 42883: no such function, a database before LEVEL_SINCE.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42883") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `Err` with the sentence an operator acts on when the database's level is not the binary's.
pub(crate) fn compare(database: Option<i64>) -> Result<i64, String> {
    let binary = binary_level();
    match database {
        Some(db) if db == binary => Ok(db),
        Some(db) if db < binary => Err(format!(
            "the database's migrations are behind this binary: the database is at {db}, this \
             binary at {binary} (run visiodroits migrate)"
        )),
        Some(db) => Err(format!(
            "the database's migrations are ahead of this binary: the database is at {db}, this \
             binary at {binary} (run the binary that migrated it, or a newer one)"
        )),
        None => Err(format!(
            "the database's migrations are behind this binary: the database is at a version \
             before {LEVEL_SINCE}, this binary at {binary} (run visiodroits migrate)"
        )),
    }
}

/// Whether an error means the database cannot be used now (down, starting, full, refusing this
/// login) rather than that its schema is wrong: the server then starts, and checks later.
pub(crate) fn not_reachable_now(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_none_or(|code| super::refuses_connection(&code))
}

/// The level as the exchanges see it: checked at start when the database answered, else on the
/// first exchange once it does. Until it has been seen to be this binary's, exchanges fail with
/// 0999 (and say why in the log once).
#[derive(Debug)]
pub(crate) struct Gate(AtomicU8);

const UNCHECKED: u8 = 0;
const MATCHES: u8 = 1;
const DIFFERS: u8 = 2;

impl Gate {
    pub(crate) fn matched() -> Self {
        Gate(AtomicU8::new(MATCHES))
    }

    pub(crate) fn unchecked() -> Self {
        Gate(AtomicU8::new(UNCHECKED))
    }

    /// `Ok` when exchanges may run on this database.
    pub(crate) async fn admit(&self, store: &Store) -> anyhow::Result<()> {
        match self.0.load(Ordering::Acquire) {
            MATCHES => return Ok(()),
            DIFFERS => anyhow::bail!("the database's migration level is not this binary's"),
            _ => {}
        }
        let level = database_level(store).await?;
        match compare(level) {
            Ok(_) => {
                self.0.store(MATCHES, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                if self.0.swap(DIFFERS, Ordering::AcqRel) != DIFFERS {
                    tracing::error!("DATABASE_URL: {e}; exchanges are refused until a restart");
                }
                anyhow::bail!("DATABASE_URL: {e}")
            }
        }
    }
}

/// What the server's login roles may act as: the problems (a role a pool cannot take) and the
/// warnings (a login that bypasses the roles, or could take another pool's role, so that the
/// database no longer keeps identity and dispensing data apart by itself).
pub(crate) async fn roles(store: &Store) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    let per_pool = store.logins() == DbLogins::PerPool;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for role in SERVER_ROLES {
        let login = store.pool(*role).user().to_string();
        let mut tx = match store.begin_as(*role).await {
            Ok(tx) => tx,
            Err(e) if e.as_database_error().is_some() && !not_reachable_now(&e) => {
                problems.push(format!(
                    "the login role {login} cannot act as {} ({})",
                    role.name(),
                    grants_it(per_pool)
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        // Through group roles too; `USAGE`: its rights apply without SET ROLE (inherited).
        let (superuser, bypass, inherits, acts, member_of): (bool, bool, bool, bool, Vec<String>) =
            sqlx::query_as(
                "SELECT r.rolsuper, r.rolbypassrls, r.rolinherit,
                        pg_has_role(session_user, $1, 'USAGE'),
                        ARRAY(SELECT n FROM unnest($2::text[]) n
                               WHERE pg_has_role(session_user, n, 'MEMBER') ORDER BY 1)
                   FROM pg_roles r WHERE r.rolname = session_user",
            )
            .bind(role.name())
            .bind(
                SERVER_ROLES
                    .iter()
                    .map(|r| r.name())
                    .chain(["vd_auditeur", "vd_tiers_confiance"])
                    .collect::<Vec<_>>(),
            )
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        if per_pool && !superuser && !acts {
            problems.push(format!(
                "the login role {login} cannot act as {} ({})",
                role.name(),
                grants_it(per_pool)
            ));
            continue;
        }
        let warning = if superuser || bypass {
            Some(format!(
                "the login role {login} is a superuser or bypasses row security: no role keeps \
                 identity and dispensing data apart"
            ))
        } else if per_pool && member_of != [role.name()] {
            Some(format!(
                "the login role {login} is a member of {} besides or instead of {} alone: its \
                 pool could take another role's rights",
                member_of.join(", "),
                role.name()
            ))
        } else if !per_pool && inherits {
            Some(format!(
                "the login role {login} inherits its roles' rights (create it NOINHERIT)"
            ))
        } else {
            None
        };
        if let Some(w) = warning.filter(|w| !warnings.contains(w)) {
            warnings.push(w);
        }
    }
    Ok((problems, warnings))
}

/// What makes a login role act as its role.
fn grants_it(per_pool: bool) -> &'static str {
    if per_pool {
        "visiodroits migrate --login-role PREFIX grants it"
    } else {
        "VD_DB_LOGINS=shared needs a login member of every server role"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_names_both_levels() {
        let binary = binary_level();
        assert!(binary >= LEVEL_SINCE);
        assert_eq!(compare(Some(binary)), Ok(binary));
        let behind = compare(Some(20261201000011)).unwrap_err();
        assert!(behind.contains("behind") && behind.contains("20261201000011"));
        assert!(behind.contains(&binary.to_string()));
        assert!(compare(Some(binary + 1)).unwrap_err().contains("ahead"));
        assert!(compare(None)
            .unwrap_err()
            .contains(&LEVEL_SINCE.to_string()));
    }
}
