//! Domain types: parsed once at the edge, never raw strings below the exchange layer.

pub mod amount;
pub mod identity;
pub mod rules;
pub mod tarification;

pub use amount::Hundredths;
pub use identity::{AmcNumber, BirthDate, BirthRank, DomainCode, DossierNumber, Nir};
