//! Visiodroits server: rights consultation ("Demande / Fournit les droits") and real-time
//! tarification (DLD-Tar) for French complementary health insurers (AMC), over SOAP and mTLS.
//!
//! Data flows one way: TLS acceptor → SOAP envelope → exchange → domain → store.

pub mod audit;
pub mod cli;
pub mod code;
pub mod config;
pub mod domain;
pub mod exchange;
pub mod http;
pub(crate) mod http_client;
pub mod metrics;
pub mod ops;
pub mod rights_file;
pub mod soap;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod wsdl;
