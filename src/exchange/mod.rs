//! Exchanges: one module per operation (wire ↔ domain, then domain and store), and the single
//! place where an exchange's outcome becomes a response or a SOAP Fault.

pub mod common;
pub mod services;

use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use crate::code::Code;
use crate::soap::fault::Fault;
use crate::soap::{Envelope, SoapVersion};
use crate::store::Store;
use crate::tls::identity::{Connection, PeerIdentity};
use common::ServerInfo;

/// The operations of the WSDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Rights,
    Tarification,
    Cancellation,
    Services,
}

impl Operation {
    /// From the body's first element (in the Visiodroits namespace).
    pub fn from_element(name: &str) -> Option<Self> {
        match name {
            "demande_droits" => Some(Operation::Rights),
            "demande_tarification" => Some(Operation::Tarification),
            "demande_annulation" => Some(Operation::Cancellation),
            "demande_services" => Some(Operation::Services),
            _ => None,
        }
    }

    /// The WSDL operation name (also the metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Operation::Rights => "DemandeDroits",
            Operation::Tarification => "DldTar",
            Operation::Cancellation => "AnnulationTar",
            Operation::Services => "ServicesOuverts",
        }
    }

    /// The `soapAction` of the WSDL binding.
    pub fn action(self) -> &'static str {
        match self {
            Operation::Rights => "urn:visiodroits:v1:DemandeDroits",
            Operation::Tarification => "urn:visiodroits:v1:DldTar",
            Operation::Cancellation => "urn:visiodroits:v1:AnnulationTar",
            Operation::Services => "urn:visiodroits:v1:ServicesOuverts",
        }
    }

    pub fn response_element(self) -> &'static str {
        match self {
            Operation::Rights => "fournit_droits",
            Operation::Tarification => "fournit_tarification",
            Operation::Cancellation => "fournit_annulation",
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
    /// Whether this server holds the trusted third party's key (encrypted tarification open).
    pub ttp_key_loaded: bool,
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
    /// 8001–8003: a Fault, HTTP 403.
    #[error("access refused {}", .0.as_str())]
    Access(Code),
    /// Anything else: 0999, logged once with its cause, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ExchangeError {
    fn from(e: sqlx::Error) -> Self {
        ExchangeError::Internal(e.into())
    }
}

/// The outcome of one exchange, ready for HTTP.
#[derive(Debug)]
pub struct Outcome {
    pub status: http::StatusCode,
    pub body: String,
    pub code: Code,
}

/// Runs the exchange named by the envelope's body for the caller of `conn`.
pub async fn dispatch(ex: &Exchanges, env: &Envelope, op: Operation, conn: &Connection) -> Outcome {
    let started = Instant::now();
    let request_id = common::request_id_of(&env.body);
    let response_id = Uuid::new_v4();

    let result = match op {
        Operation::Services => {
            services::handle(ex, &env.body, env.version, request_id, response_id).await
        }
        Operation::Rights | Operation::Tarification | Operation::Cancellation => {
            Err(ExchangeError::Invalid(vec![format!(
                "{}: opération non ouverte sur ce serveur",
                op.name()
            )]))
        }
    };

    let outcome = match result {
        Ok(body) => Outcome {
            status: http::StatusCode::OK,
            body,
            code: Code::Ok,
        },
        Err(ExchangeError::Invalid(details)) => error_response(
            ex,
            op,
            env.version,
            request_id,
            response_id,
            Code::InvalidRequest,
            &details,
        ),
        Err(ExchangeError::Business(code)) => {
            error_response(ex, op, env.version, request_id, response_id, code, &[])
        }
        Err(ExchangeError::Access(code)) => {
            let f = Fault::for_code(code);
            Outcome {
                status: f.http_status(),
                body: f.to_xml(env.version),
                code,
            }
        }
        Err(ExchangeError::Internal(e)) => {
            tracing::error!(
                operation = op.name(),
                error = format!("{e:#}"),
                "exchange failed"
            );
            let f = Fault::for_code(Code::Technical);
            Outcome {
                status: f.http_status(),
                body: f.to_xml(env.version),
                code: Code::Technical,
            }
        }
    };
    let structure = match &conn.identity {
        PeerIdentity::Professional { structure_id, .. } => structure_id.as_str(),
        _ => "",
    };
    tracing::info!(
        id_requete = request_id.map(|u| u.to_string()).unwrap_or_default(),
        operation = op.name(),
        code = outcome.code.as_str(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        structure,
        "exchange"
    );
    outcome
}

/// A normal response carrying a business code (no payload beyond the head).
fn error_response(
    ex: &Exchanges,
    op: Operation,
    version: SoapVersion,
    request_id: Option<Uuid>,
    response_id: Uuid,
    code: Code,
    details: &[String],
) -> Outcome {
    let body = crate::soap::writer::envelope(version, |x| {
        x.open(op.response_element());
        common::write_head(x, &ex.server, request_id, response_id, code, details);
        x.close(op.response_element());
    });
    Outcome {
        status: http::StatusCode::OK,
        body,
        code,
    }
}

/// Shared handle used by the HTTP layer.
pub type SharedExchanges = Arc<Exchanges>;
