//! The database's migration level against the binary's, and what the server's login role may act
//! as: `serve` refuses a database behind or ahead of it, `/readyz` and `check-config` say why.

use super::{Role, Store, MIGRATOR, SERVER_ROLES};

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

/// What the server's login role may act as: the problems (a role it cannot take) and the
/// warnings (a login that bypasses or inherits the roles, so that the database no longer keeps
/// identity and dispensing data apart by itself).
pub(crate) async fn roles(store: &Store) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    let mut problems = Vec::new();
    for role in SERVER_ROLES {
        if let Err(e) = store.begin_as(*role).await {
            if e.as_database_error().is_none() {
                return Err(e);
            }
            problems.push(format!(
                "the login role cannot act as {} (visiodroits migrate --login-role NAME grants it)",
                role.name()
            ));
        }
    }
    let mut tx = store.begin_as(Role::Rights).await?;
    let (login, superuser, inherits): (String, bool, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolinherit FROM pg_roles WHERE rolname = session_user",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut warnings = Vec::new();
    if superuser {
        warnings.push(format!(
            "the login role {login} is a superuser: no role keeps identity and dispensing data apart"
        ));
    } else if inherits {
        warnings.push(format!(
            "the login role {login} inherits its roles' rights (create it NOINHERIT, as visiodroits \
             migrate --login-role does)"
        ));
    }
    Ok((problems, warnings))
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
