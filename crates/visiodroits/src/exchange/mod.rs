//! Exchanges: one module per operation — `request` (wire → domain types, every faulty field
//! collected), `response` (domain → wire), and a short handler in the spec's check order — and the
//! single place where an exchange's outcome becomes a response or a SOAP Fault, and an audit row.

pub(crate) mod caller;
pub mod cancellation;
pub mod consultation;
pub mod fields;
pub mod head;
pub mod retry;
pub mod rights;
pub mod services;
pub mod tarification;
pub mod wire;

use std::time::{Duration, Instant};

use tracing::Instrument;
use uuid::Uuid;

use crate::audit::{self, AuditRecord};
use crate::code::Code;
use crate::config::{RightsClientCert, Secret, StructureCheck};
use crate::soap::fault::Fault;
use crate::soap::{Envelope, SoapVersion};
use crate::store::Store;
use crate::tls::identity::{Connection, PeerIdentity};
use head::ServerInfo;

/// The operations of the WSDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Rights,
    Tarification,
    Cancellation,
    Consultation,
    Services,
}

impl Operation {
    /// From the body's first element (in the Visiodroits namespace).
    pub(crate) fn from_element(name: &str) -> Option<Self> {
        match name {
            "demande_droits" => Some(Operation::Rights),
            "demande_tarification" => Some(Operation::Tarification),
            "demande_annulation" => Some(Operation::Cancellation),
            "demande_accreditation" => Some(Operation::Consultation),
            "demande_services" => Some(Operation::Services),
            _ => None,
        }
    }

    /// The WSDL operation name (also the metrics label and the audit's `operation`).
    pub fn name(self) -> &'static str {
        match self {
            Operation::Rights => "DemandeDroits",
            Operation::Tarification => "DldTar",
            Operation::Cancellation => "AnnulationTar",
            Operation::Consultation => "ConsultationAccreditation",
            Operation::Services => "ServicesOuverts",
        }
    }

    /// The `soapAction` of the WSDL binding.
    pub fn action(self) -> &'static str {
        match self {
            Operation::Rights => "urn:visiodroits:v1:DemandeDroits",
            Operation::Tarification => "urn:visiodroits:v1:DldTar",
            Operation::Cancellation => "urn:visiodroits:v1:AnnulationTar",
            Operation::Consultation => "urn:visiodroits:v1:ConsultationAccreditation",
            Operation::Services => "urn:visiodroits:v1:ServicesOuverts",
        }
    }

    pub(crate) fn response_element(self) -> &'static str {
        match self {
            Operation::Rights => "fournit_droits",
            Operation::Tarification => "fournit_tarification",
            Operation::Cancellation => "fournit_annulation",
            Operation::Consultation => "fournit_accreditation",
            Operation::Services => "fournit_services",
        }
    }
}

/// What every exchange may use.
#[derive(Debug)]
pub struct Exchanges {
    pub store: Store,
    pub server: ServerInfo,
    /// DER of the trusted third party's certificate, when configured.
    pub ttp_cert_der: Option<Vec<u8>>,
    /// The trusted third party's key, where this server is the trusted third party (encrypted
    /// tarification open).
    pub decryptor: Option<tarification::encrypted::Decryptor>,
    /// Signs each PEC's proof.
    pub signer: tarification::proof::Signer,
    /// Whether the database's migration level is this binary's (exchanges run only then).
    pub(crate) schema: crate::store::schema::Gate,
    pub owner_code: String,
    pub instance_code: char,
    pub rights_client_cert: RightsClientCert,
    /// How a CPS card holder's declared structure is checked.
    pub structure_check: StructureCheck,
    pub dossier_ttl: Duration,
    pub pseudonymisation_key: Secret<Vec<u8>>,
    /// Bearer tokens: Pro Santé Connect and this server's own.
    pub tokens: std::sync::Arc<crate::token::Tokens>,
}

/// How an exchange ends when it does not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// 6000 in a normal response, one detail per faulty field.
    #[error("invalid request ({} fields)", .0.len())]
    Invalid(Vec<String>),
    /// Another business code in a normal response.
    #[error("business outcome {}", .0.as_str())]
    Business(Code),
    /// 8001–8004: a Fault, HTTP 403.
    #[error("access refused {}", .0.as_str())]
    Access(Code),
    /// A bearer token refused (the reason is the audit's `motif`): Fault 8002 with
    /// `WWW-Authenticate: Bearer error="invalid_token"`.
    #[error("token refused")]
    Token(crate::token::Refused),
    /// Anything else: 0999, logged once with its cause, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ExchangeError {
    fn from(e: sqlx::Error) -> Self {
        ExchangeError::Internal(e.into())
    }
}

/// One call being served: what the handlers read, and the audit row they complete.
pub struct Call<'a> {
    pub body: &'a crate::soap::Element,
    pub version: SoapVersion,
    pub conn: &'a Connection,
    pub request_id: Option<Uuid>,
    pub response_id: Uuid,
    pub audit: AuditRecord,
    /// Elements echoed after `code_reponse` in an error response (e.g. `numero_dossier`).
    pub echo: Vec<(&'static str, String)>,
    /// The bearer token of the request, verified (or why not); `None` without one.
    pub token: Option<Result<crate::token::TokenIdentity, crate::token::Refused>>,
    started: Instant,
}

/// What parsing a request saw, valid or not: noted in the audit row, and echoed in an error
/// response.
#[derive(Debug, Default)]
pub struct Seen {
    pub client_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub amc: Option<String>,
    pub dossier: Option<crate::domain::DossierNumber>,
    pub accreditation: Option<String>,
    pub echo: Vec<(&'static str, String)>,
}

impl Call<'_> {
    /// Notes what the parse saw; a request with faulty fields is 6000, one detail per field.
    pub fn take<T>(
        &mut self,
        (seen, parsed): (Seen, Result<T, Vec<String>>),
    ) -> Result<T, ExchangeError> {
        self.audit.client_time = seen.client_time.map(|t| t.with_timezone(&chrono::Utc));
        self.audit.amc = seen.amc.or(self.audit.amc.take());
        self.audit.dossier = seen.dossier.map(|d| d.uuid()).or(self.audit.dossier);
        self.audit.accreditation = seen.accreditation.or(self.audit.accreditation.take());
        self.echo.extend(seen.echo);
        parsed.map_err(ExchangeError::Invalid)
    }

    /// The audit row with its outcome and duration, ready to be written.
    pub(crate) fn audit_as(&mut self, code: Code) -> &AuditRecord {
        self.audit.code = code.as_str();
        self.audit.duration_ms =
            i32::try_from(self.started.elapsed().as_millis()).unwrap_or(i32::MAX);
        &self.audit
    }
}

/// The audit fields every row of a connection shares: peer, certificate, extracted identifiers.
pub(crate) fn audit_base(
    instance: &str,
    operation: &'static str,
    conn: &Connection,
) -> AuditRecord {
    let mut rec = AuditRecord {
        instance: instance.to_string(),
        operation,
        peer: Some(conn.peer.to_string()),
        ..AuditRecord::default()
    };
    if let Some(cert) = conn.identity.certificate() {
        rec.certificate(cert);
    }
    if let PeerIdentity::Certified(c) = &conn.identity {
        rec.profile = Some(c.profile.as_str());
        rec.ps_id = c.ps_id.clone();
        rec.structure = c.structure.clone();
    }
    rec
}

/// The outcome of one exchange, ready for HTTP.
#[derive(Debug)]
pub struct Outcome {
    pub status: http::StatusCode,
    pub body: String,
    pub code: Code,
    /// The `WWW-Authenticate` challenge of a refused or missing bearer token.
    pub challenge: Option<&'static str>,
}

/// The challenge of a refused token (RFC 6750 §3).
pub const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
/// The challenge where a token is needed and none came.
pub const TOKEN_NEEDED: &str = "Bearer";

/// The audit `motif` of an exchange's second attempt, after its database went away under the
/// first (whose own row may have committed too).
pub const RETRIED: &str = "database_lost_retried";

/// Runs the exchange named by the envelope's body for the caller of `conn`, in its own span
/// (`id_requete`, operation, instance; then code, duration and structure), closed by one
/// `exchange` event. Identity and health data are never fields.
pub async fn dispatch(
    ex: &Exchanges,
    env: &Envelope,
    op: Operation,
    conn: &Connection,
    bearer: Option<&str>,
) -> Outcome {
    let request_id = fields::request_id_of(&env.body);
    let span = tracing::info_span!(
        "exchange",
        id_requete = request_id.map(|u| u.to_string()).unwrap_or_default(),
        operation = op.name(),
        instance = ex.server.instance_id.as_str(),
        code = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        structure = tracing::field::Empty,
    );
    let mut call = Call {
        body: &env.body,
        version: env.version,
        conn,
        request_id,
        response_id: crate::domain::random::uuid_v4(),
        audit: audit_base(&ex.server.instance_id, op.name(), conn),
        echo: Vec::new(),
        token: None,
        started: Instant::now(),
    };
    call.audit.request_id = call.request_id;
    call.audit.response_id = Some(call.response_id);
    let outcome = async {
        match bearer.filter(|_| op != Operation::Services) {
            Some(raw) => match token(ex, op, &mut call, raw).await {
                Ok(()) => run(ex, op, &mut call).await,
                Err(e) => finish(ex, op, &mut call, Err(e)).await,
            },
            None => run(ex, op, &mut call).await,
        }
    }
    .instrument(span.clone())
    .await;
    span.record("code", outcome.code.as_str());
    // To the microsecond: `2.863`, not the float noise `2.8634009999999996`, whose long digit
    // runs a log reader (or the privacy tests' scans) could take for identifiers.
    span.record(
        "duration_ms",
        call.started.elapsed().as_micros() as f64 / 1000.0,
    );
    if let Some(structure) = &call.audit.structure {
        span.record("structure", structure.as_str());
    }
    span.in_scope(|| tracing::info!("exchange"));
    outcome
}

/// Admits the request's bearer token, in this order: a connection made with an ORG or CPE
/// certificate (a token is not even read on another); the token verified
/// ([`crate::token::Tokens::verify`]); bound to that certificate, where the operation needs it
/// or the token says so; not a replay. Its SHA-256, then its issuer and `jti`, go to the audit
/// row, and the verdict to the call. An issuer or a replay table that cannot be asked is a
/// technical failure.
async fn token(
    ex: &Exchanges,
    op: Operation,
    call: &mut Call<'_>,
    raw: &str,
) -> Result<(), ExchangeError> {
    use crate::tls::profile::CertProfile;
    use crate::token::{Refused, TokenError};
    let sha256 = crate::token::token_sha256(raw);
    call.audit.token(None, None, &sha256);
    let cert = match &call.conn.identity {
        PeerIdentity::Certified(c) if matches!(c.profile, CertProfile::Org | CertProfile::Cpe) => c,
        _ => {
            call.token = Some(Err(Refused("token_needs_org_certificate")));
            return Ok(());
        }
    };
    let t = match ex.tokens.verify(raw, &sha256).await {
        Ok(t) => t,
        Err(TokenError::Refused(r)) => {
            call.token = Some(Err(r));
            return Ok(());
        }
        Err(TokenError::Unavailable(e)) => return Err(ExchangeError::Internal(e)),
    };
    call.audit
        .token(Some(&t.issuer), t.jti.as_deref(), &t.sha256);
    let dispensing = op != Operation::Rights;
    let bound_required = dispensing && ex.tokens.binding == crate::config::TokenBinding::Required;
    let thumbprint = cert.cert.sha256();
    if let Err(r) = ex.tokens.bound(&t, thumbprint.as_deref(), bound_required) {
        call.token = Some(Err(r));
        return Ok(());
    }
    match ex.tokens.replay(&ex.store, &t, false).await {
        Ok(()) => call.token = Some(Ok(t)),
        Err(TokenError::Refused(r)) => call.token = Some(Err(r)),
        Err(TokenError::Unavailable(e)) => return Err(ExchangeError::Internal(e)),
    }
    Ok(())
}

/// The operation's handler, then its outcome as a response and, for anything but a success
/// (whose handler wrote it in its own transaction), the audit row.
///
/// A handler whose database went away under it (a failover, a cut connection) runs once more on
/// a fresh connection, possibly to another host. That is safe for every operation: the lookups
/// and `DEVIS` write nothing that matters twice, and a `PEC` or a cancellation that did commit
/// is found under its `id_requete` and answered from its stored response, never committed twice.
async fn run(ex: &Exchanges, op: Operation, call: &mut Call<'_>) -> Outcome {
    let (audit, echo) = (call.audit.clone(), call.echo.clone());
    let generation = ex.store.generation();
    let mut result = handle(ex, op, call).await;
    if let Err(ExchangeError::Internal(e)) = &result {
        if e.downcast_ref::<sqlx::Error>()
            .is_some_and(|e| ex.store.lost(e, generation))
        {
            tracing::debug!(error = %e, "database lost under the exchange: trying once more");
            call.audit = audit;
            call.echo = echo;
            // The second attempt's audit row says so: the first may have committed its own.
            call.audit.reason = Some(RETRIED.to_string());
            result = handle(ex, op, call).await;
        }
    }
    finish(ex, op, call, result).await
}

async fn handle(
    ex: &Exchanges,
    op: Operation,
    call: &mut Call<'_>,
) -> Result<String, ExchangeError> {
    ex.schema
        .admit(&ex.store)
        .await
        .map_err(ExchangeError::Internal)?;
    match op {
        Operation::Services => services::handle(ex, call).await,
        Operation::Rights => rights::handle(ex, call).await,
        Operation::Tarification => tarification::handle(ex, call).await,
        Operation::Cancellation => cancellation::handle(ex, call).await,
        Operation::Consultation => consultation::handle(ex, call).await,
    }
}

/// The handler's result as a response; anything but a success gets its audit row here.
async fn finish(
    ex: &Exchanges,
    op: Operation,
    call: &mut Call<'_>,
    result: Result<String, ExchangeError>,
) -> Outcome {
    let outcome = match result {
        Ok(body) => {
            return Outcome {
                status: http::StatusCode::OK,
                body,
                code: Code::Ok,
                challenge: None,
            }
        }
        Err(ExchangeError::Invalid(details)) => {
            error_response(ex, op, call, Code::InvalidRequest, &details)
        }
        Err(ExchangeError::Business(code)) => error_response(ex, op, call, code, &[]),
        Err(ExchangeError::Access(code)) => {
            let mut f = fault(call.version, code);
            // An organisation's certificate without a token, where tokens are accepted.
            if code == Code::CertificateRequired
                && ex.tokens.enabled()
                && call.conn.identity.profile() == Some(crate::tls::profile::CertProfile::Org)
                && call.token.is_none()
            {
                f.challenge = Some(TOKEN_NEEDED);
            }
            f
        }
        Err(ExchangeError::Token(reason)) => {
            call.audit.reason = Some(reason.0.to_string());
            Outcome {
                challenge: Some(INVALID_TOKEN),
                ..fault(call.version, Code::CertificateRequired)
            }
        }
        Err(ExchangeError::Internal(e)) => {
            tracing::error!(error = format!("{e:#}"), "exchange failed");
            fault(call.version, Code::Technical)
        }
    };
    // Business errors and refusals wrote nothing else: their audit row stands alone.
    let rec = call.audit_as(outcome.code).clone();
    audit::write_alone(&ex.store, rec).await;
    outcome
}

/// A SOAP Fault for `code`.
fn fault(version: SoapVersion, code: Code) -> Outcome {
    let f = Fault::for_code(code);
    Outcome {
        status: f.http_status(version),
        body: f.to_xml(version),
        code,
        challenge: None,
    }
}

/// A normal response carrying a business code (no payload beyond the head).
fn error_response(
    ex: &Exchanges,
    op: Operation,
    call: &Call<'_>,
    code: Code,
    details: &[String],
) -> Outcome {
    let body = crate::soap::writer::envelope(call.version, |x| {
        x.open(op.response_element());
        head::write_head(
            x,
            &ex.server,
            call.request_id,
            call.response_id,
            code,
            details,
        );
        for (name, value) in &call.echo {
            x.leaf(name, value);
        }
        x.close(op.response_element());
    });
    Outcome {
        status: http::StatusCode::OK,
        body,
        code,
        challenge: None,
    }
}
