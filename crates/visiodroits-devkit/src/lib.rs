//! The development kit: the dev PKI in the IGC-Santé shape (`pki dev`, used by `demo`, the tests
//! and the benchmark) and a private PostgreSQL cluster (`demo`, the tests).

pub mod pgcluster;
pub mod pki;
