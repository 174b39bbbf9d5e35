//! The embedded SQLite catalog (one file in the hub directory, WAL mode).

use crate::{Catalog, CatalogError, DatasetRecord, OptOutRecord, Result, VersionRecord};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// 2 added the access tables (users, projects, permits), 3 the disclosure ledger and the
/// airlock's release requests; an older
/// catalog is upgraded on open (the tables are new, nothing is rewritten).
const SCHEMA_VERSION: i64 = 4;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    current_version TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    dataset TEXT NOT NULL REFERENCES datasets(name),
    id TEXT NOT NULL,
    parent TEXT,
    manifest_path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    rows INTEGER NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (dataset, id)
);
CREATE TABLE IF NOT EXISTS optout (
    pseudonym TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (pseudonym, key_version)
);
CREATE TABLE IF NOT EXISTS principals (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS permits (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects(id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    project TEXT NOT NULL REFERENCES projects(id),
    scope TEXT NOT NULL,
    signature TEXT NOT NULL,
    expression TEXT NOT NULL,
    patients INTEGER NOT NULL,
    cell_key INTEGER NOT NULL,
    sketch BLOB NOT NULL,
    released REAL
);
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects(id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS permit_requests (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL REFERENCES projects(id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_near ON ledger (project, scope, signature, patients);
";

/// SQLite catalog.
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

pub(crate) fn be(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Backend(e.to_string())
}

fn ts(s: String) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog file.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| be(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(be)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(be)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(be)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(be)?;
        conn.execute_batch(SCHEMA).map_err(be)?;
        let v: Option<String> = conn
            .query_row(
                "SELECT value FROM hub_meta WHERE key = 'catalog.schema'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(be)?;
        match v.as_deref().map(str::parse::<i64>) {
            None => {
                conn.execute(
                    "INSERT INTO hub_meta (key, value) VALUES ('catalog.schema', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(be)?;
            }
            Some(Ok(SCHEMA_VERSION)) => {}
            // Each later schema only added tables (created above): the version moves on.
            Some(Ok(1..=3)) => {
                conn.execute(
                    "UPDATE hub_meta SET value = ?1 WHERE key = 'catalog.schema'",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(be)?;
            }
            Some(other) => {
                return Err(be(format!(
                    "{}: catalog schema {other:?} is not {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| be("catalog lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(be)?
    }
}

fn dataset_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DatasetRecord> {
    Ok(DatasetRecord {
        name: r.get(0)?,
        current: r.get(1)?,
        created_at: ts(r.get(2)?)?,
        updated_at: ts(r.get(3)?)?,
        versions: r.get::<_, i64>(4)? as u64,
    })
}

const DATASET_SELECT: &str = "SELECT d.name, d.current_version, d.created_at, d.updated_at,
    (SELECT COUNT(*) FROM versions v WHERE v.dataset = d.name) FROM datasets d";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        dataset: r.get(0)?,
        id: r.get(1)?,
        parent: r.get(2)?,
        manifest_path: r.get(3)?,
        created_at: ts(r.get(4)?)?,
        rows: r.get::<_, i64>(5)? as u64,
        files: r.get::<_, i64>(6)? as u64,
        bytes: r.get::<_, i64>(7)? as u64,
    })
}

const VERSION_SELECT: &str =
    "SELECT dataset, id, parent, manifest_path, created_at, rows, files, bytes FROM versions";

fn get_dataset(conn: &Connection, name: &str) -> Result<DatasetRecord> {
    conn.query_row(
        &format!("{DATASET_SELECT} WHERE d.name = ?1"),
        params![name],
        dataset_row,
    )
    .optional()
    .map_err(be)?
    .ok_or_else(|| CatalogError::NoDataset(name.to_owned()))
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn add_optouts(&self, entries: &[OptOutRecord]) -> Result<u64> {
        let entries = entries.to_vec();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(be)?;
            let mut added = 0u64;
            {
                let mut st = tx
                    .prepare(
                        "INSERT INTO optout (pseudonym, key_version, added_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT DO NOTHING",
                    )
                    .map_err(be)?;
                for e in &entries {
                    added += st
                        .execute(params![e.pseudonym, e.key_version, e.added_at.to_rfc3339()])
                        .map_err(be)? as u64;
                }
            }
            tx.commit().map_err(be)?;
            Ok(added)
        })
        .await
    }

    async fn optouts(&self) -> Result<Vec<OptOutRecord>> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT pseudonym, key_version, added_at FROM optout ORDER BY pseudonym")
                .map_err(be)?;
            let rows = st
                .query_map([], |r| {
                    Ok(OptOutRecord {
                        pseudonym: r.get(0)?,
                        key_version: r.get(1)?,
                        added_at: ts(r.get(2)?)?,
                    })
                })
                .map_err(be)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(be)
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT value FROM hub_meta WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(be)
        })
        .await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.with(move |c| {
            c.execute(
                "INSERT INTO hub_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(be)
        })
        .await
    }

    async fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        self.with(|c| {
            let mut st = c
                .prepare(&format!("{DATASET_SELECT} ORDER BY d.name"))
                .map_err(be)?;
            let rows = st.query_map([], dataset_row).map_err(be)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(be)
        })
        .await
    }

    async fn dataset(&self, name: &str) -> Result<DatasetRecord> {
        let name = name.to_owned();
        self.with(move |c| get_dataset(c, &name)).await
    }

    async fn versions(&self, dataset: &str) -> Result<Vec<VersionRecord>> {
        let dataset = dataset.to_owned();
        self.with(move |c| {
            get_dataset(c, &dataset)?;
            let mut st = c
                .prepare(&format!("{VERSION_SELECT} WHERE dataset = ?1 ORDER BY seq"))
                .map_err(be)?;
            let rows = st.query_map(params![dataset], version_row).map_err(be)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(be)
        })
        .await
    }

    async fn version(&self, dataset: &str, prefix: Option<&str>) -> Result<VersionRecord> {
        let dataset = dataset.to_owned();
        let prefix = prefix.map(str::to_ascii_lowercase);
        self.with(move |c| {
            let d = get_dataset(c, &dataset)?;
            let no_version = |v: &str| CatalogError::NoVersion {
                dataset: dataset.clone(),
                version: v.to_owned(),
            };
            let wanted = match &prefix {
                None => d.current.clone().ok_or_else(|| no_version("(current)"))?,
                Some(p) => {
                    if p.len() < 4 || !p.chars().all(|ch| ch.is_ascii_hexdigit()) {
                        return Err(no_version(p));
                    }
                    let mut st = c
                        .prepare(
                            "SELECT id FROM versions WHERE dataset = ?1 AND substr(id, 1, ?2) = ?3",
                        )
                        .map_err(be)?;
                    let ids = st
                        .query_map(params![dataset, p.len() as i64, p], |r| {
                            r.get::<_, String>(0)
                        })
                        .map_err(be)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(be)?;
                    match ids.len() {
                        0 => return Err(no_version(p)),
                        1 => ids.into_iter().next().unwrap_or_default(),
                        count => {
                            return Err(CatalogError::Ambiguous {
                                dataset: dataset.clone(),
                                prefix: p.clone(),
                                count,
                            });
                        }
                    }
                }
            };
            c.query_row(
                &format!("{VERSION_SELECT} WHERE dataset = ?1 AND id = ?2"),
                params![dataset, wanted],
                version_row,
            )
            .map_err(be)
        })
        .await
    }

    async fn commit_version(&self, v: &VersionRecord) -> Result<()> {
        let v = v.clone();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(be)?;
            let now = v.created_at.to_rfc3339();
            let current: Option<Option<String>> = tx
                .query_row(
                    "SELECT current_version FROM datasets WHERE name = ?1",
                    params![v.dataset],
                    |r| r.get(0),
                )
                .optional()
                .map_err(be)?;
            let found = current.clone().flatten();
            if found != v.parent {
                return Err(CatalogError::Conflict {
                    dataset: v.dataset.clone(),
                    expected: v.parent.clone(),
                    found,
                });
            }
            if current.is_none() {
                tx.execute(
                    "INSERT INTO datasets (name, current_version, created_at, updated_at) VALUES (?1, NULL, ?2, ?2)",
                    params![v.dataset, now],
                )
                .map_err(be)?;
            }
            let seq: i64 = tx
                .query_row("SELECT COUNT(*) FROM versions WHERE dataset = ?1", params![v.dataset], |r| r.get(0))
                .map_err(be)?;
            tx.execute(
                "INSERT INTO versions (dataset, id, parent, manifest_path, created_at, rows, files, bytes, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    v.dataset,
                    v.id,
                    v.parent,
                    v.manifest_path,
                    now,
                    v.rows as i64,
                    v.files as i64,
                    v.bytes as i64,
                    seq
                ],
            )
            .map_err(be)?;
            tx.execute(
                "UPDATE datasets SET current_version = ?2, updated_at = ?3 WHERE name = ?1",
                params![v.dataset, v.id, now],
            )
            .map_err(be)?;
            tx.commit().map_err(be)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, parent: Option<&str>) -> VersionRecord {
        VersionRecord {
            dataset: "claims".into(),
            id: id.into(),
            parent: parent.map(str::to_owned),
            manifest_path: format!("m/{id}"),
            created_at: Utc::now(),
            rows: 10,
            files: 1,
            bytes: 100,
        }
    }

    #[tokio::test]
    async fn pointer_moves_only_by_compare_and_swap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = SqliteCatalog::open(&dir.path().join("c.db")).expect("open");
        cat.commit_version(&rec("aaaa1111", None))
            .await
            .expect("first");
        // A second writer that also built on "no parent" loses.
        let err = cat
            .commit_version(&rec("bbbb2222", None))
            .await
            .expect_err("conflict");
        assert!(matches!(err, CatalogError::Conflict { .. }), "{err}");
        cat.commit_version(&rec("bbbb2222", Some("aaaa1111")))
            .await
            .expect("second");
        let d = cat.dataset("claims").await.expect("dataset");
        assert_eq!((d.current.as_deref(), d.versions), (Some("bbbb2222"), 2));
        assert_eq!(
            cat.version("claims", Some("aaaa"))
                .await
                .expect("prefix")
                .id,
            "aaaa1111"
        );
        assert_eq!(
            cat.version("claims", None).await.expect("current").id,
            "bbbb2222"
        );
        assert!(matches!(
            cat.version("claims", Some("cccc")).await,
            Err(CatalogError::NoVersion { .. })
        ));
        let ids: Vec<_> = cat
            .versions("claims")
            .await
            .expect("versions")
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(ids, ["aaaa1111", "bbbb2222"]);
    }

    #[tokio::test]
    async fn ambiguous_prefix_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = SqliteCatalog::open(&dir.path().join("c.db")).expect("open");
        cat.commit_version(&rec("abcd0001", None)).await.expect("1");
        cat.commit_version(&rec("abcd0002", Some("abcd0001")))
            .await
            .expect("2");
        assert!(matches!(
            cat.version("claims", Some("abcd")).await,
            Err(CatalogError::Ambiguous { count: 2, .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_passes_the_catalog_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = SqliteCatalog::open(&dir.path().join("c.db")).expect("open");
        crate::conformance::run(std::sync::Arc::new(cat)).await;
    }
}
