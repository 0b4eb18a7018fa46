//! The domain: values parsed once at the edge (never raw strings below the exchange layer) and the
//! rules of the business, pure — rights selection, the rule snapshot, a dossier's use, the
//! tarification engine.

pub mod amount;
pub mod dossier;
pub mod identity;
pub mod ids;
pub mod prescription;
pub mod random;
pub mod rights;
pub mod rules;
pub mod snapshot;
pub mod tarification;

pub use amount::Hundredths;
pub use identity::Nir;
pub use identity::{AmcNumber, BirthDate, BirthRank, DomainCode, DossierNumber};
pub use ids::{AccreditationNumber, PsId, StructureNumber};
