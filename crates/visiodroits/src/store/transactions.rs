//! The transactions of the exchanges as the server runs them, statement for statement: what the
//! benchmark's ceiling gives pgbench (`visiodroits-bench ceiling` generates its scripts from
//! these), and what a test holds to the statements an exchange actually sends.

use super::{rights, tarification, Role};
use crate::config::DbLogins;

/// One exchange's work as the server runs it with its default per-pool logins, on a connection
/// of its role's pool: its statements in order, each in its own transaction (autocommit) until
/// the `BEGIN` there may be, the rest in that transaction and followed by `COMMIT`.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The role whose pool runs it: connect as [`Role::login`] of `DATABASE_URL`'s user.
    pub role: Role,
    /// How its transaction begins (`BEGIN`: the pool's login role is already the role's) and
    /// the index of the statement it comes before; `None`: autocommit throughout, no `BEGIN`
    /// and no `COMMIT`.
    pub begin: Option<(usize, &'static str)>,
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
/// ceilings' consumption, then the tarification with its audit row. A quote runs in autocommit;
/// a PEC begins its transaction after the request's state, to lock the consumption until its
/// tarification is recorded.
pub fn tarification(commitment: bool) -> Transaction {
    let consumption = if commitment {
        tarification::CONSUMPTION_LOCKED
    } else {
        tarification::CONSUMPTION
    };
    Transaction {
        role: Role::Tarification,
        begin: commitment.then(|| (1, Role::Tarification.begin(DbLogins::PerPool))),
        statements: vec![
            tarification::REQUEST_STATE,
            consumption,
            &tarification::RECORD,
        ],
    }
}
