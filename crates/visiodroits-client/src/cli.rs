//! `visiodroits-client …`: every exchange from the command line, with a client certificate (PEM or PKCS#12),
//! for vendors trying a server. The `ps` block comes from the certificate (its profile) unless given.
//! The response goes to standard output; the exit status is non-zero unless its code is 0000.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use uuid::Uuid;

use crate::encrypt::Recipient;
use crate::messages::{field, Messages, Payload, Pharmacist, RightsRequest, Software};
use crate::{tls_config, ClientIdentity, Reply, SoapConnection, SoapVersion, Versions};

/// How to reach the server and as whom.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// The server's base URL (host and port; the path is /visiodroits).
    #[arg(long, default_value = "https://localhost:8443")]
    pub url: String,
    /// PEM bundle to trust for the server certificate.
    #[arg(long)]
    pub ca: PathBuf,
    /// Client certificate chain (PEM), with --key.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Client certificate and key as PKCS#12, with --password.
    #[arg(long, conflicts_with = "cert")]
    pub p12: Option<PathBuf>,
    #[arg(long, default_value = "")]
    pub password: String,
    /// Send as SOAP 1.1 (text/xml) instead of SOAP 1.2.
    #[arg(long)]
    pub soap11: bool,
    /// TLS version: both, 1.2 or 1.3.
    #[arg(long, default_value = "both")]
    pub tls: String,
    /// `identifiant_ps` (default: the certificate's CN).
    #[arg(long)]
    pub ps: Option<String>,
    /// `numero_structure` (default: the FINESS of a CPE card's OU; a CPS card carries none).
    #[arg(long)]
    pub structure: Option<String>,
    /// A Pro Santé Connect access token (or one of the server's), sent as `Authorization:
    /// Bearer`; the certificate is then the structure's or the software's (ORG). `identifiant_ps`
    /// defaults to the token's `SubjectNameID`.
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// The token, read from a file (`-`: standard input), so that it shows in no process list.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Trade the token first for one of the server's, bound to the certificate (RFC 8693 token
    /// exchange at POST /token), and send that one.
    #[arg(long)]
    pub exchange: bool,
}

/// A resolved [`ConnArgs`].
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
    pub config: Arc<rustls::ClientConfig>,
    pub messages: Messages,
    /// The bearer token, and whether to exchange it first.
    pub token: Option<String>,
    pub exchange: bool,
}

impl Endpoint {
    /// A connection, with its bearer token (exchanged first when asked).
    pub async fn connect(&self) -> anyhow::Result<SoapConnection> {
        let mut c = SoapConnection::connect(self.addr, &self.host, self.config.clone()).await?;
        let token = match (&self.token, self.exchange) {
            (Some(t), true) => {
                let ours = c.exchange_token(t).await?;
                eprintln!(
                    "token exchanged: valid {} s, bound to this certificate",
                    ours.expires_in
                );
                Some(ours.access_token)
            }
            (t, _) => t.clone(),
        };
        c.set_bearer(token);
        Ok(c)
    }
}

/// The PS identifier a token names (`SubjectNameID`, else `sub`), read without verification:
/// only to fill the message's `identifiant_ps`, which the server checks against the token.
fn token_ps_id(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["SubjectNameID"]
        .as_str()
        .or(claims["sub"].as_str())
        .map(str::to_string)
}

impl ConnArgs {
    pub fn resolve(&self) -> anyhow::Result<Endpoint> {
        let identity = match (&self.cert, &self.key, &self.p12) {
            (Some(c), Some(k), _) => Some(ClientIdentity::from_pem_files(c, k)?),
            (_, _, Some(p)) => Some(ClientIdentity::from_pkcs12(p, &self.password)?),
            _ => None,
        };
        let from_cert = identity.as_ref().map(|i| i.pharmacist()).transpose()?;
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(f)) => Some(
                String::from_utf8(read_input(f)?)
                    .context("the token file is not text")?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        anyhow::ensure!(
            token.is_some() || !self.exchange,
            "--exchange needs --token or --token-file"
        );
        anyhow::ensure!(
            self.ps.is_some() || token.as_deref().is_none_or(|t| token_ps_id(t).is_some()),
            "an opaque token names no professional that can be read here: give --ps"
        );
        let pharmacist = Pharmacist {
            ps_id: self
                .ps
                .clone()
                .or_else(|| token.as_deref().and_then(token_ps_id))
                .or_else(|| from_cert.as_ref().map(|p| p.ps_id.clone()))
                .unwrap_or_default(),
            structure: self
                .structure
                .clone()
                .or_else(|| from_cert.and_then(|p| p.structure)),
        };
        let versions = match self.tls.as_str() {
            "both" => Versions::Both,
            "1.2" => Versions::Tls12,
            "1.3" => Versions::Tls13,
            other => anyhow::bail!("--tls {other}: both, 1.2 or 1.3"),
        };
        let config = tls_config(&self.ca, identity, versions)?;
        let host_port = self
            .url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .trim_end_matches("/visiodroits")
            .to_string();
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port.as_str(), |(h, _)| h)
            .to_string();
        let addr = if host_port.contains(':') {
            host_port.clone()
        } else {
            format!("{host_port}:443")
        }
        .to_socket_addrs()?
        .next()
        .context("the server address does not resolve")?;
        Ok(Endpoint {
            addr,
            host,
            config,
            messages: Messages {
                version: if self.soap11 {
                    SoapVersion::V11
                } else {
                    SoapVersion::V12
                },
                software: Software::default(),
                pharmacist,
            },
            token,
            exchange: self.exchange,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// ServicesOuverts: the AMCs, their services, the encryption certificate.
    Services {
        #[command(flatten)]
        conn: ConnArgs,
        /// Only this AMC.
        #[arg(long)]
        amc: Option<String>,
    },
    /// DemandeDroits: a beneficiary's rights and a dossier number.
    Droits {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long)]
        nir: String,
        #[arg(long)]
        cle: String,
        /// Birth date YYYYMMDD (lunar dates allowed).
        #[arg(long)]
        naissance: String,
        #[arg(long, default_value_t = 1)]
        rang: u8,
        #[arg(long)]
        amc: String,
        #[arg(long)]
        adherent: Option<String>,
        /// Reference date YYYY-MM-DD (default: today).
        #[arg(long)]
        date: Option<String>,
        /// Domains asked (repeat; default PHAR).
        #[arg(long = "domaine", default_values_t = vec!["PHAR".to_string()])]
        domaines: Vec<String>,
    },
    /// DldTar: the AMC's share of a prescription (FILE holds one vd:prescription element).
    Tarif {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long)]
        dossier: String,
        /// DEVIS (a quote) or PEC (a commitment, with an accreditation number).
        #[arg(long, default_value = "DEVIS")]
        mode: String,
        /// Encrypt the prescription to the certificate ServicesOuverts publishes.
        #[arg(long)]
        chiffre: bool,
        /// The prescription XML (`-` for standard input).
        prescription: PathBuf,
    },
    /// AnnulationTar: cancels a PEC.
    Annuler {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long)]
        dossier: String,
        #[arg(long)]
        accreditation: String,
        #[arg(long)]
        prescription: u32,
    },
    /// ConsultationAccreditation: a PEC's status (ACTIVE, ANNULEE, REVOQUEE) and how each line's
    /// amount was computed.
    Accreditation {
        #[command(flatten)]
        conn: ConnArgs,
        accreditation: String,
    },
    /// Posts a SOAP envelope of your own (file or -); --repeat N measures latency on one
    /// kept-alive connection.
    Send {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        file: PathBuf,
    },
}

pub async fn run(command: ClientCommand) -> anyhow::Result<bool> {
    match command {
        ClientCommand::Services { conn, amc } => {
            let e = conn.resolve()?;
            let body = e.messages.services(Uuid::new_v4(), amc.as_deref());
            finish(send_once(&e, body).await?)
        }
        ClientCommand::Droits {
            conn,
            nir,
            cle,
            naissance,
            rang,
            amc,
            adherent,
            date,
            domaines,
        } => {
            let e = conn.resolve()?;
            let r = RightsRequest {
                nir,
                key: cle,
                birth: naissance,
                rank: rang,
                amc,
                adherent,
                date: date.unwrap_or_else(|| chrono::Utc::now().date_naive().to_string()),
                domains: domaines,
            };
            finish(send_once(&e, e.messages.rights(Uuid::new_v4(), &r)).await?)
        }
        ClientCommand::Tarif {
            conn,
            dossier,
            mode,
            chiffre,
            prescription,
        } => {
            let commitment = match mode.to_ascii_uppercase().as_str() {
                "DEVIS" => false,
                "PEC" => true,
                other => anyhow::bail!("--mode {other}: DEVIS or PEC"),
            };
            let xml = read_input(&prescription)?;
            let xml = String::from_utf8(xml).context("the prescription is not UTF-8")?;
            let xml = xml
                .trim()
                .strip_prefix("<?xml")
                .and_then(|rest| rest.split_once("?>").map(|(_, r)| r.trim()))
                .unwrap_or(xml.trim())
                .to_string();
            let e = conn.resolve()?;
            let mut c = e.connect().await?;
            let payload = if chiffre {
                let services = c
                    .soap(
                        e.messages.version,
                        e.messages.services(Uuid::new_v4(), None),
                    )
                    .await?;
                let b64 = field(&services.body, "certificat_chiffrement")
                    .context("the server publishes no encryption certificate")?;
                let recipient = Recipient::from_published(&b64)?;
                Payload::Encrypted {
                    der: recipient.encrypt(xml.as_bytes())?,
                    fingerprint: Some(recipient.fingerprint.clone()),
                }
            } else {
                Payload::Markup(xml)
            };
            let body = e
                .messages
                .tarification(Uuid::new_v4(), &dossier, commitment, &payload);
            finish(c.soap(e.messages.version, body).await?)
        }
        ClientCommand::Annuler {
            conn,
            dossier,
            accreditation,
            prescription,
        } => {
            let e = conn.resolve()?;
            let body =
                e.messages
                    .cancellation(Uuid::new_v4(), &dossier, &accreditation, prescription);
            finish(send_once(&e, body).await?)
        }
        ClientCommand::Accreditation {
            conn,
            accreditation,
        } => {
            let e = conn.resolve()?;
            let body = e.messages.consultation(Uuid::new_v4(), &accreditation);
            finish(send_once(&e, body).await?)
        }
        ClientCommand::Send { conn, repeat, file } => {
            let body = read_input(&file)?;
            let e = conn.resolve()?;
            let mut c = e.connect().await?;
            let mut took = Vec::with_capacity(repeat as usize);
            let mut last = None;
            for _ in 0..repeat.max(1) {
                let started = Instant::now();
                let reply = c.soap(e.messages.version, body.clone()).await?;
                took.push(started.elapsed());
                last = Some(reply);
            }
            eprintln!("TLS {:?}, resumed: {}", c.tls_version, c.resumed);
            if took.len() > 1 {
                took.sort();
                let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
                eprintln!(
                    "{} requests on one connection: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    took.len(),
                    at(0.50).as_secs_f64() * 1000.0,
                    at(0.99).as_secs_f64() * 1000.0,
                    took[took.len() - 1].as_secs_f64() * 1000.0
                );
            }
            finish(last.expect("at least one request"))
        }
    }
}

fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(body)
}

async fn send_once(e: &Endpoint, body: String) -> anyhow::Result<Reply> {
    let mut c = e.connect().await?;
    c.soap(e.messages.version, body).await
}

/// Prints the response; `true` when its code is 0000.
fn finish(reply: Reply) -> anyhow::Result<bool> {
    println!("{}", reply.body);
    let code = field(&reply.body, "code");
    eprintln!(
        "HTTP {}, code {}",
        reply.status.as_u16(),
        code.as_deref().unwrap_or("(none)")
    );
    Ok(code.as_deref() == Some("0000"))
}
