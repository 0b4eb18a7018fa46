//! `pairing DOSSIER`: the trusted third party's view — which beneficiary a dossier belongs to and
//! its tarifications. The one place where identity and dispensing data meet, run as
//! `vd_tiers_confiance` (the only role that may read the pairing table).

use crate::store::accreditation::Status;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Secret;
use crate::domain::Hundredths;

#[derive(sqlx::FromRow)]
struct Person {
    nom: String,
    prenom: String,
    nir: Option<String>,
    cle_nir: Option<String>,
    date_naissance: String,
    rang: i16,
    ref_externe: String,
    numero_contrat: String,
    numero_amc: String,
    structure: String,
    expiration: DateTime<Utc>,
    statut: String,
}

#[derive(sqlx::FromRow)]
struct Tarification {
    cree_le: DateTime<Utc>,
    mode: String,
    id_prescription: i32,
    chiffree: bool,
    total_facture: i64,
    total_amc: i64,
    numero_accreditation: Option<String>,
    statut: Option<String>,
}

/// The report for `dossier`, or an error when the dossier is unknown.
pub async fn report(url: &Secret<String>, dossier: &str) -> anyhow::Result<String> {
    let number = Uuid::parse_str(dossier)
        .map_err(|_| anyhow::anyhow!("{dossier} is not a dossier number (UUID)"))?;
    let pool = super::migrate::admin_pool(url).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE vd_tiers_confiance")
        .execute(&mut *tx)
        .await?;
    let person: Option<Person> = sqlx::query_as(
        "SELECT b.nom, b.prenom, b.nir, b.cle_nir, b.date_naissance, b.rang, b.ref_externe,
                c.numero_contrat, d.numero_amc, d.structure, d.expiration, d.statut
           FROM identite.appariement a
           JOIN identite.beneficiaire b ON b.id = a.beneficiaire_id
           JOIN identite.contrat c ON c.id = a.contrat_id
           JOIN dispensation.dossier d ON d.numero_dossier = a.numero_dossier
          WHERE a.numero_dossier = $1",
    )
    .bind(number)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(p) = person else {
        anyhow::bail!("dossier {number} is unknown (or its pairing was purged)");
    };
    let tarifications: Vec<Tarification> = sqlx::query_as(
        "SELECT cree_le, mode, id_prescription, chiffree, total_facture, total_amc, numero_accreditation, statut
           FROM dispensation.tarification WHERE numero_dossier = $1 ORDER BY id",
    )
    .bind(number)
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    pool.close().await;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "dossier {number}: AMC {}, structure {}, {} until {}",
        p.numero_amc,
        p.structure,
        p.statut,
        p.expiration.to_rfc3339()
    );
    let _ = writeln!(
        out,
        "beneficiary: {} {} (AMC reference {}), NIR {} {}, born {}, rank {}, contract {}",
        p.nom,
        p.prenom,
        p.ref_externe,
        p.nir.as_deref().unwrap_or("-"),
        p.cle_nir.as_deref().unwrap_or(""),
        p.date_naissance,
        p.rang,
        p.numero_contrat
    );
    let _ = writeln!(out, "tarifications: {}", tarifications.len());
    for t in tarifications {
        let _ = writeln!(
            out,
            "  {} {} prescription {}{}: billed {}, AMC {}{}{}",
            t.cree_le.to_rfc3339(),
            t.mode,
            t.id_prescription,
            if t.chiffree { " (encrypted)" } else { "" },
            Hundredths::from_hundredths(t.total_facture),
            Hundredths::from_hundredths(t.total_amc),
            t.numero_accreditation
                .map(|a| format!(", accreditation {a}"))
                .unwrap_or_default(),
            match t.statut.as_deref().and_then(Status::parse) {
                Some(Status::Cancelled) => ", cancelled",
                Some(Status::Revoked) => ", revoked",
                _ => "",
            },
        );
    }
    Ok(out)
}
