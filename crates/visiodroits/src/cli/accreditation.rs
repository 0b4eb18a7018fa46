//! `accreditation revoke`: the operator withdraws an AMC's commitment (fraud, error). The PEC's
//! status becomes `REVOQUEE` with the reason, what it consumed of the ceilings is given back, and
//! the revocation is audited (operation `accreditation revoke`); it can then be neither cancelled
//! nor revoked again (7010 for the pharmacy). The reason stays with the PEC, not in the audit,
//! which holds only fixed vocabulary.

use sqlx::PgPool;

use crate::audit::AuditRecord;
use crate::config::ConfigError;
use crate::domain::AccreditationNumber;
use crate::store::accreditation::{self, Revocation};

fn usage(message: String) -> anyhow::Error {
    ConfigError {
        name: "accreditation revoke",
        message,
    }
    .into()
}

pub async fn revoke(pool: &PgPool, number: &str, reason: &str) -> anyhow::Result<String> {
    let accreditation = AccreditationNumber::parse(number)
        .ok_or_else(|| usage(format!("{number}: not an accreditation number")))?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(usage("--motif: 1 to 500 characters".into()));
    }
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let mut audit = AuditRecord {
        instance: "admin".into(),
        operation: "accreditation revoke",
        code: "0000",
        accreditation: Some(accreditation.to_string()),
        reason: Some("revocation".into()),
        ..AuditRecord::default()
    };
    audit.duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    match accreditation::revoke(&mut tx, &accreditation, reason, &mut audit).await? {
        Revocation::Revoked(pec) => {
            tx.commit().await?;
            Ok(format!(
                "accreditation {accreditation} revoked (dossier {}, prescription {}, AMC {}); \
                 its ceiling consumption is given back",
                pec.dossier, pec.prescription, pec.amc
            ))
        }
        Revocation::Unknown => anyhow::bail!("accreditation {accreditation} is unknown"),
        Revocation::NotActive(status) => anyhow::bail!(
            "accreditation {accreditation} is {} already: nothing to revoke",
            status.as_str()
        ),
    }
}
