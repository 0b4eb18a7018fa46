//! The audit row, as an exchange (or the acceptor, or an admin command) builds it, and the one
//! statement that writes it. A row holds who, what and how it ended — never health data, NIR,
//! patients' names or dispensing lines.

use chrono::{DateTime, Utc};
use sqlx::Postgres;
use uuid::Uuid;

/// What the audit and the logs may know of a client certificate (no health data in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub subject: String,
    pub issuer: String,
    /// Serial, upper-case hex.
    pub serial: String,
    /// SHA-256 fingerprint of the DER, lower-case hex.
    pub fingerprint: String,
}

impl ClientCertificate {
    /// The SHA-256 of the certificate: what a bound token's `cnf.x5t#S256` names.
    pub fn sha256(&self) -> Option<Vec<u8>> {
        hex::decode(&self.fingerprint).ok()
    }
}

/// One audit row, as an exchange builds it.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    pub instance: String,
    pub operation: &'static str,
    pub code: &'static str,
    pub duration_ms: i32,
    pub request_id: Option<Uuid>,
    pub response_id: Option<Uuid>,
    pub client_time: Option<DateTime<Utc>>,
    pub peer: Option<String>,
    pub cert_subject: Option<String>,
    pub cert_issuer: Option<String>,
    pub cert_serial: Option<String>,
    pub cert_fingerprint: Option<String>,
    pub ps_id: Option<String>,
    pub structure: Option<String>,
    pub amc: Option<String>,
    pub dossier: Option<Uuid>,
    pub accreditation: Option<String>,
    /// A fixed-vocabulary reason (refusals), never request content.
    pub reason: Option<String>,
    /// The certificate profile that recognised the client certificate (`CPS`, `CPE`…).
    pub profile: Option<&'static str>,
    /// How the structure was established: `certificat`, `annuaire`, `declaree` (trusted by
    /// configuration) or `sans_certificat`.
    pub structure_source: Option<&'static str>,
    /// A bearer token's issuer, `jti` and SHA-256 (never the token).
    pub token_issuer: Option<String>,
    pub token_jti: Option<String>,
    pub token_sha256: Option<String>,
}

/// The columns of an audit row, in the order [`AuditRecord::bind`] binds them.
pub const COLUMNS: [&str; 23] = [
    "instance",
    "operation",
    "code",
    "duree_ms",
    "id_requete",
    "id_reponse",
    "horodatage_client",
    "adresse_pair",
    "cert_sujet",
    "cert_emetteur",
    "cert_serie",
    "cert_empreinte",
    "identifiant_ps",
    "numero_structure",
    "numero_amc",
    "numero_dossier",
    "numero_accreditation",
    "motif",
    "profil_certificat",
    "origine_structure",
    "jeton_emetteur",
    "jeton_jti",
    "jeton_empreinte",
];

/// The one statement that writes an audit row, after `data`: a `WITH` clause of the exchange's
/// own writes whose parameters are `$1` to `$data_params` (or nothing), so that the data and its
/// audit row go in one round trip. The row's parameters follow, bound by [`AuditRecord::bind`]
/// after the data's.
pub fn after(data: &str, data_params: usize) -> String {
    format!(
        "{data}\nINSERT INTO audit.journal ({})\nVALUES ({})",
        COLUMNS.join(", "),
        audit_params(data_params)
    )
}

/// [`after`], with the audit row written `FROM` and `WHERE` `gate` (e.g. `(SELECT count(*) AS n
/// FROM u) AS g WHERE …`): the data's writes that `gate` reads run before the row, and before
/// those it does not read.
pub fn after_gated(data: &str, data_params: usize, gate: &str) -> String {
    format!(
        "{data}\nINSERT INTO audit.journal ({})\nSELECT {}\n  FROM {gate}",
        COLUMNS.join(", "),
        audit_params(data_params)
    )
}

fn audit_params(data_params: usize) -> String {
    let values: Vec<String> = (1..=COLUMNS.len())
        .map(|i| format!("${}", data_params + i))
        .collect();
    values.join(", ")
}

impl AuditRecord {
    /// Fills the client certificate's columns.
    pub fn certificate(&mut self, cert: &ClientCertificate) {
        self.cert_subject = Some(cert.subject.clone());
        self.cert_issuer = Some(cert.issuer.clone());
        self.cert_serial = Some(cert.serial.clone());
        self.cert_fingerprint = Some(cert.fingerprint.clone());
    }

    /// Binds this row's parameters after those already bound to `q` (see [`after`]).
    pub fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        let rec = self;
        q.bind(&rec.instance)
            .bind(rec.operation)
            .bind(rec.code)
            .bind(rec.duration_ms)
            .bind(rec.request_id)
            .bind(rec.response_id)
            .bind(rec.client_time)
            .bind(&rec.peer)
            .bind(&rec.cert_subject)
            .bind(&rec.cert_issuer)
            .bind(&rec.cert_serial)
            .bind(&rec.cert_fingerprint)
            .bind(&rec.ps_id)
            .bind(&rec.structure)
            .bind(&rec.amc)
            .bind(rec.dossier)
            .bind(&rec.accreditation)
            .bind(&rec.reason)
            .bind(rec.profile)
            .bind(rec.structure_source)
            .bind(&rec.token_issuer)
            .bind(&rec.token_jti)
            .bind(&rec.token_sha256)
    }

    /// Fills the bearer token's columns.
    pub fn token(&mut self, issuer: Option<&str>, jti: Option<&str>, sha256: &str) {
        self.token_issuer = issuer.map(str::to_string);
        self.token_jti = jti.map(str::to_string);
        self.token_sha256 = Some(sha256.to_string());
    }
}
