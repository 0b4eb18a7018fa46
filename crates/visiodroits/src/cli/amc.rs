//! `amc list` and `amc set`: the AMCs hosted here, their services, contact and degraded-mode
//! delay, run without SQL. Each change is audited (operation `amc set`, the changed fields in
//! `motif`).

use std::fmt::Write;

use sqlx::PgPool;

use crate::audit::{self, AuditRecord};
use crate::domain::AmcNumber;
use crate::store::amc::{self, Amc, Contact, Service};

/// What `amc set` changes; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub name: Option<String>,
    pub services: Vec<(Service, bool)>,
    /// `Some("")` clears the field.
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    /// `Some(None)` clears the delay.
    pub grace_days: Option<Option<i16>>,
}

/// `CODE=on|off` (or `true|false`, `1|0`): a service and its state.
pub fn parse_service(s: &str) -> Result<(Service, bool), String> {
    let (code, state) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: CODE=on or CODE=off expected"))?;
    let service = Service::from_wire(&code.to_ascii_uppercase()).ok_or_else(|| {
        let codes: Vec<&str> = Service::ALL.iter().map(|s| s.wire()).collect();
        format!("{code}: unknown service (one of {})", codes.join(", "))
    })?;
    let on = match state.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "open" => true,
        "off" | "false" | "0" | "closed" => false,
        other => return Err(format!("{other}: on or off expected")),
    };
    Ok((service, on))
}

/// Every AMC, one block each.
pub async fn list(pool: &PgPool) -> anyhow::Result<String> {
    let mut conn = pool.acquire().await?;
    let amcs = amc::list(&mut conn, None).await?;
    let mut out = String::new();
    if amcs.is_empty() {
        out.push_str("no AMC hosted here\n");
    }
    for a in &amcs {
        let _ = writeln!(out, "{} {}", a.number, a.name);
        let services: Vec<String> = Service::ALL
            .iter()
            .map(|s| format!("{}={}", s.wire(), if a.is_open(*s) { "on" } else { "off" }))
            .collect();
        let _ = writeln!(out, "  services: {}", services.join(" "));
        let _ = writeln!(
            out,
            "  delai_grace_jours: {}",
            a.grace_days.map_or("-".to_string(), |d| d.to_string())
        );
        let c = &a.contact;
        let _ = writeln!(
            out,
            "  contact: {} / {} / {}",
            c.name.as_deref().unwrap_or("-"),
            c.email.as_deref().unwrap_or("-"),
            c.phone.as_deref().unwrap_or("-")
        );
    }
    Ok(out)
}

fn usage(message: String) -> anyhow::Error {
    super::usage("amc set", message)
}

fn check_length(what: &str, value: &Option<String>, max: usize) -> anyhow::Result<()> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(usage(format!("{what}: at most {max} characters")))
        }
        _ => Ok(()),
    }
}

/// Applies `changes` to the AMC `number` (created when unknown, which needs a name), in one
/// transaction with its audit row. What changed, as a sentence.
pub async fn set(pool: &PgPool, number: &str, changes: &Changes) -> anyhow::Result<String> {
    let number = AmcNumber::parse(number)
        .ok_or_else(|| usage(format!("{number}: an AMC number has 8 to 10 digits")))?;
    let number = number.as_str();
    if changes.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(usage("--nom: a name cannot be empty".into()));
    }
    check_length("--nom", &changes.name, 100)?;
    check_length("--contact-nom", &changes.contact_name, 100)?;
    check_length("--contact-email", &changes.contact_email, 100)?;
    check_length("--contact-telephone", &changes.contact_phone, 20)?;
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM identite.amc WHERE numero_amc = $1 FOR UPDATE")
        .bind(number)
        .execute(&mut *tx)
        .await?;
    let current = amc::list(&mut tx, Some(number)).await?.pop();
    let created = current.is_none();
    let before = match current {
        Some(a) => a,
        None => Amc {
            number: number.to_string(),
            name: changes.name.clone().ok_or_else(|| {
                anyhow::anyhow!("AMC {number} is not hosted here: give --nom to create it")
            })?,
            // A new AMC opens nothing until the operator says so.
            services: Service::ALL.iter().map(|s| (*s, false)).collect(),
            contact: Contact {
                name: None,
                email: None,
                phone: None,
            },
            grace_days: None,
        },
    };
    let mut after = before.clone();
    let mut changed: Vec<String> = Vec::new();
    if let Some(name) = &changes.name {
        if *name != before.name || created {
            after.name = name.clone();
            changed.push("nom".into());
        }
    }
    for (service, on) in &changes.services {
        let was = before.is_open(*service);
        after.services.retain(|(s, _)| s != service);
        after.services.push((*service, *on));
        if was != *on || created {
            changed.push(format!(
                "{}={}",
                service.wire(),
                if *on { "on" } else { "off" }
            ));
        }
    }
    let contact = [
        (
            "contact_nom",
            &changes.contact_name,
            &mut after.contact.name,
        ),
        (
            "contact_email",
            &changes.contact_email,
            &mut after.contact.email,
        ),
        (
            "contact_telephone",
            &changes.contact_phone,
            &mut after.contact.phone,
        ),
    ];
    for (what, new, field) in contact {
        if let Some(v) = new {
            let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
            if *field != v {
                *field = v;
                changed.push(what.into());
            }
        }
    }
    if let Some(days) = changes.grace_days {
        if after.grace_days != days {
            after.grace_days = days;
            changed.push(format!(
                "delai_grace_jours={}",
                days.map_or("-".to_string(), |d| d.to_string())
            ));
        }
    }
    if changed.is_empty() {
        tx.rollback().await?;
        return Ok(format!("AMC {number}: nothing to change"));
    }
    amc::upsert(&mut tx, &after).await?;
    let summary = format!(
        "{} {}",
        if created { "created:" } else { "changed:" },
        changed.join(", ")
    );
    audit::insert(
        &mut tx,
        &AuditRecord {
            instance: "admin".into(),
            operation: "amc set",
            code: "0000",
            duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            amc: Some(number.to_string()),
            reason: Some(summary.clone()),
            ..AuditRecord::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(format!("AMC {number} {summary}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_named_by_their_wire_code() {
        assert_eq!(
            parse_service("tarification=off"),
            Ok((Service::Tarification, false))
        );
        assert_eq!(
            parse_service("TARIFICATION_CHIFFREE=on"),
            Ok((Service::EncryptedTarification, true))
        );
        assert!(parse_service("TARIFICATION").is_err());
        assert!(parse_service("PAIEMENT=on")
            .unwrap_err()
            .contains("CONSULTATION"));
        assert!(parse_service("ANNULATION=maybe").is_err());
    }
}
