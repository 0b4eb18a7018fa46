//! `migrate`: apply the embedded migrations, optionally provision the server's login role.

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::config::Secret;
use crate::store::{provision_login_role, MIGRATOR};

/// Connects with an owner/superuser URL (one connection is enough for DDL).
pub async fn admin_pool(url: &Secret<String>) -> anyhow::Result<PgPool> {
    let hosts = crate::store::database_hosts(url)?;
    let options = hosts
        .resolve()
        .await
        .context("cannot connect to the database")?;
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .context("cannot connect to the database")
}

/// Applies the migrations and, when asked, provisions `login_role`.
pub async fn run(url: &Secret<String>, login_role: Option<&str>) -> anyhow::Result<()> {
    let pool = admin_pool(url).await?;
    MIGRATOR.run(&pool).await.context("migrations failed")?;
    if let Some(login) = login_role {
        provision_login_role(&pool, login).await?;
    }
    pool.close().await;
    Ok(())
}

/// Creates `database` on the cluster reached by `admin_url` (database `postgres`) when missing.
pub(crate) async fn create_database(admin: &PgPool, database: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "database names are letters, digits and _"
    );
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(admin)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(admin)
            .await?;
    }
    Ok(())
}
