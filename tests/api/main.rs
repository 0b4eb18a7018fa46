//! One integration-test binary: a real server over a real TLS socket, with the dev PKI and a real
//! PostgreSQL (a private cluster unless VD_TEST_DATABASE_URL names one).

mod accreditation;
mod annuaire;
mod audit;
mod bench;
mod certs;
mod client_stacks;
mod database_tls;
mod demo;
mod docs;
mod durability;
mod examples;
mod exit_status;
mod failover;
mod faults;
mod front_door;
mod helpers;
mod hostile;
mod import;
mod instances;
mod migration_level;
mod ops;
mod privacy;
mod profiles;
mod psc;
mod revocation;
mod rights;
mod roles;
mod services;
mod slow;
mod soap;
mod tarification;
mod tls;
mod trust;
mod wsdl;
