//! The professional directory (`annuaire`): the check an exchange makes for a CPS card, and the
//! import that replaces the whole directory in one transaction.

use sqlx::{PgConnection, PgPool};

/// What the directory says of a professional at a structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exercises {
    /// An activity of the PS at this structure (FINESS site, FINESS EJ or SIRET site).
    Yes,
    No,
    /// No directory was ever loaded.
    NotLoaded,
}

/// The check of an exchange, in its transaction (`vd_droits` or `vd_tarif`): one round trip.
pub(crate) const EXERCISES: &str = "SELECT EXISTS (SELECT 1 FROM annuaire.chargement),
    EXISTS (SELECT 1 FROM annuaire.activite
             WHERE identifiant_pp = $1 AND $2 IN (finess_site, finess_ej, siret_site))";

pub(crate) async fn exercises(
    tx: &mut PgConnection,
    ps_id: &str,
    structure: &str,
) -> sqlx::Result<Exercises> {
    let (loaded, found): (bool, bool) = sqlx::query_as(EXERCISES)
        .bind(ps_id)
        .bind(structure)
        .fetch_one(&mut *tx)
        .await?;
    Ok(match (loaded, found) {
        (false, _) => Exercises::NotLoaded,
        (true, true) => Exercises::Yes,
        (true, false) => Exercises::No,
    })
}

/// The load in force: (file name, activities, loaded at), for `/readyz` and reports.
pub async fn loaded(
    tx: &mut PgConnection,
) -> sqlx::Result<Option<(String, i64, chrono::DateTime<chrono::Utc>)>> {
    sqlx::query_as("SELECT fichier, activites, charge_le FROM annuaire.chargement")
        .fetch_optional(&mut *tx)
        .await
}

/// One activity, validated, as written by COPY (text format; its fields hold no tab, newline
/// or backslash, see `cli::annuaire`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Activity {
    pub ps_id: String,
    pub profession: Option<String>,
    pub finess_site: Option<String>,
    pub finess_ej: Option<String>,
    pub siret_site: Option<String>,
}

impl Activity {
    fn copy_row(&self, out: &mut Vec<u8>) {
        let field = |out: &mut Vec<u8>, v: Option<&str>| match v {
            Some(v) => out.extend_from_slice(v.as_bytes()),
            None => out.extend_from_slice(b"\\N"),
        };
        field(out, Some(&self.ps_id));
        for v in [
            &self.profession,
            &self.finess_site,
            &self.finess_ej,
            &self.siret_site,
        ] {
            out.push(b'\t');
            field(out, v.as_deref());
        }
        out.push(b'\n');
    }
}

/// A new directory being written; [`Replacement::commit`] puts it in place of the old one.
pub(crate) struct Replacement {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    buffer: Vec<u8>,
}

const COPY_CHUNK: usize = 1 << 20;

impl Replacement {
    /// Starts the replacement (an owner connection). Exchanges keep reading the directory in
    /// force until the commit.
    pub(crate) async fn begin(pool: &PgPool) -> anyhow::Result<Self> {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "CREATE TABLE annuaire.activite_nouvelle
                 (LIKE annuaire.activite INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        )
        .execute(&mut *tx)
        .await?;
        Ok(Replacement {
            tx,
            buffer: Vec::with_capacity(COPY_CHUNK + 4096),
        })
    }

    /// Adds activities (buffered, sent by chunks of about 1 MiB).
    pub(crate) async fn add(&mut self, activities: &[Activity]) -> anyhow::Result<()> {
        for a in activities {
            a.copy_row(&mut self.buffer);
        }
        if self.buffer.len() >= COPY_CHUNK {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> anyhow::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        // One COPY per chunk, in the replacement's transaction.
        let mut copy = self
            .tx
            .copy_in_raw(
                "COPY annuaire.activite_nouvelle
                     (identifiant_pp, code_profession, finess_site, finess_ej, siret_site)
                 FROM STDIN (FORMAT text)",
            )
            .await?;
        copy.send(self.buffer.as_slice()).await?;
        copy.finish().await?;
        self.buffer.clear();
        Ok(())
    }

    /// Indexes the new directory, drops the old one and puts the new one in its place, with its
    /// grants and the load's record, then commits: exchanges see the old directory or the new
    /// one, never a mix.
    pub(crate) async fn commit(
        mut self,
        file: &str,
        lines: u64,
        activities: u64,
        rejected: u64,
    ) -> anyhow::Result<()> {
        self.send().await?;
        let tx = &mut self.tx;
        for statement in [
            "CREATE INDEX activite_nouvelle_pp ON annuaire.activite_nouvelle (identifiant_pp)",
            "ANALYZE annuaire.activite_nouvelle",
            "DROP TABLE annuaire.activite",
            "ALTER TABLE annuaire.activite_nouvelle RENAME TO activite",
            "ALTER INDEX annuaire.activite_nouvelle_pp RENAME TO activite_identifiant_pp",
            "GRANT SELECT ON annuaire.activite TO vd_droits, vd_tarif",
        ] {
            sqlx::query(statement).execute(&mut **tx).await?;
        }
        sqlx::query(
            "INSERT INTO annuaire.chargement (fichier, lignes, activites, rejetees)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (unique_ligne) DO UPDATE SET charge_le = now(),
                 fichier = EXCLUDED.fichier, lignes = EXCLUDED.lignes,
                 activites = EXCLUDED.activites, rejetees = EXCLUDED.rejetees",
        )
        .bind(file)
        .bind(lines as i64)
        .bind(activities as i64)
        .bind(rejected as i64)
        .execute(&mut **tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
