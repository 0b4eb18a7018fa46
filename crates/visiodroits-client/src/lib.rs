//! A Visiodroits client for pharmacy-software vendors: mTLS with a PEM or PKCS#12 identity, one
//! kept-alive connection, every request message, CMS encryption of prescriptions. The base of the
//! `visiodroits-client` command, the server's tests and the load generator. Nothing of the server,
//! PostgreSQL or Unix is in it, so that it builds for any target a vendor uses.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

pub use visiodroits_wire::SoapVersion;

pub mod cli;
pub mod encrypt;
pub mod messages;

/// The certificate chain and key a client presents.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// From a PEM chain (leaf first) and a PEM key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(visiodroits_wire::pem::readable)
            .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read a key from {}", key.display()))?;
        Ok(ClientIdentity { chain, key })
    }

    /// From a PKCS#12 file (what card middleware and SoapUI use).
    pub fn from_pkcs12(path: &Path, password: &str) -> anyhow::Result<Self> {
        let der = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let parsed = openssl::pkcs12::Pkcs12::from_der(&der)?
            .parse2(password)
            .context("wrong PKCS#12 password or corrupt file")?;
        let cert = parsed.cert.context("no certificate in the PKCS#12 file")?;
        let key = parsed.pkey.context("no key in the PKCS#12 file")?;
        let mut chain = vec![CertificateDer::from(cert.to_der()?)];
        for ca in parsed.ca.into_iter().flatten() {
            chain.push(CertificateDer::from(ca.to_der()?));
        }
        let key = PrivateKeyDer::try_from(key.private_key_to_pkcs8()?)
            .map_err(|e| anyhow::anyhow!("unusable key: {e}"))?;
        Ok(ClientIdentity { chain, key })
    }

    /// What the server will expect in `ps`, read from the certificate: the CN is the PS
    /// identifier, and an OU `1` + FINESS (a CPE card's) is the structure. A CPS card carries no
    /// structure: its holder declares it (`--structure`).
    pub fn pharmacist(&self) -> anyhow::Result<messages::Pharmacist> {
        use x509_parser::prelude::FromDer;
        let leaf = self.chain.first().context("empty certificate chain")?;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf)
            .map_err(|_| anyhow::anyhow!("the client certificate cannot be read"))?;
        let subject = cert.subject();
        let text =
            |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().ok().map(str::to_string);
        let ps_id = subject
            .iter_common_name()
            .find_map(text)
            .context("the client certificate has no CN")?;
        let structure = subject
            .iter_organizational_unit()
            .filter_map(text)
            .find_map(|ou| {
                let finess = ou.strip_prefix('1')?;
                (finess.len() == 9 && finess.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| finess.to_string())
            });
        Ok(messages::Pharmacist { ps_id, structure })
    }
}

/// `application/x-www-form-urlencoded` escaping of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// TLS versions a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Both,
    Tls12,
    Tls13,
}

/// Builds a rustls client configuration trusting `server_ca` (PEM), presenting `identity`.
pub fn tls_config(
    server_ca: &Path,
    identity: Option<ClientIdentity>,
    versions: Versions,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server_ca)
        .with_context(|| format!("cannot read {}", server_ca.display()))?
    {
        roots.add(cert?)?;
    }
    let v: &[&rustls::SupportedProtocolVersion] = match versions {
        Versions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Versions::Tls12 => &[&rustls::version::TLS12],
        Versions::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(v)?
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::in_memory_sessions(256);
    Ok(Arc::new(config))
}

/// One HTTP/1.1 keep-alive connection to a server.
pub struct SoapConnection {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
    /// Negotiated TLS version.
    pub tls_version: Option<rustls::ProtocolVersion>,
    /// Whether the TLS session was resumed.
    pub resumed: bool,
    /// The server's certificate (DER).
    pub server_certificate: Option<Vec<u8>>,
    /// The `Authorization: Bearer` token sent with each SOAP request (Pro Santé Connect, or one
    /// obtained by [`SoapConnection::exchange_token`]).
    bearer: Option<String>,
}

/// A token obtained at `POST /token` (RFC 8693 token exchange).
#[derive(Debug, Clone)]
pub struct ExchangedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// The subject token type of a Pro Santé Connect access token.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A response as received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl SoapConnection {
    /// Connects and completes the TLS handshake. With TLS 1.3 a refused client certificate only
    /// shows on the first request.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = ServerName::try_from(server_name.to_string())?;
        let tls = connector.connect(name, tcp).await?;
        let (_, session) = tls.get_ref();
        let tls_version = session.protocol_version();
        let resumed = matches!(
            session.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        let server_certificate = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        let (sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(SoapConnection {
            sender,
            host: format!("{server_name}:{}", addr.port()),
            tls_version,
            resumed,
            server_certificate,
            bearer: None,
        })
    }

    /// Sends `token` as `Authorization: Bearer` with the SOAP requests from now on (`None`:
    /// none). The token authenticates the professional; the connection's certificate is then the
    /// structure's or the software's (ORG).
    pub fn set_bearer(&mut self, token: Option<String>) {
        self.bearer = token;
    }

    /// Trades a Pro Santé Connect access token for one of the server's, bound to this
    /// connection's certificate (RFC 8693 at `POST /token`); the server's RFC 6749 error
    /// (`error: error_description`) otherwise.
    pub async fn exchange_token(&mut self, subject_token: &str) -> anyhow::Result<ExchangedToken> {
        let form = format!(
            "grant_type={}&subject_token={}&subject_token_type={}",
            form_encode("urn:ietf:params:oauth:grant-type:token-exchange"),
            form_encode(subject_token),
            form_encode(ACCESS_TOKEN_TYPE)
        );
        let req = http::Request::post("/token")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form)))?;
        let reply = self.send(req).await?;
        let json: serde_json::Value = serde_json::from_str(&reply.body)
            .with_context(|| format!("POST /token: HTTP {} without a JSON answer", reply.status))?;
        if !reply.status.is_success() {
            anyhow::bail!(
                "token exchange refused (HTTP {}): {}: {}",
                reply.status.as_u16(),
                json["error"].as_str().unwrap_or("?"),
                json["error_description"].as_str().unwrap_or("")
            );
        }
        Ok(ExchangedToken {
            access_token: json["access_token"]
                .as_str()
                .context("POST /token: no access_token")?
                .to_string(),
            expires_in: json["expires_in"].as_u64().unwrap_or(0),
        })
    }

    /// Posts a SOAP envelope to `/visiodroits`.
    pub async fn soap(
        &mut self,
        version: SoapVersion,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Reply> {
        let mut req = http::Request::post("/visiodroits")
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, version.content_type());
        if let Some(token) = &self.bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req.body(Full::new(body.into()))?;
        self.send(req).await
    }

    /// Sends any request on this connection.
    pub async fn send(&mut self, mut req: http::Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        if !req.headers().contains_key(http::header::HOST) {
            req.headers_mut()
                .insert(http::header::HOST, http::HeaderValue::from_str(&self.host)?);
        }
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// `GET path` on this connection.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Reply> {
        let req = http::Request::get(path).body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}
