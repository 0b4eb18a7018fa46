//! A stand-in Pro Santé Connect issuer, for the demo, the tests and vendors working offline. It
//! speaks what the server uses of the real one, in Keycloak's layout (which PSC runs): the OpenID
//! configuration, the JWKS (RS256 keys, rotated on demand), RFC 7662 introspection with client
//! credentials, over HTTPS. Tokens carry PSC's claims: `SubjectNameID`, `acr` = `eidas1`, the
//! professional record's activities (`SubjectRefPro`), and `cnf.x5t#S256` when bound.
//!
//! `POST /dev/mint` (form `ps_id`, optional `x5t`, `structure`, `opaque`, `lifetime`) mints a
//! token; it exists only here, for `visiodroits psc mint` and the demo.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::rsa::Rsa;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The realm path of the stand-in issuer (PSC's is `/auth/realms/esante-wallet`).
pub const REALM: &str = "/auth/realms/esante-wallet-dev";
/// The client the server introspects as, and the audience of the tokens.
pub const CLIENT_ID: &str = "visiodroits-dev";

/// One RS256 key.
struct Key {
    kid: String,
    encoding: EncodingKey,
    jwk: serde_json::Value,
    public_pem: String,
}

fn rsa_key() -> anyhow::Result<Key> {
    let rsa = Rsa::generate(2048)?;
    let n = URL_SAFE_NO_PAD.encode(rsa.n().to_vec());
    let e = URL_SAFE_NO_PAD.encode(rsa.e().to_vec());
    let kid = uuid::Uuid::new_v4().simple().to_string();
    let jwk =
        serde_json::json!({"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": n, "e": e});
    let public_pem = String::from_utf8(rsa.public_key_to_pem()?)?;
    let encoding = EncodingKey::from_rsa_der(&rsa.private_key_to_der()?);
    Ok(Key {
        kid,
        encoding,
        jwk,
        public_pem,
    })
}

/// What a minted token says.
#[derive(Debug, Clone)]
pub struct Mint {
    /// `SubjectNameID`: `8` + RPPS.
    pub ps_id: String,
    /// The FINESS of the activities in `SubjectRefPro`.
    pub structures: Vec<String>,
    /// `cnf.x5t#S256`: the SHA-256 of the certificate the token is bound to.
    pub thumbprint: Option<Vec<u8>>,
    /// Seconds from now to `exp` (negative: already expired).
    pub lifetime: i64,
    pub acr: String,
    /// `iss`; `None`: this issuer.
    pub issuer: Option<String>,
    /// `aud`; `None`: [`CLIENT_ID`].
    pub audience: Option<String>,
    /// Sign with a key the JWKS does not publish.
    pub unpublished_key: bool,
    /// Keycloak's `typ` claim: `Bearer` for an access token, `ID` for an ID token.
    pub token_type: String,
}

impl Mint {
    /// A valid, unbound token for `ps_id`, for two minutes.
    pub fn new(ps_id: &str) -> Self {
        Mint {
            ps_id: ps_id.to_string(),
            structures: Vec::new(),
            thumbprint: None,
            lifetime: 120,
            acr: "eidas1".into(),
            issuer: None,
            audience: None,
            unpublished_key: false,
            token_type: "Bearer".into(),
        }
    }

    /// Bound to the certificate (PEM, leaf first) in `pem`.
    pub fn bound_to_pem(mut self, pem: &[u8]) -> anyhow::Result<Self> {
        self.thumbprint = Some(thumbprint_of_pem(pem)?);
        Ok(self)
    }
}

/// The SHA-256 of the first certificate of a PEM file's text: what `cnf.x5t#S256` holds.
pub fn thumbprint_of_pem(pem: &[u8]) -> anyhow::Result<Vec<u8>> {
    let leaf = CertificateDer::pem_slice_iter(pem)
        .next()
        .context("no certificate in the PEM text")?
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e:?}"))?;
    Ok(openssl::sha::sha256(leaf.as_ref()).to_vec())
}

/// The introspection client's secret kept in `path`: created when missing (random, readable by
/// its owner only), then read.
pub fn client_secret(path: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !path.exists() {
        let mut b = [0u8; 24];
        openssl::rand::rand_bytes(&mut b)?;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(hex.as_bytes()))
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    let secret =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(secret.trim().to_string())
}

struct State {
    issuer: String,
    client_secret: String,
    keys: Mutex<Vec<Arc<Key>>>,
    unpublished: Key,
    /// Opaque tokens and their claims; `false` once deactivated.
    opaque: Mutex<HashMap<String, (serde_json::Value, bool)>>,
    jwks_requests: AtomicUsize,
    introspections: AtomicUsize,
}

/// A running stand-in issuer.
pub struct DevIssuer {
    pub addr: SocketAddr,
    /// `iss` of its tokens: `https://localhost:PORT/auth/realms/esante-wallet-dev`.
    pub issuer: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DevIssuer {
    /// Serves on `listen` (port 0 allowed) with the TLS certificate and key of `cert`/`key` (the
    /// dev PKI's `server/`: localhost), introspection clients authenticating as [`CLIENT_ID`] with
    /// `client_secret`.
    pub async fn start(
        listen: SocketAddr,
        cert: &Path,
        key: &Path,
        client_secret: &str,
    ) -> anyhow::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", key.display()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let issuer = format!("https://localhost:{}{REALM}", addr.port());
        let state = Arc::new(State {
            issuer: issuer.clone(),
            client_secret: client_secret.to_string(),
            keys: Mutex::new(vec![Arc::new(rsa_key()?)]),
            unpublished: rsa_key()?,
            opaque: Mutex::new(HashMap::new()),
            jwks_requests: AtomicUsize::new(0),
            introspections: AtomicUsize::new(0),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, state) = (acceptor.clone(), serving.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(DevIssuer {
            addr,
            issuer,
            state,
            task,
        })
    }

    /// [`DevIssuer::start`] with the TLS certificate of the dev PKI in `pki` (its `server/`).
    pub async fn start_with_pki(
        listen: SocketAddr,
        pki: &Path,
        client_secret: &str,
    ) -> anyhow::Result<Self> {
        let server = pki.join("server");
        Self::start(
            listen,
            &server.join("server.pem"),
            &server.join("server.key"),
            client_secret,
        )
        .await
    }

    /// A signed access token (JWT).
    pub fn mint(&self, m: &Mint) -> String {
        self.state.mint(m)
    }

    /// An opaque access token, known to the introspection endpoint.
    pub fn mint_opaque(&self, m: &Mint) -> String {
        self.state.mint_opaque(m)
    }

    /// Introspection says `active: false` for `token` from now on.
    pub fn deactivate(&self, token: &str) {
        if let Some(entry) = lock(&self.state.opaque).get_mut(token) {
            entry.1 = false;
        }
    }

    /// A new signing key, published beside the old ones and used from now on.
    pub fn rotate(&self) -> anyhow::Result<()> {
        lock(&self.state.keys).push(Arc::new(rsa_key()?));
        Ok(())
    }

    /// The public key of the current signing key (PEM): what an attacker knows.
    pub fn public_key_pem(&self) -> String {
        current(&self.state).public_pem.clone()
    }

    /// How many times the JWKS was downloaded.
    pub fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    /// How many introspection requests were answered.
    pub fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn current(state: &State) -> Arc<Key> {
    lock(&state.keys).last().cloned().expect("one key at least")
}

impl State {
    fn claims(&self, m: &Mint) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let audience = m.audience.clone().unwrap_or_else(|| CLIENT_ID.into());
        let mut claims = serde_json::json!({
            "iss": m.issuer.clone().unwrap_or_else(|| self.issuer.clone()),
            "aud": audience,
            "azp": audience,
            "sub": uuid::Uuid::new_v4().to_string(),
            "SubjectNameID": m.ps_id,
            "preferred_username": m.ps_id,
            "acr": m.acr,
            "scope": "openid scope_all",
            "typ": m.token_type,
            "iat": now.min(now + m.lifetime),
            "exp": now + m.lifetime,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if !m.structures.is_empty() {
            let activities: Vec<_> = m
                .structures
                .iter()
                .map(|f| serde_json::json!({"numeroFinessSite": f}))
                .collect();
            claims["SubjectRefPro"] = serde_json::json!({
                "exercices": [{"codeProfession": "21", "activities": activities}]
            });
        }
        if let Some(t) = &m.thumbprint {
            claims["cnf"] = serde_json::json!({"x5t#S256": URL_SAFE_NO_PAD.encode(t)});
        }
        claims
    }

    fn mint(&self, m: &Mint) -> String {
        let key = if m.unpublished_key {
            None
        } else {
            Some(current(self))
        };
        let key = key.as_deref().unwrap_or(&self.unpublished);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &self.claims(m), &key.encoding).expect("an RSA key signs")
    }

    fn mint_opaque(&self, m: &Mint) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        lock(&self.opaque).insert(token.clone(), (self.claims(m), true));
        token
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

async fn serve(state: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "text/plain", "body".into()),
    };
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let json = "application/json";
    let base = &state.issuer;
    match (method, path.strip_prefix(REALM).unwrap_or(&path)) {
        (Method::GET, "/.well-known/openid-configuration") => reply(
            StatusCode::OK,
            json,
            serde_json::json!({
                "issuer": base,
                "jwks_uri": format!("{base}/protocol/openid-connect/certs"),
                "introspection_endpoint": format!("{base}/protocol/openid-connect/token/introspect"),
                "id_token_signing_alg_values_supported": ["RS256"],
                "acr_values_supported": ["eidas1"],
            })
            .to_string(),
        ),
        (Method::GET, "/protocol/openid-connect/certs") => {
            state.jwks_requests.fetch_add(1, Ordering::SeqCst);
            let keys: Vec<_> = lock(&state.keys).iter().map(|k| k.jwk.clone()).collect();
            reply(
                StatusCode::OK,
                json,
                serde_json::json!({ "keys": keys }).to_string(),
            )
        }
        (Method::POST, "/protocol/openid-connect/token/introspect") => {
            let expected = format!(
                "Basic {}",
                STANDARD.encode(format!("{CLIENT_ID}:{}", state.client_secret))
            );
            if auth.as_deref() != Some(expected.as_str()) {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json,
                    r#"{"error":"invalid_client"}"#.into(),
                );
            }
            state.introspections.fetch_add(1, Ordering::SeqCst);
            let token = form.get("token").cloned().unwrap_or_default();
            let answer = match lock(&state.opaque).get(&token) {
                Some((claims, true)) => {
                    let mut c = claims.clone();
                    c["active"] = serde_json::Value::Bool(true);
                    c
                }
                _ => serde_json::json!({"active": false}),
            };
            reply(StatusCode::OK, json, answer.to_string())
        }
        (Method::POST, "/dev/mint") => {
            let Some(ps_id) = form.get("ps_id").filter(|p| !p.is_empty()) else {
                return reply(StatusCode::BAD_REQUEST, "text/plain", "ps_id is required\n".into());
            };
            let mut m = Mint::new(ps_id);
            if let Some(x5t) = form.get("x5t") {
                match URL_SAFE_NO_PAD.decode(x5t) {
                    Ok(t) if t.len() == 32 => m.thumbprint = Some(t),
                    _ => return reply(StatusCode::BAD_REQUEST, "text/plain", "x5t: base64url SHA-256\n".into()),
                }
            }
            if let Some(s) = form.get("structure") {
                m.structures = s.split(',').map(str::to_string).collect();
            }
            if let Some(l) = form.get("lifetime").and_then(|l| l.parse().ok()) {
                m.lifetime = l;
            }
            let token = if form.get("opaque").is_some_and(|o| o == "true") {
                state.mint_opaque(&m)
            } else {
                state.mint(&m)
            };
            reply(StatusCode::OK, "text/plain", token)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
