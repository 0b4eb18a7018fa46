//! Every environment variable the server reads is read here, and nowhere else.
//!
//! Values are parsed into types at start; a bad or missing value stops the start with an error
//! naming the variable. Secrets live in [`Secret`], whose `Debug` prints nothing.
//!
//! Longer than the other modules on purpose: one file is the one place an operator's variable can
//! be read, so that `.env.example` and this file can be compared side by side and no module
//! below reads the environment on its own.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use crate::tls::profile::{defaults, CertProfile, ProfileRule, Profiles};

/// A value that must never be printed (database password, private key, pseudonymisation key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The only way to read the value: the call site is where the secret is used.
    pub(crate) fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A configuration error: always names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

/// Whether `DemandeDroits` needs a client certificate (spec/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RightsClientCert {
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// How the server's connections reach the roles of spec/data.md (`VD_DB_LOGINS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbLogins {
    /// One login role per pool, named after `DATABASE_URL`'s user (`…_droits`, `…_tarif`,
    /// `…_audit`, `…_sceau`), each a member of exactly one role and inheriting it: a connection
    /// of one pool cannot take another pool's role, whatever statement it runs.
    PerPool,
    /// `DATABASE_URL`'s user for every pool, switching with `SET LOCAL ROLE` in each transaction
    /// (a login member of every role, `NOINHERIT`; or the owner, in development).
    Shared,
}

/// How the structure a CPS card's holder declares is checked (spec/security.md "Structure
/// binding").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructureCheck {
    /// Against the professional directory (`annuaire import`): 8004 when the PS does not
    /// exercise there, or when no directory is loaded.
    Directory,
    /// The declaration is trusted, and the audit says so.
    Declared,
}

/// CRL handling (spec/security.md "Client certificates").
#[derive(Debug, Clone)]
pub struct CrlSettings {
    pub dir: PathBuf,
    pub refresh: Duration,
    pub grace: Duration,
    /// Degraded mode: accept certificates whose issuer has no CRL.
    pub allow_missing: bool,
    /// Degraded mode: accept certificates whose issuer's CRL is past nextUpdate + grace.
    pub allow_stale: bool,
    /// Fetch CRLs from the distribution points of the configured CAs (and `urls`).
    pub fetch: bool,
    /// More CRL URLs to fetch (e.g. the intermediate CAs' own CRLs).
    pub urls: Vec<String>,
    pub fetch_timeout: Duration,
    pub fetch_max_bytes: usize,
}

/// Network limits and timeouts (spec/security.md "Input limits").
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes: usize,
    pub max_connections: usize,
    /// Connections one peer address may hold before completing a request.
    pub max_pending_per_peer: u32,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keep_alive: Duration,
    pub shutdown_deadline: Duration,
}

/// The trusted third party (tiers de confiance) settings.
#[derive(Debug, Clone)]
pub struct TrustedThirdParty {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The operator's key and certificate that sign each PEC's proof (`VD_SIGNING_CERT`,
/// `VD_SIGNING_KEY`).
#[derive(Debug, Clone)]
pub struct Signing {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Whether `DldTar`, `AnnulationTar` and `ConsultationAccreditation` need certificate-bound
/// tokens (`VD_TOKEN_BINDING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBinding {
    Required,
    Optional,
}

/// Which claim names this service in a PSC token (`VD_PSC_AUDIENCE_CLAIM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceClaim {
    /// `aud` contains `VD_PSC_AUDIENCE` (this service as a resource server).
    Aud,
    /// `azp` is `VD_PSC_AUDIENCE` (the client the token was issued to).
    Azp,
}

/// The Pro Santé Connect issuer whose access tokens are accepted (`VD_PSC_*`).
#[derive(Debug, Clone)]
pub struct PscIssuer {
    /// `iss`, compared exactly.
    pub issuer: String,
    pub jwks_url: String,
    /// RFC 7662 endpoint for opaque tokens; `None`: opaque tokens are refused.
    pub introspection_url: Option<String>,
    /// Client credentials at the introspection endpoint (HTTP Basic).
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
    /// Certificate and key presented to the issuer (mTLS client authentication).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// What `aud` must contain, or `azp` equal, as `audience_claim` says.
    pub audience: String,
    pub audience_claim: AudienceClaim,
    /// Roots trusted for the issuer's HTTPS; `None`: the public web roots.
    pub ca: Option<PathBuf>,
    pub leeway: Duration,
    /// The shortest time between two JWKS downloads caused by an unknown `kid`.
    pub jwks_refetch: Duration,
    /// How long an introspection answer is kept (bounded by the token's `exp`).
    pub introspection_cache: Duration,
    pub timeout: Duration,
}

/// A client of the token exchange: the subject of its ORG certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClient {
    pub id: String,
    /// The certificate's subject, normalised by [`normalise_subject`].
    pub subject: String,
}

/// This server's own tokens, issued by token exchange at `POST /token` (`VD_TOKEN_*`).
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    /// `iss` and `aud` of the tokens issued.
    pub issuer: String,
    pub key: PathBuf,
    pub lifetime: Duration,
    pub clients: Vec<TokenClient>,
}

/// Bearer tokens (spec/security.md "Pro Santé Connect").
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub psc: Option<PscIssuer>,
    pub exchange: Option<TokenIssuer>,
    pub binding: TokenBinding,
}

/// A certificate subject in a form that compares equal however it was printed: the audit's
/// `C=FR,O=…,OU=…,CN=…`, `openssl x509 -noout -subject` (with its `subject=` and spaces) or RFC
/// 2253's reversed order. Spaces around `=`, `,` and `+` go, attribute names are upper-cased, the
/// values of a multi-valued RDN and the RDNs are sorted.
pub fn normalise_subject(subject: &str) -> String {
    let subject = subject.trim();
    let subject = subject.strip_prefix("subject=").unwrap_or(subject);
    let mut rdns: Vec<String> = subject
        .split(',')
        .map(|rdn| {
            let mut avas: Vec<String> = rdn
                .split('+')
                .map(|ava| match ava.split_once('=') {
                    Some((k, v)) => format!("{}={}", k.trim().to_ascii_uppercase(), v.trim()),
                    None => ava.trim().to_string(),
                })
                .collect();
            avas.sort();
            avas.join("+")
        })
        .collect();
    rdns.sort();
    rdns.join(",")
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// `VD_OPS_TOKEN_FILE`'s token: what a caller from another address than loopback presents
    /// (`Authorization: Bearer …`) to act on the operations listener. Without it, only loopback.
    pub ops_token: Option<Secret<String>>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: PathBuf,
    pub crl: CrlSettings,
    pub profiles: Profiles,
    pub structure_check: StructureCheck,
    pub rights_client_cert: RightsClientCert,
    pub trusted_third_party: TrustedThirdParty,
    pub signing: Signing,
    pub tokens: TokenSettings,
    /// `VD_PROXY_PROTOCOL_FROM`: the balancers whose PROXY protocol v2 header is read before the
    /// handshake (none: the protocol is off).
    pub proxy_from: Vec<Network>,
    pub pseudonymisation_key_file: PathBuf,
    pub database_url: Secret<String>,
    pub db_pool_size: u32,
    pub db_acquire_timeout: Duration,
    /// `VD_DB_STATEMENT_TIMEOUT_MS`: PostgreSQL's `statement_timeout` on the server's connections
    /// (`None`: the database's own, for 0).
    pub db_statement_timeout: Option<Duration>,
    pub db_logins: DbLogins,
    pub dossier_ttl: Duration,
    pub limits: Limits,
    pub instance_id: String,
    pub instance_code: char,
    pub owner_code: String,
    pub ticket_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info` or `visiodroits=debug,info`.
    pub log_filter: String,
}

impl Config {
    /// Reads `.env` (if present) then the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads `.env` and the environment over `defaults` (the demo's own paths and settings),
    /// then applies `overrides` (tests).
    pub(crate) fn from_env_over(
        defaults: HashMap<String, String>,
        overrides: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        load_dotenv()?;
        let mut vars = defaults;
        vars.extend(std::env::vars());
        vars.extend(overrides);
        Self::from_map(&vars)
    }

    /// Builds the configuration from a map of variables (tests pass their own).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(vars);
        let tls_cert = v.path("VD_TLS_CERT")?;
        let tls_key = v.path("VD_TLS_KEY")?;
        let client_ca = v.path("VD_CLIENT_CA")?;
        let crl = CrlSettings {
            dir: v.path("VD_CRL_DIR")?,
            refresh: v.secs("VD_CRL_REFRESH_SECS", 3600)?,
            grace: v.secs("VD_CRL_GRACE_SECS", 0)?,
            allow_missing: v.bool("VD_CRL_ALLOW_MISSING", false)?,
            allow_stale: v.bool("VD_CRL_ALLOW_STALE", false)?,
            fetch: v.bool("VD_CRL_FETCH", false)?,
            urls: v
                .get("VD_CRL_URLS")
                .map(|u| {
                    u.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            fetch_timeout: v.secs("VD_CRL_FETCH_TIMEOUT_SECS", 10)?,
            fetch_max_bytes: v.num(
                "VD_CRL_FETCH_MAX_BYTES",
                128 * 1024 * 1024,
                1024,
                1024 * 1024 * 1024,
            )?,
        };
        if let Some(bad) = crl.urls.iter().find(|u| !u.starts_with("http://")) {
            return Err(v.bad("VD_CRL_URLS", bad, "http:// URLs separated by commas"));
        }
        let profiles = profiles(&v)?;
        let structure_check = match v.get("VD_STRUCTURE_CHECK").unwrap_or("directory") {
            "directory" => StructureCheck::Directory,
            "declared" => StructureCheck::Declared,
            other => return Err(v.bad("VD_STRUCTURE_CHECK", other, "directory or declared")),
        };
        let db_logins = match v.get("VD_DB_LOGINS").unwrap_or("per-pool") {
            "per-pool" => DbLogins::PerPool,
            "shared" => DbLogins::Shared,
            other => return Err(v.bad("VD_DB_LOGINS", other, "per-pool or shared")),
        };
        let rights_client_cert = match v.get("VD_RIGHTS_CLIENT_CERT").unwrap_or("required") {
            "required" => RightsClientCert::Required,
            "optional" => RightsClientCert::Optional,
            other => return Err(v.bad("VD_RIGHTS_CLIENT_CERT", other, "required or optional")),
        };
        let trusted_third_party = TrustedThirdParty {
            cert: v.opt_path("VD_TTP_CERT"),
            key: v.opt_path("VD_TTP_KEY"),
        };
        if trusted_third_party.key.is_some() && trusted_third_party.cert.is_none() {
            return Err(ConfigError {
                name: "VD_TTP_CERT",
                message: "must be set when VD_TTP_KEY is set".into(),
            });
        }
        let proxy_from = match v.get("VD_PROXY_PROTOCOL_FROM") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(|n| {
                    Network::parse(n.trim()).ok_or_else(|| {
                        v.bad(
                            "VD_PROXY_PROTOCOL_FROM",
                            n.trim(),
                            "addresses or networks (10.0.0.0/24) separated by commas",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let signing = Signing {
            cert: v.path("VD_SIGNING_CERT")?,
            key: v.path("VD_SIGNING_KEY")?,
        };
        let limits = Limits {
            body_bytes: v.num("VD_BODY_LIMIT_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024)?,
            max_connections: v.num("VD_MAX_CONNECTIONS", 10_000, 1, 1_000_000)?,
            max_pending_per_peer: v.num("VD_MAX_PENDING_PER_PEER", 64, 1, 1_000_000)?,
            handshake_timeout: v.secs("VD_HANDSHAKE_TIMEOUT_SECS", 10)?,
            header_timeout: v.secs("VD_HEADER_TIMEOUT_SECS", 10)?,
            body_timeout: v.secs("VD_BODY_TIMEOUT_SECS", 30)?,
            keep_alive: v.secs("VD_KEEPALIVE_SECS", 1800)?,
            shutdown_deadline: v.secs("VD_SHUTDOWN_DEADLINE_SECS", 30)?,
        };
        let instance_id = v.get("VD_INSTANCE_ID").unwrap_or("vd-1").to_string();
        if instance_id.is_empty() || instance_id.chars().count() > 14 {
            return Err(v.bad("VD_INSTANCE_ID", &instance_id, "1 to 14 characters"));
        }
        let instance_code = v.get("VD_INSTANCE_CODE").unwrap_or("1");
        let instance_code = match crockford_char(instance_code) {
            Some(c) => c,
            None => {
                return Err(v.bad(
                    "VD_INSTANCE_CODE",
                    instance_code,
                    "one Crockford base32 character (0-9, A-Z without I, L, O, U)",
                ))
            }
        };
        let owner_code = v.get("VD_OWNER_CODE").unwrap_or("VD").to_string();
        if owner_code.len() != 2 || !owner_code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(v.bad("VD_OWNER_CODE", &owner_code, "2 letters or digits"));
        }
        let ops_token = match v.opt_path("VD_OPS_TOKEN_FILE") {
            None => None,
            Some(file) => {
                let unreadable = |why: String| ConfigError {
                    name: "VD_OPS_TOKEN_FILE",
                    message: why,
                };
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| unreadable(format!("cannot read {}: {e}", file.display())))?;
                let token = text.trim();
                if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(unreadable(format!(
                        "{}: the token is at least 32 printable characters on one line",
                        file.display()
                    )));
                }
                Some(Secret::new(token.to_string()))
            }
        };
        let log_format = match v.get("VD_LOG_FORMAT").unwrap_or("json") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => return Err(v.bad("VD_LOG_FORMAT", other, "json or text")),
        };
        Ok(Config {
            listen: v.addr("VD_LISTEN", "127.0.0.1:8443")?,
            metrics_listen: v.addr("VD_METRICS_LISTEN", "127.0.0.1:9464")?,
            ops_token,
            tls_cert,
            tls_key,
            client_ca,
            crl,
            profiles,
            structure_check,
            rights_client_cert,
            trusted_third_party,
            signing,
            tokens: tokens(&v)?,
            proxy_from,
            pseudonymisation_key_file: v.path("VD_PSEUDONYMISATION_KEY_FILE")?,
            database_url: Secret::new(v.required("DATABASE_URL")?.to_string()),
            db_pool_size: v.num("VD_DB_POOL_SIZE", 16, 1, 1000)?,
            db_logins,
            db_acquire_timeout: Duration::from_millis(v.num(
                "VD_DB_ACQUIRE_TIMEOUT_MS",
                5000,
                1,
                600_000,
            )?),
            db_statement_timeout: match v.num(
                "VD_DB_STATEMENT_TIMEOUT_MS",
                10_000u64,
                0,
                3_600_000,
            )? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            dossier_ttl: v.secs("VD_DOSSIER_TTL_SECS", 86_400)?,
            limits,
            instance_id,
            instance_code,
            owner_code: owner_code.to_ascii_uppercase(),
            ticket_key_file: v.opt_path("VD_TICKET_KEY_FILE"),
            log_format,
            log_filter: v.get("VD_LOG").unwrap_or("info").to_string(),
        })
    }
}

/// Bearer tokens: the PSC issuer (`VD_PSC_ISSUER` turns them on), the token exchange
/// (`VD_TOKEN_KEY` turns it on) and the binding rule.
fn tokens(v: &Vars<'_>) -> Result<TokenSettings, ConfigError> {
    let https = |name: &'static str, url: &str| {
        if url.starts_with("https://") {
            Ok(url.to_string())
        } else {
            Err(v.bad(name, url, "an https:// URL"))
        }
    };
    let psc = match v.get("VD_PSC_ISSUER") {
        None => None,
        Some(issuer) => {
            let issuer = https("VD_PSC_ISSUER", issuer)?;
            let base = issuer.trim_end_matches('/');
            let jwks_url = match v.get("VD_PSC_JWKS_URL") {
                Some(u) => https("VD_PSC_JWKS_URL", u)?,
                None => format!("{base}/protocol/openid-connect/certs"),
            };
            let introspection_url = v
                .get("VD_PSC_INTROSPECTION_URL")
                .map(|u| https("VD_PSC_INTROSPECTION_URL", u))
                .transpose()?;
            let client_secret = match v.opt_path("VD_PSC_CLIENT_SECRET_FILE") {
                None => None,
                Some(file) => {
                    let text = std::fs::read_to_string(&file).map_err(|e| ConfigError {
                        name: "VD_PSC_CLIENT_SECRET_FILE",
                        message: format!("cannot read {}: {e}", file.display()),
                    })?;
                    Some(Secret::new(text.trim().to_string()))
                }
            };
            let client_id = v.get("VD_PSC_CLIENT_ID").map(str::to_string);
            let client_cert = match (
                v.opt_path("VD_PSC_CLIENT_CERT"),
                v.opt_path("VD_PSC_CLIENT_KEY"),
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError {
                        name: "VD_PSC_CLIENT_CERT",
                        message: "VD_PSC_CLIENT_CERT and VD_PSC_CLIENT_KEY go together".into(),
                    })
                }
            };
            if introspection_url.is_some()
                && client_cert.is_none()
                && (client_id.is_none() || client_secret.is_none())
            {
                return Err(ConfigError {
                    name: "VD_PSC_INTROSPECTION_URL",
                    message: "needs VD_PSC_CLIENT_ID and VD_PSC_CLIENT_SECRET_FILE, or VD_PSC_CLIENT_CERT and VD_PSC_CLIENT_KEY".into(),
                });
            }
            Some(PscIssuer {
                issuer,
                jwks_url,
                introspection_url,
                client_id,
                client_secret,
                client_cert,
                audience: v.required("VD_PSC_AUDIENCE")?.to_string(),
                audience_claim: match v.get("VD_PSC_AUDIENCE_CLAIM").unwrap_or("aud") {
                    "aud" => AudienceClaim::Aud,
                    "azp" => AudienceClaim::Azp,
                    other => return Err(v.bad("VD_PSC_AUDIENCE_CLAIM", other, "aud or azp")),
                },
                ca: v.opt_path("VD_PSC_CA"),
                leeway: Duration::from_secs(v.num("VD_PSC_LEEWAY_SECS", 60, 0, 60)?),
                jwks_refetch: Duration::from_secs(v.num(
                    "VD_PSC_JWKS_REFETCH_SECS",
                    60,
                    1,
                    3600,
                )?),
                introspection_cache: Duration::from_secs(v.num(
                    "VD_PSC_INTROSPECTION_CACHE_SECS",
                    60,
                    0,
                    60,
                )?),
                timeout: Duration::from_secs(v.num("VD_PSC_TIMEOUT_SECS", 5, 1, 60)?),
            })
        }
    };
    let exchange = match v.opt_path("VD_TOKEN_KEY") {
        None => None,
        Some(key) => {
            if psc.is_none() {
                return Err(ConfigError {
                    name: "VD_TOKEN_KEY",
                    message: "the token exchange takes Pro Santé Connect tokens: set VD_PSC_ISSUER"
                        .into(),
                });
            }
            let issuer = https("VD_TOKEN_ISSUER", v.required("VD_TOKEN_ISSUER")?)?;
            if psc.as_ref().is_some_and(|p| p.issuer == issuer) {
                return Err(v.bad(
                    "VD_TOKEN_ISSUER",
                    &issuer,
                    "a name of this server's own, not VD_PSC_ISSUER",
                ));
            }
            let raw = v.required("VD_TOKEN_CLIENTS")?;
            let clients = raw
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| match c.split_once('=') {
                    Some((id, subject)) if !id.trim().is_empty() && subject.contains('=') => {
                        Ok(TokenClient {
                            id: id.trim().to_string(),
                            subject: normalise_subject(subject),
                        })
                    }
                    _ => Err(v.bad(
                        "VD_TOKEN_CLIENTS",
                        c,
                        "client_id=certificate subject, separated by ';'",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(TokenIssuer {
                issuer,
                key,
                lifetime: Duration::from_secs(v.num("VD_TOKEN_LIFETIME_SECS", 300, 30, 300)?),
                clients,
            })
        }
    };
    let binding = match v.get("VD_TOKEN_BINDING").unwrap_or("required") {
        "required" => TokenBinding::Required,
        "optional" => TokenBinding::Optional,
        other => return Err(v.bad("VD_TOKEN_BINDING", other, "required or optional")),
    };
    Ok(TokenSettings {
        psc,
        exchange,
        binding,
    })
}

/// The certificate profiles: `VD_PROFILES` (accepted, in the order tried) and, per profile,
/// `VD_PROFILE_<NAME>_CN`, `_OU` and `_POLICIES`.
fn profiles(v: &Vars<'_>) -> Result<Profiles, ConfigError> {
    for (retired, now) in [
        ("VD_POLICY_CN", "VD_PROFILE_CPS_CN and VD_PROFILE_CPE_CN"),
        ("VD_POLICY_OU", "VD_PROFILE_CPE_OU"),
        ("VD_POLICY_RPPS_LUHN", "VD_PROFILE_RPPS_LUHN"),
    ] {
        if v.get(retired).is_some() {
            return Err(ConfigError {
                name: retired,
                message: format!(
                    "replaced by the certificate profiles ({now}, see .env.example); remove it"
                ),
            });
        }
    }
    let list = v.get("VD_PROFILES").unwrap_or("CPE,CPS2TER,CPS,ORG");
    let mut rules = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(profile) = CertProfile::parse(name) else {
            return Err(v.bad("VD_PROFILES", list, "a list of CPE, CPS2TER, CPS, ORG"));
        };
        if rules.iter().any(|r: &ProfileRule| r.profile == profile) {
            return Err(v.bad("VD_PROFILES", list, "each profile once"));
        }
        let (cn_var, ou_var, policies_var, cn, ou): (_, _, _, _, Option<&str>) = match profile {
            CertProfile::Cps => (
                "VD_PROFILE_CPS_CN",
                "VD_PROFILE_CPS_OU",
                "VD_PROFILE_CPS_POLICIES",
                defaults::CPS_CN,
                None,
            ),
            CertProfile::Cps2ter => (
                "VD_PROFILE_CPS2TER_CN",
                "VD_PROFILE_CPS2TER_OU",
                "VD_PROFILE_CPS2TER_POLICIES",
                defaults::CPS2TER_CN,
                Some(defaults::CPS2TER_OU),
            ),
            CertProfile::Cpe => (
                "VD_PROFILE_CPE_CN",
                "VD_PROFILE_CPE_OU",
                "VD_PROFILE_CPE_POLICIES",
                defaults::CPE_CN,
                Some(defaults::CPE_OU),
            ),
            CertProfile::Org => (
                "VD_PROFILE_ORG_CN",
                "VD_PROFILE_ORG_OU",
                "VD_PROFILE_ORG_POLICIES",
                defaults::ORG_CN,
                Some(defaults::ORG_OU),
            ),
        };
        let ou = match v.get(ou_var).or(ou) {
            None => None,
            Some(pattern) => Some(v.regex(ou_var, pattern)?),
        };
        let policies: Vec<String> = v
            .get(policies_var)
            .map(|p| {
                p.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = policies
            .iter()
            .find(|p| crate::tls::der::oid_value(p).is_none())
        {
            return Err(v.bad(policies_var, bad, "dotted OIDs separated by commas"));
        }
        let rule = ProfileRule {
            profile,
            cn: v.regex(cn_var, v.get(cn_var).unwrap_or(cn))?,
            ou,
            policies,
        };
        Profiles::check_rule(&rule).map_err(|message| ConfigError {
            name: ou_var,
            message,
        })?;
        rules.push(rule);
    }
    if rules.is_empty() {
        return Err(v.bad("VD_PROFILES", list, "at least one profile"));
    }
    Ok(Profiles {
        rules,
        rpps_luhn: v.bool("VD_PROFILE_RPPS_LUHN", true)?,
    })
}

/// `DATABASE_URL` alone, for the admin commands that need nothing else (`migrate`, `import`…).
pub fn database_url_from_env() -> Result<Secret<String>, ConfigError> {
    load_dotenv()?;
    let vars: HashMap<String, String> = std::env::vars().collect();
    Vars(&vars)
        .required("DATABASE_URL")
        .map(|u| Secret::new(u.to_string()))
}

/// Loads the variables of `file` (`--env-file`) into the environment, under those already set.
pub fn load_env_file(file: &std::path::Path) -> anyhow::Result<()> {
    dotenvy::from_path(file).map_err(|e| {
        ConfigError {
            name: "--env-file",
            message: format!("{}: {e}", file.display()),
        }
        .into()
    })
}

/// A variable of the environment, for the few settings that are not the server's (the test
/// harness's own `VD_TEST_DATABASE_URL`).
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn load_dotenv() -> Result<(), ConfigError> {
    // A missing .env is normal; a malformed one is an error worth stopping for.
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError {
            name: ".env",
            message: format!("cannot be read: {e}"),
        }),
    }
}

fn crockford_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        return None;
    }
    (c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, 'I' | 'L' | 'O' | 'U')))
        .then_some(c)
}

/// A network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        // An IPv4-mapped network is its IPv4 one (addresses are compared canonically).
        match (addr, addr.to_canonical()) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if prefix >= 96 => Some(Network {
                addr: v4,
                prefix: prefix - 96,
            }),
            _ => Some(Network { addr, prefix }),
        }
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let bits = |a: IpAddr| match a {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        let ((net, len), (host, host_len)) = (bits(self.addr), bits(ip));
        if len != host_len {
            return false;
        }
        let shift = u32::from(len - self.prefix);
        shift >= 128 || (net >> shift) == (host >> shift)
    }
}

/// Typed reads over a variable map; every error names the variable.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn bad(&self, name: &'static str, value: &str, expected: &str) -> ConfigError {
        ConfigError {
            name,
            message: format!("invalid value {value:?}: expected {expected}"),
        }
    }

    fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.get(name).ok_or(ConfigError {
            name,
            message: "is required (see .env.example)".into(),
        })
    }

    fn path(&self, name: &'static str) -> Result<PathBuf, ConfigError> {
        self.required(name).map(PathBuf::from)
    }

    fn opt_path(&self, name: &'static str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }

    fn bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(self.bad(name, other, "true or false")),
        }
    }

    fn num<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(self.bad(name, raw, &format!("an integer from {min} to {max}"))),
        }
    }

    fn secs(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.num(name, default, 0, 10 * 365 * 86_400)
            .map(Duration::from_secs)
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let raw = self.get(name).unwrap_or(default);
        raw.parse()
            .map_err(|_| self.bad(name, raw, "an address such as 127.0.0.1:8443"))
    }

    fn regex(&self, name: &'static str, default: &str) -> Result<Regex, ConfigError> {
        let raw = self.get(name).unwrap_or(default);
        Regex::new(raw).map_err(|e| ConfigError {
            name,
            message: format!("is not a valid pattern: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_hold_what_their_prefix_says() {
        let n = Network::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let one = Network::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("203.0.113.5".parse().unwrap()));
        assert!(Network::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8:ffff::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "host", "10.0.0.0/x", ""] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    fn base() -> HashMap<String, String> {
        [
            ("VD_TLS_CERT", "/x/server.pem"),
            ("VD_SIGNING_CERT", "/x/signing.pem"),
            ("VD_SIGNING_KEY", "/x/signing.key"),
            ("VD_TLS_KEY", "/x/server.key"),
            ("VD_CLIENT_CA", "/x/ca.pem"),
            ("VD_CRL_DIR", "/x/crl"),
            ("VD_PSEUDONYMISATION_KEY_FILE", "/x/pseudo.key"),
            ("DATABASE_URL", "postgres://u:hunter2@localhost/db"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = Config::from_map(&base()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.limits.body_bytes, 1024 * 1024);
        assert_eq!(c.limits.keep_alive, Duration::from_secs(1800));
        assert_eq!(c.dossier_ttl, Duration::from_secs(86_400));
        assert_eq!(c.crl.grace, Duration::ZERO);
        assert!(!c.crl.allow_missing && !c.crl.allow_stale);
        assert_eq!(c.rights_client_cert, RightsClientCert::Required);
        assert_eq!(c.structure_check, StructureCheck::Directory);
        let order: Vec<CertProfile> = c.profiles.rules.iter().map(|r| r.profile).collect();
        assert_eq!(order, CertProfile::ALL.to_vec());
    }

    #[test]
    fn subjects_compare_however_they_were_printed() {
        let audit =
            normalise_subject("C=FR,O=PHARMACIE DEV,OU=1750000001,CN=LOGICIEL OFFICINE DEV");
        for printed in [
            "subject=C = FR, O = PHARMACIE DEV, OU = 1750000001, CN = LOGICIEL OFFICINE DEV",
            "CN=LOGICIEL OFFICINE DEV,OU=1750000001,O=PHARMACIE DEV,C=FR",
            "c=FR, o=PHARMACIE DEV, ou=1750000001, cn=LOGICIEL OFFICINE DEV",
        ] {
            assert_eq!(normalise_subject(printed), audit, "{printed}");
        }
        assert_ne!(
            normalise_subject("C=FR,O=PHARMACIE DEV,OU=1920000002,CN=LOGICIEL OFFICINE DEV"),
            audit
        );
        assert_eq!(
            normalise_subject("SN=A+CN=1+GN=B,C=FR"),
            normalise_subject("C=FR,CN=1+GN=B+SN=A")
        );
    }

    #[test]
    fn bad_value_names_the_variable() {
        for (name, value) in [
            ("VD_LISTEN", "nowhere"),
            ("VD_BODY_LIMIT_BYTES", "lots"),
            ("VD_CRL_ALLOW_STALE", "perhaps"),
            ("VD_PROFILE_CPS_CN", "(unclosed"),
            ("VD_PROFILE_CPE_OU", "^1[0-9]{9}$"),
            ("VD_PROFILES", "CPS,CARTE"),
            ("VD_PROFILE_ORG_POLICIES", "1.2.x"),
            ("VD_POLICY_CN", "^8[0-9]{11}$"),
            ("VD_STRUCTURE_CHECK", "sometimes"),
            ("VD_INSTANCE_CODE", "I"),
            ("VD_RIGHTS_CLIENT_CERT", "sometimes"),
            ("VD_DB_LOGINS", "one"),
        ] {
            let mut vars = base();
            vars.insert(name.into(), value.into());
            let err = Config::from_map(&vars).unwrap_err();
            assert_eq!(err.name, name, "{name}={value} must be named");
        }
        let mut vars = base();
        vars.remove("DATABASE_URL");
        assert_eq!(Config::from_map(&vars).unwrap_err().name, "DATABASE_URL");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Config::from_map(&base()).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
