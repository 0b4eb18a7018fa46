//! The exit status of every command, so that a script or a timer tells success from failure and
//! a failure of the work from one of its setting:
//! 0 success; 1 the work found a problem (a broken audit chain, a missing or stale CRL, rejected
//! lines); 2 bad usage or configuration (clap's own usage errors are 2 too); 3 the work could not
//! run (the database or a file unreachable).

use std::process::ExitCode;

use crate::config::ConfigError;

pub const PROBLEM: u8 = 1;
pub const USAGE: u8 = 2;
pub const CANNOT_RUN: u8 = 3;

/// What `--help` says of the exit statuses.
pub const HELP: &str = "Exit status: 0 success; 1 the work found a problem (broken audit chain, \
missing or stale CRL, rejected lines); 2 bad usage or configuration; 3 could not run (database or \
file unreachable).";

/// The exit status of a command that failed with `e`.
pub fn status_of(e: &anyhow::Error) -> ExitCode {
    ExitCode::from(classify(e))
}

fn classify(e: &anyhow::Error) -> u8 {
    let misconfigured = e.chain().any(|c| {
        c.is::<ConfigError>()
            || matches!(
                c.downcast_ref::<sqlx::Error>(),
                Some(sqlx::Error::Configuration(_))
            )
    });
    if misconfigured {
        return USAGE;
    }
    let unreachable = e.chain().any(|c| {
        if let Some(db) = c.downcast_ref::<sqlx::Error>() {
            return matches!(
                db,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
            ) || db
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| crate::store::refuses_connection(&code));
        }
        c.is::<std::io::Error>()
    });
    if unreachable {
        CANNOT_RUN
    } else {
        PROBLEM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_status() {
        let config = anyhow::Error::new(ConfigError {
            name: "DATABASE_URL",
            message: "is required".into(),
        });
        assert_eq!(classify(&config), USAGE);
        let io = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("cannot open rights.csv");
        assert_eq!(classify(&io), CANNOT_RUN);
        let db = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("cannot connect");
        assert_eq!(classify(&db), CANNOT_RUN);
        assert_eq!(
            classify(&anyhow::anyhow!("audit chain broken at row 12")),
            PROBLEM
        );
    }
}
