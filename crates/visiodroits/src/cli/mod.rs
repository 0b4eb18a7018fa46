//! Admin command line: one module per command.

pub mod accreditation;
pub mod amc;
pub mod annuaire;
pub mod audit;
pub mod crl;
pub mod demo;
pub mod exit;
pub mod import;
pub mod migrate;
pub mod pairing;
pub mod psc;
pub mod purge;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Bad usage of the command `name` (exit status 2), said in `message`.
fn usage(name: &'static str, message: String) -> anyhow::Error {
    crate::config::ConfigError { name, message }.into()
}

#[derive(Debug, Parser)]
#[command(
    name = "visiodroits",
    version,
    about = "Visiodroits server: rights and real-time tarification for AMCs",
    after_help = exit::HELP
)]
pub struct Cli {
    /// Read the variables of this file (the format of `.env.example`, systemd's
    /// `EnvironmentFile=`) before `.env` and under the process environment, which wins.
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (configuration from the environment, see .env.example).
    Serve,
    /// The embedded default: private PostgreSQL, dev PKI and demo data under ./var, serving on
    /// 127.0.0.1:8443.
    Demo {
        /// Where the demo keeps its cluster, PKI and keys.
        #[arg(long, default_value = "var")]
        dir: PathBuf,
        /// Where its stand-in Pro Santé Connect issuer listens (a second demo on the same
        /// machine needs another port, as it needs another VD_LISTEN).
        #[arg(long, default_value = demo::ISSUER_LISTEN)]
        psc_listen: std::net::SocketAddr,
    },
    /// Apply the migrations to DATABASE_URL (an owner or superuser connection).
    Migrate {
        /// Also create or update this login role for the server (member of the exchange roles,
        /// inheriting nothing).
        #[arg(long)]
        login_role: Option<String>,
    },
    /// Development PKI.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Pro Santé Connect, offline: a stand-in issuer and its tokens (development only).
    Psc {
        #[command(subcommand)]
        command: PscCommand,
    },
    /// Validate the configuration (files, keys, CRLs) without serving.
    CheckConfig,
    /// Load rights from FILE (CSV, or JSON Lines for .jsonl) into DATABASE_URL (an owner
    /// connection): set-based upserts in one transaction (exchanges see the old or the new
    /// portfolio), idempotent, progress on a terminal, a summary at the end.
    Import {
        file: PathBuf,
        /// Refuse the whole file on the first bad line (nothing is written).
        #[arg(long)]
        strict: bool,
        /// The file is the whole portfolio of the AMCs it names: their guarantees it does not
        /// hold end yesterday (or are removed when they had not begun).
        #[arg(long)]
        full: bool,
    },
    /// The professional directory (ANS Annuaire Santé extract): where each professional
    /// exercises, checked for CPS cards.
    Annuaire {
        #[command(subcommand)]
        command: AnnuaireCommand,
    },
    /// Trusted third party only: which beneficiary a dossier belongs to, and its tarifications
    /// (runs as vd_tiers_confiance).
    Pairing { dossier: String },
    /// CRLs: what the CRL directory holds per issuer; reload the running server now.
    Crl {
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// Retention (spec/data.md): delete expired dossiers' pairing rows, then old tarification
    /// data, in batches; audited. Audit rows are kept.
    Purge {
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Days after a dossier's expiry before its pairing row goes.
        #[arg(long, default_value_t = 90)]
        pairing_days: u32,
        /// Days after a dossier's expiry before its tarification data goes.
        #[arg(long, default_value_t = 1095)]
        tarification_days: u32,
    },
    /// The audit journal.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The AMCs hosted here: their services, contact and degraded-mode delay (DATABASE_URL, an
    /// owner connection). Each change is audited.
    Amc {
        #[command(subcommand)]
        command: AmcCommand,
    },
    /// Accreditations (PECs) issued here.
    Accreditation {
        #[command(subcommand)]
        command: AccreditationCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AmcCommand {
    /// Every AMC with its services, delay and contact.
    List,
    /// Create or change an AMC: only what is given changes.
    Set {
        /// The AMC number (8 to 10 digits).
        numero: String,
        /// Its name (required to create it).
        #[arg(long)]
        nom: Option<String>,
        /// A service and its state, e.g. `TARIFICATION=off` (DROITS, TARIFICATION,
        /// TARIFICATION_CHIFFREE, ANNULATION, CONSULTATION); repeatable.
        #[arg(long = "service", value_parser = amc::parse_service)]
        services: Vec<(crate::store::amc::Service, bool)>,
        /// Contact name ("" clears it).
        #[arg(long)]
        contact_nom: Option<String>,
        /// Contact e-mail ("" clears it).
        #[arg(long)]
        contact_email: Option<String>,
        /// Contact telephone ("" clears it).
        #[arg(long)]
        contact_telephone: Option<String>,
        /// Degraded mode: days (0 to 30) a pharmacy may still bill on its last accredited rights
        /// when this server is unreachable.
        #[arg(long, value_parser = clap::value_parser!(i16).range(0..=30), conflicts_with = "sans_delai_grace")]
        delai_grace_jours: Option<i16>,
        /// Remove the degraded-mode delay.
        #[arg(long)]
        sans_delai_grace: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccreditationCommand {
    /// Revoke an active PEC (status REVOQUEE, ceiling consumption given back, audited); the
    /// pharmacy can no longer cancel it (7010).
    Revoke {
        numero: String,
        /// Why, in at most 150 characters, without any patient identity (kept with the PEC and
        /// shown to the pharmacy by ConsultationAccreditation).
        #[arg(long)]
        motif: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Issuers, thisUpdate/nextUpdate, entries, freshness (exit non-zero if an issuer would be
    /// refused).
    Status,
    /// Ask the running server (on VD_METRICS_LISTEN) to reload its CRLs and certificate now.
    Refresh,
}

#[derive(Debug, Subcommand)]
pub enum AnnuaireCommand {
    /// Load FILE (`PS_LibreAcces_Personne_activite_*.txt`) into DATABASE_URL (an owner
    /// connection), replacing the previous load atomically; progress on a terminal, a summary at
    /// the end; exits 1 when lines were rejected (they are skipped).
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain (as vd_auditeur); exit non-zero and name the first broken row.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum PscCommand {
    /// Serve a stand-in Pro Santé Connect issuer (OpenID configuration, JWKS, introspection)
    /// over HTTPS with the dev PKI's server certificate, until Ctrl-C; prints the server's
    /// variables for it.
    DevIssuer {
        #[arg(long, default_value = "127.0.0.1:8444")]
        listen: std::net::SocketAddr,
        /// The dev PKI (`pki dev`, or the demo's `var/pki`).
        #[arg(long, default_value = "var/pki")]
        pki: PathBuf,
        /// The introspection client's secret (created when missing).
        #[arg(long, default_value = "var/psc-client-secret")]
        secret_file: PathBuf,
    },
    /// Mint a token at the running stand-in issuer and print it.
    Mint {
        /// The issuer (`iss`), as `psc dev-issuer` or the demo prints it.
        #[arg(long)]
        issuer: String,
        /// The PEM bundle that signed the issuer's certificate (the dev PKI's `ca/root.pem`).
        #[arg(long, default_value = "var/pki/ca/root.pem")]
        ca: PathBuf,
        /// `SubjectNameID`: `8` + RPPS.
        #[arg(long)]
        ps_id: String,
        /// Bind the token to this certificate (PEM): `cnf.x5t#S256`.
        #[arg(long)]
        bind: Option<PathBuf>,
        /// A FINESS where the professional exercises (the token's activities); repeatable.
        #[arg(long = "structure")]
        structures: Vec<String>,
        /// An opaque token, checked by introspection, instead of a JWT.
        #[arg(long)]
        opaque: bool,
        /// Seconds until `exp`.
        #[arg(long, default_value_t = 120)]
        lifetime: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Generate the development PKI (IGC-Santé shape) into DIR.
    Dev { dir: PathBuf },
    /// Replace the dev intermediate CA's CRL in DIR by one with COUNT random entries (to measure
    /// large CRLs).
    BigCrl { dir: PathBuf, count: usize },
}
