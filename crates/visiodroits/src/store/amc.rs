//! AMCs and their services (schema `identite`): read by `ServicesOuverts` (role `vd_droits`),
//! written by the operator's `amc set` (owner; a trigger copies the service flags into
//! `dispensation` for tarification).

use sqlx::PgConnection;

/// A service an AMC opens or closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Rights,
    Tarification,
    /// Encrypted tarification: effective only where this server also holds the trusted third
    /// party's key.
    EncryptedTarification,
    Cancellation,
    Consultation,
}

impl Service {
    /// Every service, in the order `ServicesOuverts` lists them.
    pub const ALL: [Service; 5] = [
        Service::Rights,
        Service::Tarification,
        Service::EncryptedTarification,
        Service::Cancellation,
        Service::Consultation,
    ];

    pub fn wire(self) -> &'static str {
        match self {
            Service::Rights => "DROITS",
            Service::Tarification => "TARIFICATION",
            Service::EncryptedTarification => "TARIFICATION_CHIFFREE",
            Service::Cancellation => "ANNULATION",
            Service::Consultation => "CONSULTATION",
        }
    }

    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.wire() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// An AMC as `ServicesOuverts` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amc {
    pub number: String,
    pub name: String,
    pub services: Vec<(Service, bool)>,
    pub contact: Contact,
    /// Degraded mode: days after its last accredited rights a pharmacy may still bill on them
    /// when this server is unreachable (0..30), if the AMC set it.
    pub grace_days: Option<i16>,
}

impl Amc {
    pub(crate) fn is_open(&self, service: Service) -> bool {
        self.services.iter().any(|(s, on)| *s == service && *on)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    numero_amc: String,
    nom: String,
    contact_nom: Option<String>,
    contact_email: Option<String>,
    contact_telephone: Option<String>,
    delai_grace_jours: Option<i16>,
    services: Vec<String>,
    actifs: Vec<bool>,
}

/// The AMCs hosted here (all, or the one numbered `only`), ordered by number, in one round trip.
pub(crate) async fn list(tx: &mut PgConnection, only: Option<&str>) -> sqlx::Result<Vec<Amc>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.numero_amc, a.nom, a.contact_nom, a.contact_email, a.contact_telephone,
                a.delai_grace_jours,
                coalesce(array_agg(s.service ORDER BY s.service) FILTER (WHERE s.service IS NOT NULL), '{}') AS services,
                coalesce(array_agg(s.actif ORDER BY s.service) FILTER (WHERE s.service IS NOT NULL), '{}') AS actifs
           FROM identite.amc a
           LEFT JOIN identite.amc_service s USING (numero_amc)
          WHERE $1::text IS NULL OR a.numero_amc = $1
          GROUP BY a.numero_amc
          ORDER BY a.numero_amc",
    )
    .bind(only)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Amc {
            number: r.numero_amc,
            name: r.nom,
            services: r
                .services
                .iter()
                .zip(r.actifs)
                .filter_map(|(s, on)| Some((Service::from_wire(s)?, on)))
                .collect(),
            contact: Contact {
                name: r.contact_nom,
                email: r.contact_email,
                phone: r.contact_telephone,
            },
            grace_days: r.delai_grace_jours,
        })
        .collect())
}

/// Creates or updates an AMC and its services (`amc set`, demo data, tests).
pub async fn upsert(tx: &mut PgConnection, amc: &Amc) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO identite.amc (numero_amc, nom, contact_nom, contact_email, contact_telephone,
             delai_grace_jours)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (numero_amc) DO UPDATE SET nom = EXCLUDED.nom,
             contact_nom = EXCLUDED.contact_nom, contact_email = EXCLUDED.contact_email,
             contact_telephone = EXCLUDED.contact_telephone,
             delai_grace_jours = EXCLUDED.delai_grace_jours, updated_at = now()",
    )
    .bind(&amc.number)
    .bind(&amc.name)
    .bind(&amc.contact.name)
    .bind(&amc.contact.email)
    .bind(&amc.contact.phone)
    .bind(amc.grace_days)
    .execute(&mut *tx)
    .await?;
    for (service, on) in &amc.services {
        sqlx::query(
            "INSERT INTO identite.amc_service (numero_amc, service, actif) VALUES ($1, $2, $3)
             ON CONFLICT (numero_amc, service) DO UPDATE SET actif = EXCLUDED.actif",
        )
        .bind(&amc.number)
        .bind(service.wire())
        .bind(on)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
