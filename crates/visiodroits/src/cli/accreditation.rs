//! `accreditation revoke`: the operator withdraws an AMC's commitment (fraud, error). The PEC's
//! status becomes `REVOQUEE` with the reason, what it consumed of the ceilings is given back, and
//! the revocation is audited (operation `accreditation revoke`); it can then be neither cancelled
//! nor revoked again (7010 for the pharmacy). The reason stays with the PEC, not in the audit,
//! which holds only fixed vocabulary.

use std::io::{BufRead, Write};

use sqlx::PgPool;

use crate::audit::AuditRecord;
use crate::domain::AccreditationNumber;
use crate::store::accreditation::{self, Revocation};

fn usage(message: String) -> anyhow::Error {
    super::usage("accreditation revoke", message)
}

/// Asks on the terminal; `true` only for an explicit yes. A revocation cannot be undone.
pub fn confirm(number: &str) -> anyhow::Result<bool> {
    print!("Revoke accreditation {number} for good (the AMC withdraws its commitment)? Type yes: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "yes" | "oui"))
}

/// The reason as kept: 1 to 150 characters (the wire's `motif`), and nothing that looks like a
/// patient's number — it is stored in `dispensation` and shown to the pharmacy.
fn checked_reason(reason: &str) -> anyhow::Result<&str> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 150 {
        return Err(usage("--motif: 1 to 150 characters".into()));
    }
    let longest_digits = reason
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if longest_digits >= 13 {
        return Err(usage(
            "--motif: no NIR or other patient identity (a run of 13 digits or more)".into(),
        ));
    }
    Ok(reason)
}

pub async fn revoke(pool: &PgPool, number: &str, reason: &str) -> anyhow::Result<String> {
    let accreditation = AccreditationNumber::parse(number)
        .ok_or_else(|| usage(format!("{number}: not an accreditation number")))?;
    let reason = checked_reason(reason)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_short_and_names_no_patient() {
        assert_eq!(
            checked_reason("  facturation en double ").unwrap(),
            "facturation en double"
        );
        assert!(checked_reason("").is_err());
        assert!(checked_reason(&"x".repeat(151)).is_err());
        assert!(checked_reason("fraude 1850578006084").is_err());
        assert!(checked_reason("ordonnance 2026-03-15, 12 boîtes").is_ok());
    }
}
