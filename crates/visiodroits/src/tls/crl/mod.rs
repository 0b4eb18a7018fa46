//! The CRLs in force: each one verified and assigned to the configured CA whose name *and* key
//! issued it, then looked up per certificate of a verified path (spec/security.md "Revocation is
//! checked on the path that was verified").
//!
//! A CA may have several CRLs: one per scope (an IssuingDistributionPoint restricting it to
//! end-entity or CA certificates, or to a distribution point), each a complete (base) CRL that a
//! delta CRL may complete, never replace. Two CAs with one name (a re-keyed intermediate) have
//! their own CRLs and never mask each other.

mod load;
pub mod parse;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::trust::{CaId, CaSet};
pub(crate) use load::verify_crl;
use load::{load_file, Loaded};
pub use parse::Scope;

/// One loaded, verified CRL.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    /// The CA that signed it.
    pub ca: CaId,
    pub issuer: String,
    pub issuer_der: Vec<u8>,
    /// A delta CRL, completing the base CRL of this number.
    pub delta_of: Option<Vec<u8>>,
    pub number: Option<Vec<u8>>,
    pub scope: Scope,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// `nextUpdate`, or `thisUpdate` + the refresh period when the CRL names none.
    pub valid_until: i64,
    pub entries: usize,
    pub source: PathBuf,
}

impl CrlInfo {
    fn fresh(&self, now: i64, grace: i64) -> bool {
        now <= self.valid_until.saturating_add(grace)
    }

    /// Whether `self` was issued after `other` (CRL numbers when both have one).
    fn newer_than(&self, other: &CrlInfo) -> bool {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) => parse::cmp_number(a, b).is_gt(),
            _ => self.this_update > other.this_update,
        }
    }

    /// `base` or `delta of N`, for reports.
    pub fn kind(&self) -> String {
        match &self.delta_of {
            None => "base".into(),
            Some(n) => format!("delta of {}", hex::encode(n)),
        }
    }
}

/// How fresh the CRLs of a CA (or of one certificate) are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    Fresh,
    Stale,
    Missing,
}

/// What the CRLs say of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked,
    /// No CRL of its issuer covers it.
    Missing,
    /// The CRLs that cover it are past their nextUpdate (+ grace).
    Stale,
}

/// A base CRL of one scope and the delta completing it, if any.
#[derive(Debug, Clone)]
struct Partition {
    base: Loaded,
    delta: Option<Loaded>,
}

impl Partition {
    fn revoked(&self, serial: &[u8]) -> bool {
        if let Some(d) = &self.delta {
            if d.released.contains(serial) {
                return false;
            }
            if d.revoked.contains(serial) {
                return true;
            }
        }
        self.base.revoked.contains(serial)
    }

    fn fresh(&self, now: i64, grace: i64) -> bool {
        self.base.info.fresh(now, grace)
            && self.delta.as_ref().is_none_or(|d| d.info.fresh(now, grace))
    }
}

/// Whether a delta completes a base: it was built on this base or an older one, and is newer.
fn completes(delta: &CrlInfo, base: &CrlInfo) -> Result<(), String> {
    let (Some(of), Some(base_number), Some(number)) =
        (&delta.delta_of, &base.number, &delta.number)
    else {
        return Err("a delta CRL and its base must both carry a CRL number".into());
    };
    if parse::cmp_number(of, base_number).is_gt() {
        return Err(format!(
            "completes base CRL {} but the base in force is {}",
            hex::encode(of),
            hex::encode(base_number)
        ));
    }
    if parse::cmp_number(number, base_number).is_le() {
        return Err("older than its base CRL".into());
    }
    Ok(())
}

/// The CRLs in force.
#[derive(Debug, Default)]
pub struct CrlSet {
    /// Every CRL in force (bases and deltas), for reports and metrics.
    pub crls: Vec<CrlInfo>,
    partitions: HashMap<CaId, Vec<Partition>>,
    /// Files that were refused, with the reason (logged and audited by the caller).
    pub refused: Vec<String>,
    /// The files that were refused: the CRLs they held before stay in force.
    refused_files: HashSet<PathBuf>,
}

/// The CRL files of `dir`, sorted: regular files whose name does not start with a dot (a CRL
/// being written is written under such a name, see [`write_atomically`], and renamed into place
/// when complete).
pub fn crl_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The CRL directory's write convention, shared with the dev PKI.
pub use visiodroits_wire::fs::write_atomically;

impl CrlSet {
    /// Loads every CRL (PEM or DER) in `dir` (the files of [`crl_files`]). A CRL that does not
    /// verify with a configured CA of its issuer's name, is not understood, or is a delta that
    /// completes no base in force is refused and reported in `refused`. A CRL without
    /// `nextUpdate` is current for `refresh` seconds after its `thisUpdate`.
    pub(crate) fn load_dir(dir: &Path, cas: &CaSet, refresh: i64) -> anyhow::Result<Self> {
        let mut set = CrlSet::default();
        let entries = crl_files(dir)
            .with_context(|| format!("cannot read the CRL directory {}", dir.display()))?;
        let mut loaded = Vec::new();
        for path in entries {
            match load_file(&path, cas, refresh) {
                Ok(list) => loaded.extend(list),
                Err(e) => {
                    set.refused.push(format!("{}: {e:#}", path.display()));
                    set.refused_files.insert(path);
                }
            }
        }
        set.place(loaded);
        Ok(set)
    }

    /// Puts verified CRLs in their partitions: the newest base per (CA, scope), then the newest
    /// delta that completes it.
    fn place(&mut self, loaded: Vec<Loaded>) {
        let (bases, deltas): (Vec<Loaded>, Vec<Loaded>) =
            loaded.into_iter().partition(|l| l.info.delta_of.is_none());
        for base in bases {
            let parts = self.partitions.entry(base.info.ca).or_default();
            match parts
                .iter_mut()
                .find(|p| p.base.info.scope == base.info.scope)
            {
                Some(p) if base.info.newer_than(&p.base.info) => p.base = base,
                Some(_) => {}
                None => parts.push(Partition { base, delta: None }),
            }
        }
        for delta in deltas {
            let part = self.partitions.get_mut(&delta.info.ca).and_then(|parts| {
                parts
                    .iter_mut()
                    .find(|p| p.base.info.scope == delta.info.scope)
            });
            let Some(part) = part else {
                self.refused.push(format!(
                    "{}: delta CRL of {} without a base CRL in force",
                    delta.info.source.display(),
                    delta.info.issuer
                ));
                continue;
            };
            if let Err(why) = completes(&delta.info, &part.base.info) {
                self.refused.push(format!(
                    "{}: delta CRL of {}: {why}; the base CRL alone is used",
                    delta.info.source.display(),
                    delta.info.issuer
                ));
                continue;
            }
            if part
                .delta
                .as_ref()
                .is_none_or(|d| delta.info.newer_than(&d.info))
            {
                part.delta = Some(delta);
            }
        }
        self.index();
    }

    /// Rebuilds the report list from the partitions.
    fn index(&mut self) {
        self.crls = self
            .partitions
            .values()
            .flatten()
            .flat_map(|p| std::iter::once(&p.base).chain(p.delta.as_ref()))
            .map(|l| l.info.clone())
            .collect();
        self.crls.sort_by(|a, b| {
            (&a.issuer, a.ca, a.delta_of.is_some()).cmp(&(&b.issuer, b.ca, b.delta_of.is_some()))
        });
    }

    /// After a reload: keeps the previous CRLs that came from a file now refused (a CRL being
    /// replaced by a broken or forged file stays in force), and the previous ones when the new
    /// are older (a replayed or stale download), for the CAs still configured in `cas`.
    /// Fail-closed stays: a CA whose file was simply removed loses its CRL.
    pub(crate) fn keep_from(&mut self, previous: &CrlSet, cas: &CaSet) {
        for (ca, parts) in &previous.partitions {
            if cas.by_id(ca).is_none() {
                continue;
            }
            for old in parts {
                let refused = |l: &Loaded| self.refused_files.contains(&l.info.source);
                let keep_base = refused(&old.base);
                let keep_delta = old.delta.as_ref().filter(|d| refused(d)).cloned();
                let current = self.partitions.entry(*ca).or_default();
                match current
                    .iter_mut()
                    .find(|p| p.base.info.scope == old.base.info.scope)
                {
                    None if keep_base => current.push(old.clone()),
                    None => {}
                    Some(p) if old.base.info.newer_than(&p.base.info) => {
                        self.refused.push(format!(
                            "{}: older than the CRL in force for {} ({}); the latter is kept",
                            p.base.info.source.display(),
                            old.base.info.issuer,
                            old.base.info.scope.describe()
                        ));
                        *p = old.clone();
                    }
                    Some(p) => {
                        // The delta of a base still in force, whose new file was refused.
                        if let Some(d) = keep_delta {
                            let newer = p.delta.as_ref().is_none_or(|n| d.info.newer_than(&n.info));
                            if newer && completes(&d.info, &p.base.info).is_ok() {
                                p.delta = Some(d);
                            }
                        }
                    }
                }
            }
        }
        self.partitions.retain(|_, parts| !parts.is_empty());
        self.index();
    }

    /// The CRLs of `previous` whose CA is still configured (a reload that could not read the
    /// directory keeps them).
    pub(crate) fn restricted(previous: &CrlSet, cas: &CaSet) -> CrlSet {
        let mut set = CrlSet {
            partitions: previous
                .partitions
                .iter()
                .filter(|(ca, _)| cas.by_id(ca).is_some())
                .map(|(ca, parts)| (*ca, parts.clone()))
                .collect(),
            ..CrlSet::default()
        };
        set.index();
        set
    }

    /// What the CRLs of `issuer` say of the certificate `serial` (a CA certificate or not, with
    /// these CRL distribution point URIs) at `now`, with `grace` seconds after nextUpdate.
    /// A revocation listed by any CRL covering it counts, fresh or not.
    pub fn status(
        &self,
        issuer: &CaId,
        serial: &[u8],
        is_ca: bool,
        uris: &[String],
        now: i64,
        grace: i64,
    ) -> Status {
        let serial = normalise_serial(serial);
        let mut covered = false;
        let mut fresh = false;
        for p in self.partitions.get(issuer).into_iter().flatten() {
            if !p.base.info.scope.covers(is_ca, uris) {
                continue;
            }
            if p.revoked(serial) {
                return Status::Revoked;
            }
            covered = true;
            fresh |= p.fresh(now, grace);
        }
        match (covered, fresh) {
            (false, _) => Status::Missing,
            (true, false) => Status::Stale,
            (true, true) => Status::Good,
        }
    }

    /// Freshness of the CRLs of a CA: missing without any, stale if one of them is.
    pub(crate) fn freshness(&self, ca: &CaId, now: i64, grace: i64) -> Freshness {
        match self.partitions.get(ca) {
            None => Freshness::Missing,
            Some(parts) if parts.iter().all(|p| p.fresh(now, grace)) => Freshness::Fresh,
            Some(_) => Freshness::Stale,
        }
    }

    /// The CRLs in force of a CA (bases and deltas).
    pub(crate) fn of_ca<'a>(&'a self, ca: &'a CaId) -> impl Iterator<Item = &'a CrlInfo> + 'a {
        self.crls.iter().filter(move |c| &c.ca == ca)
    }

    /// The CRL in force of a CA that a new one of the same CA, scope and kind would replace.
    pub(crate) fn in_force<'a>(&'a self, like: &'a CrlInfo) -> Option<&'a CrlInfo> {
        self.of_ca(&like.ca)
            .find(|c| c.scope == like.scope && c.delta_of.is_some() == like.delta_of.is_some())
    }

    pub(crate) fn total_entries(&self) -> usize {
        self.crls.iter().map(|c| c.entries).sum()
    }
}

/// Serials compare without leading zero bytes (DER adds one to keep the integer positive).
pub(crate) fn normalise_serial(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

#[cfg(test)]
mod tests {
    use super::load::Serials;
    use super::*;
    use std::sync::Arc;

    fn ca(n: u8) -> CaId {
        CaId([n; 32])
    }

    fn loaded(
        ca_id: CaId,
        number: u8,
        delta_of: Option<u8>,
        scope: Scope,
        revoked: &[u8],
        released: &[u8],
    ) -> Loaded {
        let set = |s: &[u8]| -> Serials { Arc::new(s.iter().map(|b| vec![*b].into()).collect()) };
        Loaded {
            info: CrlInfo {
                ca: ca_id,
                issuer: "CN=AC".into(),
                issuer_der: Vec::new(),
                delta_of: delta_of.map(|d| vec![d]),
                number: Some(vec![number]),
                scope,
                this_update: i64::from(number) * 100,
                next_update: Some(10_000),
                valid_until: 10_000,
                entries: revoked.len() + released.len(),
                source: PathBuf::from(format!("crl-{number}")),
            },
            revoked: set(revoked),
            released: set(released),
        }
    }

    fn set_of(list: Vec<Loaded>) -> CrlSet {
        let mut s = CrlSet::default();
        s.place(list);
        s
    }

    #[test]
    fn a_delta_completes_its_base_and_never_replaces_it() {
        let s = set_of(vec![
            loaded(ca(1), 5, None, Scope::ALL, &[1, 2], &[]),
            // Revokes 3, releases 2 (it was on hold), says nothing of 1.
            loaded(ca(1), 6, Some(5), Scope::ALL, &[3], &[2]),
        ]);
        let st = |serial: u8| s.status(&ca(1), &[serial], false, &[], 1000, 0);
        assert_eq!(st(1), Status::Revoked, "the base's revocation stays");
        assert_eq!(st(2), Status::Good, "removeFromCRL releases a hold");
        assert_eq!(st(3), Status::Revoked, "the delta's revocation");
        assert_eq!(st(4), Status::Good);
        assert_eq!(s.crls.len(), 2);
        assert!(s.refused.is_empty(), "{:?}", s.refused);
    }

    #[test]
    fn deltas_that_complete_no_base_in_force_are_refused() {
        let s = set_of(vec![
            loaded(ca(1), 5, None, Scope::ALL, &[1], &[]),
            loaded(ca(1), 9, Some(7), Scope::ALL, &[2], &[]),
            loaded(ca(1), 4, Some(3), Scope::ALL, &[3], &[]),
            loaded(ca(2), 2, Some(1), Scope::ALL, &[3], &[]),
        ]);
        assert_eq!(s.refused.len(), 3, "{:?}", s.refused);
        assert!(s
            .refused
            .iter()
            .any(|r| r.contains("completes base CRL 07")));
        assert!(s.refused.iter().any(|r| r.contains("older than its base")));
        assert!(s.refused.iter().any(|r| r.contains("without a base CRL")));
        assert_eq!(s.status(&ca(1), &[2], false, &[], 1000, 0), Status::Good);
        assert_eq!(s.status(&ca(1), &[1], false, &[], 1000, 0), Status::Revoked);
    }

    #[test]
    fn same_name_cas_have_their_own_crls() {
        let s = set_of(vec![
            loaded(ca(1), 5, None, Scope::ALL, &[], &[]),
            loaded(ca(2), 1, None, Scope::ALL, &[7], &[]),
        ]);
        assert_eq!(s.status(&ca(2), &[7], false, &[], 1000, 0), Status::Revoked);
        assert_eq!(s.status(&ca(1), &[7], false, &[], 1000, 0), Status::Good);
        assert_eq!(s.status(&ca(3), &[7], false, &[], 1000, 0), Status::Missing);
    }

    #[test]
    fn scopes_partition_what_each_crl_covers() {
        let users = Scope {
            users: true,
            cas: false,
            uris: Vec::new(),
        };
        let s = set_of(vec![loaded(ca(1), 5, None, users, &[1], &[])]);
        assert_eq!(s.status(&ca(1), &[1], false, &[], 1000, 0), Status::Revoked);
        assert_eq!(
            s.status(&ca(1), &[9], true, &[], 1000, 0),
            Status::Missing,
            "a CA certificate needs a CRL covering CA certificates"
        );
        assert_eq!(s.status(&ca(1), &[9], false, &[], 20_000, 0), Status::Stale);
        assert_eq!(
            s.status(&ca(1), &[9], false, &[], 20_000, 10_000),
            Status::Good
        );
    }

    #[test]
    fn a_reload_keeps_newer_crls_and_drops_those_of_removed_cas() {
        let dir = std::env::temp_dir().join(format!("vd-crl-keep-{}", uuid::Uuid::new_v4()));
        visiodroits_devkit::pki::generate(&dir).unwrap();
        let cas = CaSet::load(&dir.join("trust.pem")).unwrap();
        let id = cas.intermediates[0].id;
        let old = set_of(vec![
            loaded(id, 5, None, Scope::ALL, &[1], &[]),
            loaded(id, 6, Some(5), Scope::ALL, &[2], &[]),
        ]);
        // A replayed older base: the newer one in force is kept, with its delta.
        let mut replayed = set_of(vec![loaded(id, 4, None, Scope::ALL, &[], &[])]);
        replayed.keep_from(&old, &cas);
        assert_eq!(
            replayed.status(&id, &[2], false, &[], 1000, 0),
            Status::Revoked
        );
        assert!(replayed
            .refused
            .iter()
            .any(|r| r.contains("older than the CRL in force")));
        // A file simply removed: fail closed, nothing kept.
        let mut removed = set_of(Vec::new());
        removed.keep_from(&old, &cas);
        assert_eq!(
            removed.status(&id, &[1], false, &[], 1000, 0),
            Status::Missing
        );
        // The base's file refused: the CRLs in force from it are kept.
        let mut refused = set_of(Vec::new());
        refused.refused_files.insert(PathBuf::from("crl-5"));
        refused.keep_from(&old, &cas);
        assert_eq!(
            refused.status(&id, &[1], false, &[], 1000, 0),
            Status::Revoked
        );
        // The CA removed from the bundle: nothing of its CRLs is kept, refused file or not.
        let root_only = CaSet::load(&dir.join("ca/root.pem")).unwrap();
        let mut gone = set_of(Vec::new());
        gone.refused_files = refused.refused_files.clone();
        gone.keep_from(&old, &root_only);
        assert_eq!(gone.status(&id, &[1], false, &[], 1000, 0), Status::Missing);
        let _ = std::fs::remove_dir_all(dir);
    }
}
