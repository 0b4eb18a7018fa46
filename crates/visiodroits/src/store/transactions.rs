//! The transactions of the exchanges as the server runs them, statement for statement: what the
//! benchmark's ceiling gives pgbench (`visiodroits-bench ceiling` generates its scripts from
//! these), and what a test holds to the statements an exchange actually sends.

use super::{rights, tarification, Role};

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

/// A successful `DldTar` of a prescription that touches a ceiling, in autocommit: the request's
/// state (with the consumption of the dossier's ceilings), then the tarification with its audit
/// row, which a PEC's consumption is added to where its ceilings still stand as read. A PEC
/// whose ceilings changed in between locks them and is recorded again, in a transaction; that
/// way is not the ceiling's.
pub fn tarification() -> Transaction {
    Transaction {
        role: Role::Tarification,
        begin: None,
        statements: vec![tarification::REQUEST_STATE, &tarification::RECORD],
    }
}
