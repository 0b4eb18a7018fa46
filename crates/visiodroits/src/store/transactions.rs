//! The transactions of the exchanges as the server runs them, statement for statement: what the
//! benchmark's ceiling gives pgbench (`visiodroits-bench ceiling` generates its scripts from
//! these), and what a test holds to the statements an exchange actually sends.

use super::{rights, tarification, Role};
use crate::config::DbLogins;

/// One exchange's work as the server runs it with its default per-pool logins, on a connection
/// of its role's pool: its statements in order, each in its own transaction (autocommit), or
/// after `BEGIN` and followed by `COMMIT`.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The role whose pool runs it: connect as [`Role::login`] of `DATABASE_URL`'s user.
    pub role: Role,
    /// How it begins (`BEGIN`: the pool's login role is already the role's); `None`: autocommit,
    /// no `BEGIN` and no `COMMIT`.
    pub begin: Option<&'static str>,
    pub statements: Vec<&'static str>,
}

/// A successful `DemandeDroits`, in autocommit: the lookup, then the dossier with its audit row.
pub fn rights() -> Transaction {
    Transaction {
        role: Role::Rights,
        begin: None,
        statements: vec![&rights::LOOKUP_BY_NIR, &rights::ISSUE_DOSSIER],
    }
}

/// A successful `DldTar` of a prescription that touches a ceiling: the request's state, the
/// ceilings' consumption (locked for a PEC), then the tarification with its audit row.
pub fn tarification(commitment: bool) -> Transaction {
    let consumption = if commitment {
        tarification::CONSUMPTION_LOCKED
    } else {
        tarification::CONSUMPTION
    };
    Transaction {
        role: Role::Tarification,
        begin: Some(Role::Tarification.begin(DbLogins::PerPool)),
        statements: vec![
            tarification::REQUEST_STATE,
            consumption,
            &tarification::RECORD,
        ],
    }
}
