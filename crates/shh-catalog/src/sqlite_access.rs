//! The access records in SQLite: one row per user, project and permit, its body the record's
//! JSON. Every change is one `IMMEDIATE` transaction that reads the row, checks the state the
//! change was made for, and writes it back, so racing deciders are serialized.

use crate::sqlite::{SqliteCatalog, be};
use crate::{AccessCatalog, CatalogError, ExportRecord, LedgerEntry, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shh_access::{Credential, Permit, PermitApplication, Principal, Project, Revocation};

fn to_json(v: &impl Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(be)
}

fn from_json<T: DeserializeOwned>(what: &'static str, id: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| be(format!("{what} {id:?} is unreadable: {e}")))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

/// Inserts `body` under `id`; `Exists` if taken.
fn insert(
    c: &Connection,
    what: &'static str,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    id: &str,
) -> Result<()> {
    match c.execute(sql, args) {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(CatalogError::Exists {
            what,
            id: id.to_owned(),
        }),
        Err(e) => Err(be(e)),
    }
}

/// `NotFound` unless the project is there (what a permit, request or export belongs to).
fn project_exists(c: &Connection, project: &str) -> Result<()> {
    match body(c, "projects", "id", project)? {
        Some(_) => Ok(()),
        None => Err(CatalogError::NotFound {
            what: "project",
            id: project.to_owned(),
        }),
    }
}

fn body(c: &Connection, table: &str, key: &str, id: &str) -> Result<Option<String>> {
    c.query_row(
        &format!("SELECT body FROM {table} WHERE {key} = ?1"),
        params![id],
        |r| r.get(0),
    )
    .optional()
    .map_err(be)
}

fn found<T: DeserializeOwned>(what: &'static str, id: &str, body: Option<String>) -> Result<T> {
    match body {
        Some(b) => from_json(what, id, &b),
        None => Err(CatalogError::NotFound {
            what,
            id: id.to_owned(),
        }),
    }
}

fn all<T: DeserializeOwned>(
    c: &Connection,
    what: &'static str,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<T>> {
    let mut st = c.prepare(sql).map_err(be)?;
    let rows = st
        .query_map(args, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(be)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, b) = row.map_err(be)?;
        out.push(from_json(what, &id, &b)?);
    }
    Ok(out)
}

/// Reads the record, applies `change` (which may refuse) and writes it back, in one
/// transaction.
fn update<T: DeserializeOwned + Serialize, R>(
    c: &mut Connection,
    what: &'static str,
    table: &'static str,
    key: &'static str,
    id: &str,
    change: impl FnOnce(&mut T) -> Result<R>,
) -> Result<R> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(be)?;
    let mut rec: T = found(what, id, body(&tx, table, key, id)?)?;
    let r = change(&mut rec)?;
    tx.execute(
        &format!("UPDATE {table} SET body = ?1 WHERE {key} = ?2"),
        params![to_json(&rec)?, id],
    )
    .map_err(be)?;
    tx.commit().map_err(be)?;
    Ok(r)
}

#[async_trait]
impl AccessCatalog for SqliteCatalog {
    async fn add_principal(&self, p: &Principal) -> Result<()> {
        let (name, b) = (p.name.clone(), to_json(p)?);
        self.with(move |c| {
            insert(
                c,
                "user",
                "INSERT INTO principals (name, body) VALUES (?1, ?2)",
                &[&name, &b],
                &name,
            )
        })
        .await
    }

    async fn principal(&self, name: &str) -> Result<Principal> {
        let name = name.to_owned();
        self.with(move |c| found("user", &name, body(c, "principals", "name", &name)?))
            .await
    }

    async fn principals(&self) -> Result<Vec<Principal>> {
        self.with(|c| {
            all(
                c,
                "user",
                "SELECT name, body FROM principals ORDER BY name",
                &[],
            )
        })
        .await
    }

    async fn set_credential(
        &self,
        name: &str,
        expected: Option<&str>,
        credential: &Credential,
    ) -> Result<()> {
        let (name, expected, cred) = (
            name.to_owned(),
            expected.map(str::to_owned),
            credential.clone(),
        );
        self.with(move |c| {
            update(
                c,
                "user",
                "principals",
                "name",
                &name.clone(),
                |p: &mut Principal| {
                    if p.public_key() != expected.as_deref() {
                        return Err(CatalogError::Changed {
                            what: "user",
                            id: name.clone(),
                            reason: match p.public_key() {
                                Some(_) => "already enrolled".into(),
                                None => "not enrolled".into(),
                            },
                        });
                    }
                    p.credential = Some(cred);
                    Ok(())
                },
            )
        })
        .await
    }

    async fn add_project(&self, p: &Project) -> Result<()> {
        let (id, b) = (p.id.clone(), to_json(p)?);
        self.with(move |c| {
            insert(
                c,
                "project",
                "INSERT INTO projects (id, seq, body)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM projects), ?2)",
                &[&id, &b],
                &id,
            )
        })
        .await
    }

    async fn project(&self, id: &str) -> Result<Project> {
        let id = id.to_owned();
        self.with(move |c| found("project", &id, body(c, "projects", "id", &id)?))
            .await
    }

    async fn projects(&self) -> Result<Vec<Project>> {
        self.with(|c| {
            all(
                c,
                "project",
                "SELECT id, body FROM projects ORDER BY seq",
                &[],
            )
        })
        .await
    }

    async fn add_member(&self, project: &str, name: &str) -> Result<bool> {
        let (id, name) = (project.to_owned(), name.to_owned());
        self.with(move |c| {
            update(c, "project", "projects", "id", &id, |p: &mut Project| {
                Ok(p.members.insert(name))
            })
        })
        .await
    }

    async fn add_permit(&self, p: &Permit) -> Result<()> {
        let (id, project, b) = (p.id.clone(), p.terms.project.clone(), to_json(p)?);
        self.with(move |c| {
            project_exists(c, &project)?;
            insert(
                c,
                "permit",
                "INSERT INTO permits (id, project, seq, body)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM permits), ?3)",
                &[&id, &project, &b],
                &id,
            )
        })
        .await
    }

    async fn permit(&self, id: &str) -> Result<Permit> {
        let id = id.to_owned();
        self.with(move |c| found("permit", &id, body(c, "permits", "id", &id)?))
            .await
    }

    async fn permits(&self, project: Option<&str>) -> Result<Vec<Permit>> {
        let project = project.map(str::to_owned);
        self.with(move |c| match project {
            Some(p) => all(
                c,
                "permit",
                "SELECT id, body FROM permits WHERE project = ?1 ORDER BY seq",
                &[&p],
            ),
            None => all(
                c,
                "permit",
                "SELECT id, body FROM permits ORDER BY seq",
                &[],
            ),
        })
        .await
    }

    async fn revoke_permit(&self, id: &str, revocation: &Revocation) -> Result<()> {
        let (id, r) = (id.to_owned(), revocation.clone());
        self.with(move |c| {
            update(
                c,
                "permit",
                "permits",
                "id",
                &id.clone(),
                |p: &mut Permit| {
                    if p.revoked.is_some() {
                        return Err(CatalogError::Changed {
                            what: "permit",
                            id: id.clone(),
                            reason: "already revoked".into(),
                        });
                    }
                    p.revoked = Some(r);
                    Ok(())
                },
            )
        })
        .await
    }

    async fn ledger_near(
        &self,
        project: &str,
        scope: &str,
        signature: &str,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<LedgerEntry>> {
        let (project, scope, signature) =
            (project.to_owned(), scope.to_owned(), signature.to_owned());
        let lo = i64::try_from(lo).unwrap_or(i64::MAX);
        let hi = i64::try_from(hi).unwrap_or(i64::MAX);
        self.with(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT signature, expression, patients, cell_key, sketch, released FROM ledger
                     WHERE project = ?1 AND scope = ?2 AND signature = ?3
                       AND patients BETWEEN ?4 AND ?5
                     ORDER BY patients, rowid",
                )
                .map_err(be)?;
            let rows = st
                .query_map(params![project, scope, signature, lo, hi], |r| {
                    Ok(LedgerEntry {
                        signature: r.get(0)?,
                        expression: r.get(1)?,
                        patients: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        // The key's 64 bits, stored as SQLite's signed integer.
                        key: r.get::<_, i64>(3)? as u64,
                        sketch: r.get(4)?,
                        released: r.get(5)?,
                    })
                })
                .map_err(be)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(be)
        })
        .await
    }

    async fn ledger_add(&self, project: &str, scope: &str, cells: &[LedgerEntry]) -> Result<()> {
        let (project, scope, cells) = (project.to_owned(), scope.to_owned(), cells.to_vec());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(be)?;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT INTO ledger (project, scope, signature, expression, patients, cell_key, sketch, released)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(be)?;
                for e in &cells {
                    st.execute(params![
                        project,
                        scope,
                        e.signature,
                        e.expression,
                        i64::try_from(e.patients).unwrap_or(i64::MAX),
                        e.key as i64,
                        e.sketch,
                        e.released
                    ])
                    .map_err(be)?;
                }
            }
            tx.commit().map_err(be)
        })
        .await
    }

    async fn add_export(&self, e: &ExportRecord) -> Result<()> {
        let (id, project, b) = (e.id.clone(), e.project.clone(), to_json(e)?);
        self.with(move |c| {
            insert(
                c,
                "export request",
                "INSERT INTO exports (id, project, seq, body)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM exports), ?3)",
                &[&id, &project, &b],
                &id,
            )
        })
        .await
    }

    async fn export(&self, id: &str) -> Result<ExportRecord> {
        let id = id.to_owned();
        self.with(move |c| found("export request", &id, body(c, "exports", "id", &id)?))
            .await
    }

    async fn exports(&self, project: Option<&str>) -> Result<Vec<ExportRecord>> {
        let project = project.map(str::to_owned);
        self.with(move |c| match project {
            Some(p) => all(
                c,
                "export request",
                "SELECT id, body FROM exports WHERE project = ?1 ORDER BY seq",
                &[&p],
            ),
            None => all(
                c,
                "export request",
                "SELECT id, body FROM exports ORDER BY seq",
                &[],
            ),
        })
        .await
    }

    async fn change_export(&self, expected: &ExportRecord, new: &ExportRecord) -> Result<()> {
        let (expected, new) = (expected.clone(), new.clone());
        self.with(move |c| {
            let id = expected.id.clone();
            update(
                c,
                "export request",
                "exports",
                "id",
                &id.clone(),
                |e: &mut ExportRecord| {
                    if *e != expected {
                        return Err(CatalogError::Changed {
                            what: "export request",
                            id,
                            reason: "it changed meanwhile (another review or an update)".into(),
                        });
                    }
                    *e = new;
                    Ok(())
                },
            )
        })
        .await
    }

    async fn add_application(&self, a: &PermitApplication) -> Result<()> {
        let (id, project, b) = (a.id.clone(), a.terms.project.clone(), to_json(a)?);
        self.with(move |c| {
            project_exists(c, &project)?;
            insert(
                c,
                "permit request",
                "INSERT INTO permit_requests (id, project, seq, body)
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM permit_requests), ?3)",
                &[&id, &project, &b],
                &id,
            )
        })
        .await
    }

    async fn application(&self, id: &str) -> Result<PermitApplication> {
        let id = id.to_owned();
        self.with(move |c| {
            found(
                "permit request",
                &id,
                body(c, "permit_requests", "id", &id)?,
            )
        })
        .await
    }

    async fn applications(&self, project: Option<&str>) -> Result<Vec<PermitApplication>> {
        let project = project.map(str::to_owned);
        self.with(move |c| match project {
            Some(p) => all(
                c,
                "permit request",
                "SELECT id, body FROM permit_requests WHERE project = ?1 ORDER BY seq",
                &[&p],
            ),
            None => all(
                c,
                "permit request",
                "SELECT id, body FROM permit_requests ORDER BY seq",
                &[],
            ),
        })
        .await
    }

    async fn change_application(
        &self,
        expected: &PermitApplication,
        new: &PermitApplication,
    ) -> Result<()> {
        let (expected, new) = (expected.clone(), new.clone());
        self.with(move |c| {
            let id = expected.id.clone();
            update(
                c,
                "permit request",
                "permit_requests",
                "id",
                &id.clone(),
                |a: &mut PermitApplication| {
                    if *a != expected {
                        return Err(CatalogError::Changed {
                            what: "permit request",
                            id,
                            reason: "it was decided meanwhile".into(),
                        });
                    }
                    *a = new;
                    Ok(())
                },
            )
        })
        .await
    }
}
