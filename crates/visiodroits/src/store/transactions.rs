//! The transactions of the exchanges as the server runs them, statement for statement: what the
//! benchmark's ceiling gives pgbench (`visiodroits-bench ceiling` generates its scripts from
//! these), and what a test holds to the statements an exchange actually sends.

use super::{rights, tarification, Role};

/// One transaction: `BEGIN` with the role, its statements in order, then `COMMIT`.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// `BEGIN; SET LOCAL ROLE …`, sent as one query.
    pub begin: &'static str,
    pub statements: Vec<&'static str>,
}

/// A successful `DemandeDroits`: the lookup, then the dossier with its audit row.
pub fn rights() -> Transaction {
    Transaction {
        begin: Role::Rights.begin(),
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
        begin: Role::Tarification.begin(),
        statements: vec![
            tarification::REQUEST_STATE,
            consumption,
            &tarification::RECORD,
        ],
    }
}
