//! Pro Santé Connect over real TLS and PostgreSQL: a stand-in issuer serving its JWKS and
//! introspection over HTTPS with its own RSA keys, real signed tokens, the dev PKI's ORG
//! certificate. Bound tokens on the four operations, every refusal with its reason in the audit,
//! key rotation and the bounded JWKS refetch, introspection and its cache, the RFC 8693 token
//! exchange, and no token in any log line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use visiodroits::soap::SoapVersion;
use visiodroits_client::{Reply, SoapConnection};
use visiodroits_devkit::pki::{DEV_FINESS, DEV_RPPS};
use visiodroits_devkit::psc::{thumbprint_of_pem, DevIssuer, Mint, CLIENT_ID};

use crate::helpers::{captured_logs, code, first, new_id, shared, wait_sealed, TestApp};
use crate::rights::Rights;
use crate::tarification::{prescription, tarification_as, LINES};

/// The ORG certificate's subject, as `openssl x509 -noout -subject` prints it.
const ORG_SUBJECT: &str = "C = FR, O = PHARMACIE DEV, OU = 1750000001, CN = LOGICIEL OFFICINE DEV";

fn ps() -> String {
    format!("8{DEV_RPPS}")
}

/// The SHA-256 of the dev client certificate `name`.
fn thumbprint(name: &str) -> Vec<u8> {
    let pem = std::fs::read(shared().pki_path(&format!("clients/{name}.pem"))).unwrap();
    thumbprint_of_pem(&pem).unwrap()
}

/// A valid token for the dev pharmacist, bound to `cert`.
fn bound(cert: &str) -> Mint {
    Mint {
        thumbprint: Some(thumbprint(cert)),
        ..Mint::new(&ps())
    }
}

struct Psc {
    issuer: DevIssuer,
    app: TestApp,
    /// The server's configuration variables.
    vars: HashMap<String, String>,
}

/// A stand-in issuer, then a server configured for it (and for the token exchange), adjusted
/// by `tweak`.
async fn spawn(tweak: impl FnOnce(&mut HashMap<String, String>)) -> Psc {
    let s = shared();
    let secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let issuer = DevIssuer::start_with_pki("127.0.0.1:0".parse().unwrap(), &s.pki, &secret)
        .await
        .unwrap();
    let secret_file = s
        .base
        .join(format!("psc-{}.secret", uuid::Uuid::new_v4().simple()));
    std::fs::write(&secret_file, &secret).unwrap();
    let iss = issuer.issuer.clone();
    let mut vars = HashMap::new();
    let app = TestApp::spawn_with(|v| {
        let p = |rel: &str| s.pki_path(rel).display().to_string();
        for (k, val) in [
            ("VD_PSC_ISSUER", iss.clone()),
            ("VD_PSC_AUDIENCE", CLIENT_ID.to_string()),
            ("VD_PSC_CA", p("ca/root.pem")),
            (
                "VD_PSC_INTROSPECTION_URL",
                format!("{iss}/protocol/openid-connect/token/introspect"),
            ),
            ("VD_PSC_CLIENT_ID", CLIENT_ID.to_string()),
            (
                "VD_PSC_CLIENT_SECRET_FILE",
                secret_file.display().to_string(),
            ),
            ("VD_PSC_JWKS_REFETCH_SECS", "1".to_string()),
            ("VD_PSC_INTROSPECTION_CACHE_SECS", "1".to_string()),
            ("VD_TOKEN_KEY", p("token/token.key")),
            ("VD_TOKEN_ISSUER", "https://localhost".to_string()),
            ("VD_TOKEN_CLIENTS", format!("logiciel-dev={ORG_SUBJECT}")),
        ] {
            v.insert(k.to_string(), val);
        }
        tweak(v);
        vars = v.clone();
    })
    .await;
    Psc { issuer, app, vars }
}

impl Psc {
    /// A connection with the dev certificate `cert`, sending `token`.
    async fn conn(&self, cert: Option<&str>, token: Option<&str>) -> SoapConnection {
        let mut c = self.app.connect(cert).await.unwrap();
        c.set_bearer(token.map(str::to_string));
        c
    }

    /// DemandeDroits for the dev pharmacist (declared `ps`) on `conn`: the reply and its request id.
    async fn rights(&self, conn: &mut SoapConnection, ps: &str) -> (Reply, String) {
        let id = new_id();
        let req = Rights {
            ps_id: ps.to_string(),
            structure: Some(DEV_FINESS.into()),
            nir: "1790312345678".into(),
            key: "04".into(),
            birth: "19790301".into(),
            ..Rights::default()
        };
        let reply = conn
            .soap(SoapVersion::V12, req.xml(SoapVersion::V12, &id))
            .await
            .unwrap();
        crate::helpers::assert_valid(&reply, SoapVersion::V12);
        (reply, id)
    }

    /// The audit row of request `id`: (code, motif, jeton_emetteur, jeton_jti, jeton_empreinte,
    /// origine_structure).
    async fn audit(&self, id: &str) -> AuditRow {
        sqlx::query_as(
            "SELECT code, motif, jeton_emetteur, jeton_jti, jeton_empreinte, origine_structure
               FROM audit.journal WHERE id_requete = $1::uuid",
        )
        .bind(id)
        .fetch_one(&self.app.db)
        .await
        .unwrap()
    }
}

type AuditRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The claims of a JWT, unverified (the test reads what the issuer put in it).
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sha256_hex(token: &str) -> String {
    hex::encode(openssl::sha::sha256(token.as_bytes()))
}

/// The refusal every bad token gets: Fault 8002 with the RFC 6750 challenge.
fn assert_invalid_token(reply: &Reply, what: &str) {
    assert_eq!(code(reply), "8002", "{what}: {}", reply.body);
    assert_eq!(
        reply
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(r#"Bearer error="invalid_token""#),
        "{what}"
    );
}

fn assert_not_logged(tokens: &[&str]) {
    let logs = captured_logs();
    for t in tokens {
        assert!(!logs.contains(t), "a token is in the logs");
        // Each part of a JWT is long and random enough to be its own fingerprint.
        for part in t.split('.').filter(|p| p.len() > 40) {
            assert!(!logs.contains(part), "part of a token is in the logs");
        }
    }
}

#[tokio::test]
async fn a_bound_token_on_the_org_certificate_gets_rights_and_a_pec() {
    let psc = spawn(|_| {}).await;
    let token = psc.issuer.mint(&bound("org"));
    let mut conn = psc.conn(Some("org"), Some(&token)).await;

    let (reply, id) = psc.rights(&mut conn, &ps()).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    let dossier = first(&reply.body, "numero_dossier").unwrap();
    let (audit_code, _, issuer, jti, sha, source) = psc.audit(&id).await;
    assert_eq!(audit_code, "0000");
    assert_eq!(issuer.as_deref(), Some(psc.issuer.issuer.as_str()));
    assert_eq!(jti.as_deref(), claims(&token)["jti"].as_str());
    assert_eq!(sha, Some(sha256_hex(&token)));
    assert_eq!(source.as_deref(), Some("certificat"));

    // The same bound token again, for the PEC: binding, not single use, is its replay defence.
    let id = new_id();
    let pec = tarification_as(
        &ps(),
        DEV_FINESS,
        &id,
        &dossier,
        "PEC",
        &prescription(1, LINES, ""),
    );
    let reply = conn.soap(SoapVersion::V12, pec).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert!(first(&reply.body, "numero_accreditation").is_some());
    assert_eq!(
        psc.audit(&id).await.3.as_deref(),
        claims(&token)["jti"].as_str()
    );

    // No column of the audit holds the token; the chain covers the new columns.
    let rows: Vec<(String,)> = sqlx::query_as("SELECT row_to_json(j)::text FROM audit.journal j")
        .fetch_all(&psc.app.db)
        .await
        .unwrap();
    assert!(rows
        .iter()
        .all(|(r,)| !r.contains(&token) && !r.contains(token.split('.').nth(2).unwrap())));
    wait_sealed(&psc.app).await;
    let verified = visiodroits::audit::chain::verify(&psc.app.db)
        .await
        .unwrap();
    assert!(verified.broken.is_none(), "{verified:?}");
    assert_not_logged(&[&token]);
}

/// A JWT with `header` and `claims`, signed by nothing or by HS256 with `secret`.
fn forged(header: serde_json::Value, claims: &serde_json::Value, secret: Option<&[u8]>) -> String {
    let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let message = format!("{}.{}", part(&header), part(claims));
    let signature = match secret {
        None => String::new(),
        Some(key) => {
            let key = openssl::pkey::PKey::hmac(key).unwrap();
            let mut signer =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
            signer.update(message.as_bytes()).unwrap();
            URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap())
        }
    };
    format!("{message}.{signature}")
}

#[tokio::test]
async fn bad_tokens_are_refused_each_for_its_reason() {
    let psc = spawn(|_| {}).await;
    let good = psc.issuer.mint(&bound("org"));
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    let good_claims = claims(&good);
    let public_pem = psc.issuer.public_key_pem();

    // Positive control: the connection, certificate and message are right.
    let mut control = psc.conn(Some("org"), Some(&good)).await;
    assert_eq!(code(&psc.rights(&mut control, &ps()).await.0), "0000");

    let m = |f: fn(&mut Mint)| {
        let mut mint = bound("org");
        f(&mut mint);
        psc.issuer.mint(&mint)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bound to another certificate",
            m(|t| t.thumbprint = Some(thumbprint("cpe"))),
            "token_binding",
        ),
        ("expired", m(|t| t.lifetime = -120), "token_expired"),
        (
            "acr below eidas1",
            m(|t| t.acr = "eidas0".into()),
            "token_acr",
        ),
        (
            "another issuer",
            m(|t| t.issuer = Some("https://autre.example/auth/realms/x".into())),
            "token_issuer",
        ),
        (
            "another audience",
            m(|t| t.audience = Some("autre-client".into())),
            "token_audience",
        ),
        (
            "a kid the JWKS does not publish",
            m(|t| t.unpublished_key = true),
            "token_kid_unknown",
        ),
        (
            "alg none",
            forged(
                serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid}),
                &good_claims,
                None,
            ),
            "token_malformed",
        ),
        (
            "HS256 keyed with the issuer's public key",
            forged(
                serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                &good_claims,
                Some(public_pem.as_bytes()),
            ),
            "token_algorithm",
        ),
        (
            "not a token",
            "n'importe quoi".to_string(),
            "token_malformed",
        ),
    ];
    let mut all = vec![good.clone()];
    for (what, token, reason) in &cases {
        let mut conn = psc.conn(Some("org"), Some(token)).await;
        let (reply, id) = psc.rights(&mut conn, &ps()).await;
        assert_invalid_token(&reply, what);
        let row = psc.audit(&id).await;
        assert_eq!(row.1.as_deref(), Some(*reason), "{what}");
        assert_eq!(
            row.4,
            Some(sha256_hex(token)),
            "{what}: the audit keeps the hash"
        );
        all.push(token.clone());
    }

    // The right token, but the message names another pharmacist: 8001, no challenge.
    let mut conn = psc.conn(Some("org"), Some(&good)).await;
    let (reply, _) = psc.rights(&mut conn, "810001234615").await;
    assert_eq!(code(&reply), "8001", "{}", reply.body);
    assert!(reply.headers.get("www-authenticate").is_none());

    // A token only with an ORG or CPE certificate: not on a card's connection, not without one.
    for cert in [Some("cps"), None] {
        let token = psc.issuer.mint(&Mint::new(&ps()));
        let mut conn = psc.conn(cert, Some(&token)).await;
        let (reply, id) = psc.rights(&mut conn, &ps()).await;
        assert_invalid_token(&reply, &format!("{cert:?}"));
        assert_eq!(
            psc.audit(&id).await.1.as_deref(),
            Some("token_needs_org_certificate")
        );
        all.push(token);
    }

    // An unbound token is single use: accepted once, refused as replayed.
    let unbound = psc.issuer.mint(&Mint::new(&ps()));
    let mut conn = psc.conn(Some("org"), Some(&unbound)).await;
    assert_eq!(code(&psc.rights(&mut conn, &ps()).await.0), "0000");
    let (reply, id) = psc.rights(&mut conn, &ps()).await;
    assert_invalid_token(&reply, "replayed jti");
    assert_eq!(psc.audit(&id).await.1.as_deref(), Some("token_replayed"));
    all.push(unbound);

    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_not_logged(&refs);
}

#[tokio::test]
async fn dispensing_needs_a_bound_token_with_an_org_certificate() {
    let psc = spawn(|_| {}).await;
    let token = psc.issuer.mint(&bound("org"));
    let mut conn = psc.conn(Some("org"), Some(&token)).await;
    let (reply, _) = psc.rights(&mut conn, &ps()).await;
    let dossier = first(&reply.body, "numero_dossier").unwrap();
    let pec = |id: &str| {
        tarification_as(
            &ps(),
            DEV_FINESS,
            id,
            &dossier,
            "DEVIS",
            &prescription(1, LINES, ""),
        )
    };

    // The ORG certificate alone is no professional: 8002, and the challenge asks for a token.
    let mut bare = psc.conn(Some("org"), None).await;
    let reply = bare.soap(SoapVersion::V12, pec(&new_id())).await.unwrap();
    assert_eq!(code(&reply), "8002", "{}", reply.body);
    assert_eq!(
        reply
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );

    // An unbound token is refused on DldTar, where the rights exchange took one.
    let unbound = psc.issuer.mint(&Mint::new(&ps()));
    let mut conn = psc.conn(Some("org"), Some(&unbound)).await;
    let id = new_id();
    let reply = conn.soap(SoapVersion::V12, pec(&id)).await.unwrap();
    assert_invalid_token(&reply, "unbound on DldTar");
    assert_eq!(psc.audit(&id).await.1.as_deref(), Some("token_unbound"));

    // The bound token: the quote is computed.
    let mut conn = psc.conn(Some("org"), Some(&token)).await;
    let reply = conn.soap(SoapVersion::V12, pec(&new_id())).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
}

#[tokio::test]
async fn the_operator_may_accept_unbound_tokens_for_dispensing() {
    let psc = spawn(|v| {
        v.insert("VD_TOKEN_BINDING".into(), "optional".into());
    })
    .await;
    let rights_token = psc.issuer.mint(&Mint::new(&ps()));
    let mut conn = psc.conn(Some("org"), Some(&rights_token)).await;
    let (reply, _) = psc.rights(&mut conn, &ps()).await;
    let dossier = first(&reply.body, "numero_dossier").unwrap();
    let unbound = psc.issuer.mint(&Mint::new(&ps()));
    let mut conn = psc.conn(Some("org"), Some(&unbound)).await;
    let pec = tarification_as(
        &ps(),
        DEV_FINESS,
        &new_id(),
        &dossier,
        "DEVIS",
        &prescription(1, LINES, ""),
    );
    let reply = conn.soap(SoapVersion::V12, pec).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_unknown_kids_do_not_hammer_the_issuer() {
    let psc = spawn(|_| {}).await;
    let mut conn = psc.conn(Some("org"), None).await;
    conn.set_bearer(Some(psc.issuer.mint(&bound("org"))));
    assert_eq!(code(&psc.rights(&mut conn, &ps()).await.0), "0000");
    assert_eq!(psc.issuer.jwks_requests(), 1);

    // The issuer rotates: the new kid is fetched once the refetch interval (1 s here) allows.
    psc.issuer.rotate().unwrap();
    conn.set_bearer(Some(psc.issuer.mint(&bound("org"))));
    let started = Instant::now();
    loop {
        let (reply, id) = psc.rights(&mut conn, &ps()).await;
        if code(&reply) == "0000" {
            break;
        }
        assert_invalid_token(&reply, "before the refetch");
        assert_eq!(psc.audit(&id).await.1.as_deref(), Some("token_kid_unknown"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new key was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(psc.issuer.jwks_requests(), 2);

    // Made-up kids within the interval are refused without asking the issuer again.
    for _ in 0..5 {
        conn.set_bearer(Some(psc.issuer.mint(&Mint {
            unpublished_key: true,
            ..bound("org")
        })));
        let (reply, _) = psc.rights(&mut conn, &ps()).await;
        assert_invalid_token(&reply, "unknown kid");
    }
    assert_eq!(psc.issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_refused_once_inactive() {
    let psc = spawn(|_| {}).await;
    let opaque = psc.issuer.mint_opaque(&bound("org"));
    let mut conn = psc.conn(Some("org"), Some(&opaque)).await;
    let (reply, id) = psc.rights(&mut conn, &ps()).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(psc.audit(&id).await.4, Some(sha256_hex(&opaque)));
    // Within the cache time, the issuer is not asked again.
    assert_eq!(code(&psc.rights(&mut conn, &ps()).await.0), "0000");
    assert_eq!(psc.issuer.introspections(), 1);

    psc.issuer.deactivate(&opaque);
    let started = Instant::now();
    loop {
        let (reply, id) = psc.rights(&mut conn, &ps()).await;
        if code(&reply) != "0000" {
            assert_invalid_token(&reply, "inactive");
            assert_eq!(psc.audit(&id).await.1.as_deref(), Some("token_inactive"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepted after the cache time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(psc.issuer.introspections() >= 2);
    assert_not_logged(&[&opaque]);
}

/// `POST /token` on `conn` with `form`: status and JSON.
async fn post_token(conn: &mut SoapConnection, form: &str) -> (u16, serde_json::Value) {
    let req = http::Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            form.to_string(),
        )))
        .unwrap();
    let reply = conn.send(req).await.unwrap();
    assert_eq!(
        reply
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    (
        reply.status.as_u16(),
        serde_json::from_str(&reply.body).unwrap_or_else(|_| panic!("{}", reply.body)),
    )
}

fn exchange_form(subject: &str) -> String {
    format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token={subject}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
    )
}

#[tokio::test]
async fn the_token_exchange_issues_a_bound_token_of_ours() {
    let psc = spawn(|_| {}).await;
    let subject = psc.issuer.mint(&Mint::new(&ps()));
    let mut conn = psc.conn(Some("org"), None).await;
    let ours = conn.exchange_token(&subject).await.unwrap();
    assert!(
        ours.expires_in > 0 && ours.expires_in <= 300,
        "{}",
        ours.expires_in
    );

    // It verifies with the published JWKS, and says who, where, bound to what.
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&conn.get("/.well-known/jwks.json").await.unwrap().body).unwrap();
    let header = jsonwebtoken::decode_header(&ours.access_token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the kid is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["https://localhost"]);
    validation.set_issuer(&["https://localhost"]);
    let verified = jsonwebtoken::decode::<serde_json::Value>(
        &ours.access_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(verified["sub"], ps().as_str());
    assert_eq!(verified["numero_structure"], DEV_FINESS);
    assert_eq!(
        verified["cnf"]["x5t#S256"],
        URL_SAFE_NO_PAD.encode(thumbprint("org")).as_str()
    );
    assert!(verified["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let lifetime = verified["exp"].as_i64().unwrap() - verified["iat"].as_i64().unwrap();
    assert!(lifetime <= 300, "{lifetime}");

    // It works on the rights and on DldTar, on the ORG certificate's connections.
    conn.set_bearer(Some(ours.access_token.clone()));
    let (reply, id) = psc.rights(&mut conn, &ps()).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(psc.audit(&id).await.2.as_deref(), Some("https://localhost"));
    let dossier = first(&reply.body, "numero_dossier").unwrap();
    let pec = tarification_as(
        &ps(),
        DEV_FINESS,
        &new_id(),
        &dossier,
        "PEC",
        &prescription(1, LINES, ""),
    );
    let reply = conn.soap(SoapVersion::V12, pec).await.unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);

    // Not on another certificate's connection.
    let mut other = psc.conn(Some("cpe"), Some(&ours.access_token)).await;
    let (reply, id) = psc.rights(&mut other, &ps()).await;
    assert_invalid_token(&reply, "our token on another certificate");
    assert_eq!(psc.audit(&id).await.1.as_deref(), Some("token_binding"));

    // The PSC token goes no further: exchanged once only, and not usable after its exchange.
    let (status, body) = post_token(&mut conn, &exchange_form(&subject)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The exchange's audit row is written off the response path: wait for it.
    let mut audit: Option<(String, Option<String>, Option<String>)> = None;
    for _ in 0..50 {
        audit = sqlx::query_as(
            "SELECT code, motif, jeton_jti FROM audit.journal
              WHERE operation = 'EchangeJeton' AND code <> '0000'",
        )
        .fetch_optional(&psc.app.db)
        .await
        .unwrap();
        if audit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audit = audit.expect("the refused exchange is audited");
    assert_eq!(
        (audit.0.as_str(), audit.1.as_deref(), audit.2.as_deref()),
        (
            "8002",
            Some("token_replayed"),
            claims(&subject)["jti"].as_str()
        )
    );
    assert_not_logged(&[&subject, &ours.access_token]);
}

#[tokio::test]
async fn the_token_exchange_refuses_with_rfc_6749_errors() {
    let psc = spawn(|_| {}).await;
    let fresh = || psc.issuer.mint(&Mint::new(&ps()));
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, exchange_form(&fresh()), 401, "invalid_client"),
        (
            Some("valid"),
            exchange_form(&fresh()),
            401,
            "invalid_client",
        ),
        (Some("cps"), exchange_form(&fresh()), 401, "invalid_client"),
        (
            Some("org"),
            exchange_form(&psc.issuer.mint(&Mint {
                lifetime: -300,
                ..Mint::new(&ps())
            })),
            400,
            "invalid_grant",
        ),
        (
            Some("org"),
            exchange_form("pas-un-jeton"),
            400,
            "invalid_grant",
        ),
        (
            Some("org"),
            exchange_form(&psc.issuer.mint(&Mint {
                thumbprint: Some(thumbprint("cpe")),
                ..Mint::new(&ps())
            })),
            400,
            "invalid_grant",
        ),
        (
            Some("org"),
            format!("grant_type=client_credentials&subject_token={}", fresh()),
            400,
            "unsupported_grant_type",
        ),
        (
            Some("org"),
            exchange_form(&fresh()).replace("access_token", "id_token"),
            400,
            "invalid_request",
        ),
        (
            Some("org"),
            format!(
                "{}&audience=https%3A%2F%2Fautre.example",
                exchange_form(&fresh())
            ),
            400,
            "invalid_target",
        ),
    ];
    for (cert, form, status, error) in cases {
        let mut conn = psc.conn(cert, None).await;
        let (got, body) = post_token(&mut conn, &form).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{cert:?} {form}"
        );
        assert!(body["error_description"]
            .as_str()
            .is_some_and(|d| d.is_ascii()));
    }
    // Positive control: the same ORG certificate and a good token.
    let mut conn = psc.conn(Some("org"), None).await;
    let (status, body) = post_token(&mut conn, &exchange_form(&fresh())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
}

#[tokio::test]
async fn a_vendor_mints_exchanges_and_calls_from_the_command_line() {
    let psc = spawn(|_| {}).await;
    let s = shared();
    let p = |rel: &str| s.pki_path(rel).display().to_string();
    // The binary runs beside this test's runtime, which serves the issuer meanwhile.
    let mint = |extra: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_visiodroits"));
        cmd.args(["psc", "mint", "--issuer", psc.issuer.issuer.as_str()])
            .args(["--ca", &p("ca/root.pem"), "--ps-id", &ps()])
            .args(["--bind", &p("clients/org.pem")])
            .args(extra)
            .env_clear();
        async move {
            let out = cmd.output().await.unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        }
    };
    let jwt = mint(&[]).await;
    assert_eq!(claims(&jwt)["SubjectNameID"], ps().as_str());
    let opaque = mint(&["--opaque"]).await;
    assert!(!opaque.contains('.'));

    let token_file = s
        .base
        .join(format!("token-{}", uuid::Uuid::new_v4().simple()));
    let url = format!("https://localhost:{}", psc.app.addr().port());
    for (token, exchange) in [(&jwt, true), (&opaque, false)] {
        std::fs::write(&token_file, token).unwrap();
        let mut args = vec![
            "droits".to_string(),
            "--url".into(),
            url.clone(),
            "--ca".into(),
            p("ca/root.pem"),
            "--cert".into(),
            p("clients/org.pem"),
            "--key".into(),
            p("clients/org.key"),
            "--token-file".into(),
            token_file.display().to_string(),
            "--nir".into(),
            "1790312345678".into(),
            "--cle".into(),
            "04".into(),
            "--naissance".into(),
            "19790301".into(),
            "--amc".into(),
            "12345678".into(),
            "--date".into(),
            "2026-03-15".into(),
        ];
        if exchange {
            args.push("--exchange".into());
        } else {
            // An opaque token cannot be read by the client: the professional is given.
            args.extend(["--ps".into(), ps()]);
        }
        let out = tokio::process::Command::new(crate::helpers::workspace_bin("visiodroits-client"))
            .args(&args)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("<vd:code>0000</vd:code>"),
            "exchange {exchange}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains(token.as_str()));
    }
    // The exchanged PSC token is spent.
    let mut conn = psc.conn(Some("org"), None).await;
    assert!(conn.exchange_token(&jwt).await.is_err());
    assert_not_logged(&[&jwt, &opaque]);
}

#[tokio::test]
async fn check_config_downloads_the_jwks_and_names_the_exchange() {
    let psc = spawn(|_| {}).await;
    let config = visiodroits::config::Config::from_map(&psc.vars).unwrap();
    let report = visiodroits::startup::check(&config).await.unwrap();
    assert!(
        report.contains(&format!(
            "Pro Santé Connect: tokens of {} (1 signing key(s)",
            psc.issuer.issuer
        )),
        "{report}"
    );
    assert!(report.contains("introspection on"), "{report}");
    assert!(
        report.contains("token exchange: POST /token for 1 client(s)"),
        "{report}"
    );
    assert_eq!(psc.issuer.jwks_requests(), 1);

    // An issuer that cannot be reached is a warning: serve would start, tokens would get 0999.
    let mut vars = psc.vars.clone();
    vars.insert("VD_PSC_JWKS_URL".into(), "https://localhost:1/certs".into());
    let config = visiodroits::config::Config::from_map(&vars).unwrap();
    let report = visiodroits::startup::check(&config).await.unwrap();
    assert!(
        report.contains("warning: Pro Santé Connect: cannot download https://localhost:1/certs"),
        "{report}"
    );
}

#[test]
fn bad_token_settings_stop_the_start_by_name() {
    let s = shared();
    let base = s.config_vars("unused");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("VD_PSC_ISSUER", "http://psc.example")],
            "VD_PSC_ISSUER",
        ),
        (
            vec![("VD_PSC_ISSUER", "https://psc.example")],
            "VD_PSC_AUDIENCE",
        ),
        (
            vec![
                ("VD_PSC_ISSUER", "https://psc.example"),
                ("VD_PSC_AUDIENCE", "vd"),
                ("VD_PSC_INTROSPECTION_URL", "https://psc.example/introspect"),
            ],
            "VD_PSC_INTROSPECTION_URL",
        ),
        (
            vec![
                ("VD_PSC_ISSUER", "https://psc.example"),
                ("VD_PSC_AUDIENCE", "vd"),
                ("VD_PSC_LEEWAY_SECS", "300"),
            ],
            "VD_PSC_LEEWAY_SECS",
        ),
        (vec![("VD_TOKEN_KEY", "/nowhere.key")], "VD_TOKEN_KEY"),
        (
            vec![
                ("VD_PSC_ISSUER", "https://psc.example"),
                ("VD_PSC_AUDIENCE", "vd"),
                ("VD_PSC_AUDIENCE_CLAIM", "sub"),
            ],
            "VD_PSC_AUDIENCE_CLAIM",
        ),
        (
            vec![
                ("VD_PSC_ISSUER", "https://psc.example"),
                ("VD_PSC_AUDIENCE", "vd"),
                ("VD_TOKEN_KEY", "/nowhere.key"),
                ("VD_TOKEN_ISSUER", "https://psc.example"),
                ("VD_TOKEN_CLIENTS", "a=CN=x"),
            ],
            "VD_TOKEN_ISSUER",
        ),
        (
            vec![
                ("VD_PSC_ISSUER", "https://psc.example"),
                ("VD_PSC_AUDIENCE", "vd"),
                ("VD_TOKEN_KEY", "/nowhere.key"),
                ("VD_TOKEN_ISSUER", "https://vd.example"),
                ("VD_TOKEN_CLIENTS", "logiciel-sans-sujet"),
            ],
            "VD_TOKEN_CLIENTS",
        ),
        (
            vec![
                ("VD_PSC_ISSUER", "https://psc.example"),
                ("VD_PSC_AUDIENCE", "vd"),
                ("VD_TOKEN_BINDING", "sometimes"),
            ],
            "VD_TOKEN_BINDING",
        ),
    ];
    for (set, name) in cases {
        let mut vars = base.clone();
        for (k, v) in &set {
            vars.insert(k.to_string(), v.to_string());
        }
        let err = visiodroits::config::Config::from_map(&vars).unwrap_err();
        assert_eq!(err.name, name, "{set:?}: {err}");
    }
    // A token key that is not EC P-256 stops the start by name too.
    let mut vars = base.clone();
    for (k, v) in [
        ("VD_PSC_ISSUER", "https://psc.example".to_string()),
        ("VD_PSC_AUDIENCE", "vd".to_string()),
        (
            "VD_TOKEN_KEY",
            s.pki_path("ttp/ttp.key").display().to_string(),
        ),
        ("VD_TOKEN_ISSUER", "https://vd.example".to_string()),
        ("VD_TOKEN_CLIENTS", format!("a={ORG_SUBJECT}")),
    ] {
        vars.insert(k.to_string(), v);
    }
    let config = visiodroits::config::Config::from_map(&vars).unwrap();
    let err = visiodroits::token::Tokens::load(&config.tokens).unwrap_err();
    assert!(
        format!("{err:#}").contains("VD_TOKEN_KEY: an EC P-256 key"),
        "{err:#}"
    );
}

#[tokio::test]
async fn without_a_structure_in_the_certificate_the_token_or_the_directory_names_it() {
    // An ORG profile whose OU gives something that is not a FINESS: the certificate binds no
    // structure, so the declared one must be the token's or the directory's.
    let psc = spawn(|v| {
        v.insert(
            "VD_PROFILE_ORG_OU".into(),
            r"^(?P<structure>1\d{9})$".into(),
        );
    })
    .await;
    let ask = |structure: &'static str, token: String| {
        let psc = &psc;
        async move {
            let mut conn = psc.conn(Some("org"), Some(&token)).await;
            let id = new_id();
            let req = Rights {
                ps_id: ps(),
                structure: Some(structure.into()),
                ..Rights::default()
            };
            let reply = conn
                .soap(SoapVersion::V12, req.xml(SoapVersion::V12, &id))
                .await
                .unwrap();
            (code(&reply), psc.audit(&id).await.5)
        }
    };
    let named = |structures: &[&str]| Mint {
        structures: structures.iter().map(|s| s.to_string()).collect(),
        ..bound("org")
    };
    // Named by the token's activities.
    let (c, source) = ask(OTHER, psc.issuer.mint(&named(&[OTHER]))).await;
    assert_eq!((c.as_str(), source.as_deref()), ("0000", Some("jeton")));
    // Not named by the token: the directory lists the pharmacist at the dev pharmacy only.
    let (c, source) = ask(DEV_FINESS, psc.issuer.mint(&named(&[]))).await;
    assert_eq!((c.as_str(), source.as_deref()), ("0000", Some("annuaire")));
    let (c, _) = ask(OTHER, psc.issuer.mint(&named(&[DEV_FINESS]))).await;
    assert_eq!(c, "8004");
}

/// Another pharmacy, where the dev pharmacist has no activity in the directory.
const OTHER: &str = visiodroits_devkit::pki::OTHER_FINESS;

#[tokio::test]
async fn replay_is_decided_across_instances() {
    // A second server on the first one's database: an instance that never saw a token still
    // knows it was used.
    let psc = spawn(|_| {}).await;
    let mut vars = psc.vars.clone();
    vars.insert("VD_INSTANCE_ID".into(), "test-2".into());
    let second =
        visiodroits::startup::Server::start(visiodroits::config::Config::from_map(&vars).unwrap())
            .await
            .unwrap();
    let connect_second = || async {
        SoapConnection::connect(
            second.addr,
            "localhost",
            crate::helpers::tls_for(Some("org"), visiodroits_client::Versions::Both),
        )
        .await
        .unwrap()
    };
    let on_second = |token: String| async move {
        let mut conn = connect_second().await;
        conn.set_bearer(Some(token));
        let id = new_id();
        let req = Rights {
            ps_id: ps(),
            ..Rights::default()
        };
        let reply = conn
            .soap(SoapVersion::V12, req.xml(SoapVersion::V12, &id))
            .await
            .unwrap();
        (reply, id)
    };

    let unbound = psc.issuer.mint(&Mint::new(&ps()));
    let mut conn = psc.conn(Some("org"), Some(&unbound)).await;
    assert_eq!(code(&psc.rights(&mut conn, &ps()).await.0), "0000");
    let (reply, id) = on_second(unbound.clone()).await;
    assert_invalid_token(&reply, "an unbound token used on the other instance");
    assert_eq!(psc.audit(&id).await.1.as_deref(), Some("token_replayed"));

    // A bound token works on both, as many times as asked.
    let token = psc.issuer.mint(&bound("org"));
    let mut conn = psc.conn(Some("org"), Some(&token)).await;
    assert_eq!(code(&psc.rights(&mut conn, &ps()).await.0), "0000");
    for _ in 0..2 {
        assert_eq!(code(&on_second(token.clone()).await.0), "0000");
    }

    // A PSC token exchanged on one instance cannot be exchanged on the other.
    let subject = psc.issuer.mint(&Mint::new(&ps()));
    let mut conn = psc.conn(Some("org"), None).await;
    conn.exchange_token(&subject).await.unwrap();
    let mut other = connect_second().await;
    let refused = other.exchange_token(&subject).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("invalid_grant"),
        "{refused:#}"
    );
}

#[tokio::test]
async fn an_issuer_out_of_reach_is_a_technical_error_and_is_not_hammered() {
    // A port nothing listens on: the JWKS cannot be downloaded.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}/certs",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let psc = spawn(|v| {
        v.insert("VD_PSC_JWKS_URL".into(), url);
        v.insert("VD_PSC_JWKS_REFETCH_SECS".into(), "60".into());
    })
    .await;
    let mut conn = psc
        .conn(Some("org"), Some(&psc.issuer.mint(&bound("org"))))
        .await;
    for attempt in 0..3 {
        let started = Instant::now();
        let (reply, _) = psc.rights(&mut conn, &ps()).await;
        assert_eq!(code(&reply), "0999", "attempt {attempt}: {}", reply.body);
        assert!(reply.headers.get("www-authenticate").is_none());
        if attempt > 0 {
            // Within the refetch interval the failure is answered without trying again.
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
    }
    // Cards are not affected.
    let mut card = psc.app.connect(Some("valid")).await.unwrap();
    let (reply, _) = psc.rights(&mut card, &ps()).await;
    assert_eq!(code(&reply), "0000", "{}", reply.body);
}

#[tokio::test]
async fn the_dev_issuer_command_serves_and_its_tokens_are_accepted() {
    use tokio::io::AsyncBufReadExt;
    let s = shared();
    let secret = s.base.join(format!(
        "dev-issuer-{}.secret",
        uuid::Uuid::new_v4().simple()
    ));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_visiodroits"))
        .args(["psc", "dev-issuer", "--listen", "127.0.0.1:0", "--pki"])
        .arg(&s.pki)
        .arg("--secret-file")
        .arg(&secret)
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // It prints the variables the server needs; read them.
    let mut vars = HashMap::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(10), out.next_line()).await
    {
        if let Some((k, v)) = line
            .split_once('=')
            .filter(|(k, _)| k.starts_with("VD_PSC_"))
        {
            vars.insert(k.to_string(), v.to_string());
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let issuer = vars
        .get("VD_PSC_ISSUER")
        .expect("the issuer is printed")
        .clone();
    assert!(std::fs::read_to_string(&secret).unwrap().len() >= 32);
    let app = TestApp::spawn_with(|v| v.extend(vars.clone())).await;

    let mint = tokio::process::Command::new(env!("CARGO_BIN_EXE_visiodroits"))
        .args([
            "psc",
            "mint",
            "--issuer",
            &issuer,
            "--ps-id",
            &ps(),
            "--opaque",
            "--ca",
        ])
        .arg(s.pki_path("ca/root.pem"))
        .arg("--bind")
        .arg(s.pki_path("clients/org.pem"))
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(
        mint.status.success(),
        "{}",
        String::from_utf8_lossy(&mint.stderr)
    );
    let token = String::from_utf8(mint.stdout).unwrap().trim().to_string();

    // An opaque token: the server introspects it at the command's issuer with the printed
    // client secret.
    let mut conn = app.connect(Some("org")).await.unwrap();
    conn.set_bearer(Some(token.clone()));
    let req = Rights {
        ps_id: ps(),
        ..Rights::default()
    };
    let reply = conn
        .soap(SoapVersion::V12, req.xml(SoapVersion::V12, &new_id()))
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    child.kill().await.unwrap();
    assert_not_logged(&[&token]);
}
