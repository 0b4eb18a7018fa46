//! The development kit: the dev PKI in the IGC-Santé shape (`pki dev`, used by `demo`, the tests
//! and the benchmark), a private PostgreSQL cluster (`demo`, the tests) and a stand-in Pro Santé
//! Connect issuer (`psc dev-issuer`, `demo`, the tests).

pub mod pgcluster;
pub mod pki;
pub mod psc;
