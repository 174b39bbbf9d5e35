//! The airlock: a researcher's request that a query's result leave the hub, two signed reviews
//! by distinct output checkers (neither the requester), and the release of the file.
//!
//! At the request the hub computes the result (under the permit, through disclosure control
//! for aggregate permits: every cell goes to the project's ledger) and checks it: the file
//! type is on the allow-list; an aggregate result has no identifier column; an extract holds
//! the project's pseudonyms only, never one of the hub's. The request pins the dataset
//! versions. The release computes the result again on those versions and refuses if it is
//! not the result reviewed (`airlock.recompute`); the file's hash goes into the event.

use crate::core::Call;
use crate::query::{Format, QueryRequest};
use crate::{Hub, HubError, Result, Session};
use arrow::array::AsArray;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use shh_access::airlock::{self, ExportRecord, ExportState, Release, Review};
use shh_access::{Action, Denied, Mode};
use shh_audit::Draft;
use std::collections::HashSet;

/// `shh export request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportAskRequest {
    /// The permits the query runs under (one per dataset, of one project).
    pub permits: Vec<String>,
    /// The query.
    pub query: String,
    /// Why the result should leave.
    pub reason: String,
    /// csv, json or parquet.
    pub format: String,
}

/// `shh export update`: a new query or reason for a request (its reviews start again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportUpdateRequest {
    /// The request.
    pub id: String,
    /// The new query (`None`: the same).
    pub query: Option<String>,
    /// The new reason (`None`: the same).
    pub reason: Option<String>,
}

/// `shh export review`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportReviewRequest {
    /// The request.
    pub id: String,
    /// Approve, or reject.
    pub approve: bool,
    /// The checker's note.
    pub note: String,
}

/// A request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportView {
    /// The request.
    #[serde(flatten)]
    pub record: ExportRecord,
    /// Its state.
    pub state: ExportState,
}

impl From<ExportRecord> for ExportView {
    fn from(record: ExportRecord) -> Self {
        let state = record.state();
        Self { record, state }
    }
}

/// A released file.
#[derive(Debug, Clone)]
pub struct Released {
    /// The request, with this release.
    pub view: ExportView,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// What a review's signature covers.
#[derive(Debug, Serialize)]
struct Reviewed<'a> {
    export: &'a str,
    revision: u32,
    result_hash: &'a str,
    approve: bool,
    note: &'a str,
}

fn format_of(name: &str) -> Result<Format> {
    airlock::check_format(name)?;
    Format::parse(name).ok_or_else(|| {
        HubError::Denied(Denied {
            rule: "airlock.format",
            reason: format!("unknown format {name:?}"),
        })
    })
}

impl Call<'_> {
    async fn exports(&self, project: Option<&str>) -> Result<Vec<ExportView>> {
        self.allow(Action::ExportShow).await?;
        let all = self.catalog.exports(project).await?;
        if self.oversees() {
            return Ok(all.into_iter().map(Into::into).collect());
        }
        let mine: std::collections::BTreeSet<String> = self
            .visible_projects()
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        Ok(all
            .into_iter()
            .filter(|e| mine.contains(&e.project))
            .map(Into::into)
            .collect())
    }

    async fn export_show(&self, id: &str) -> Result<ExportView> {
        self.allow(Action::ExportShow).await?;
        let e = self.catalog.export(id).await?;
        // A request of a project the session may not see is not found, like the project.
        if self.visible_project(&e.project).await.is_err() {
            return Err(shh_catalog::CatalogError::NotFound {
                what: "export request",
                id: id.to_owned(),
            }
            .into());
        }
        Ok(e.into())
    }

    /// Computes the request's result and runs the automated checks.
    async fn checked(
        &self,
        event: &Draft,
        permits: &[String],
        query: &str,
        pinned: &[String],
    ) -> Result<crate::query::QueryResult> {
        let a = self
            .answer(
                &QueryRequest {
                    permits: permits.to_vec(),
                    sql: query.to_owned(),
                },
                pinned,
            )
            .await?;
        let identifiers: Vec<&String> = a.views.iter().flat_map(|(_, i)| i).collect();
        let r = &a.result;
        let verdict = match r.provenance.mode {
            Mode::Aggregate => {
                // No identifier column, by name or by its patient mark.
                match r.schema.fields().iter().find(|f| {
                    identifiers.iter().any(|i| *i == f.name())
                        || f.metadata().contains_key(shh_query::pseudonyms::PATIENT)
                }) {
                    Some(f) => Err(Denied {
                        rule: "airlock.identifier",
                        reason: format!(
                            "an aggregate result cannot carry the identifier column {}",
                            f.name()
                        ),
                    }),
                    None => Ok(()),
                }
            }
            Mode::Extract => {
                // Every value of every text column against the hub's own pseudonyms.
                let mut hub = HashSet::new();
                for (manifest, ids) in a.views.iter().filter(|(_, ids)| !ids.is_empty()) {
                    shh_dataset::read_columns(&self.store, manifest, ids, |b| {
                        for c in b.columns() {
                            if let Ok(c) =
                                arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8)
                            {
                                hub.extend(
                                    c.as_string::<i32>().iter().flatten().map(str::to_owned),
                                );
                            }
                        }
                        Ok(())
                    })
                    .await?;
                }
                let mut found = false;
                for b in &r.batches {
                    for c in b.columns() {
                        if !matches!(
                            c.data_type(),
                            arrow::datatypes::DataType::Utf8
                                | arrow::datatypes::DataType::Utf8View
                                | arrow::datatypes::DataType::LargeUtf8
                        ) {
                            continue;
                        }
                        if let Ok(c) = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8) {
                            found |= c
                                .as_string::<i32>()
                                .iter()
                                .flatten()
                                .any(|v| hub.contains(v));
                        }
                    }
                }
                if found {
                    Err(Denied {
                        rule: "airlock.hub-pseudonym",
                        reason: "the result holds one of the hub's own pseudonyms: only the project's leave".into(),
                    })
                } else {
                    Ok(())
                }
            }
        };
        self.enforce(event, verdict).await?;
        Ok(a.result)
    }

    async fn export_ask(&self, req: &ExportAskRequest) -> Result<ExportView> {
        self.allow(Action::ExportRequest).await?;
        self.ensure_writable()?;
        crate::guard::check("the request's reason", &req.reason)?;
        shh_access::model::validate_text("reason", &req.reason, true)?;
        let event = Draft::new("export.request")
            .permit(req.permits.first().cloned().unwrap_or_default())
            .detail("permits", req.permits.clone());
        self.enforce(&event, airlock::check_format(&req.format))
            .await?;
        let r = self.checked(&event, &req.permits, &req.query, &[]).await?;
        let p = &r.provenance;
        let rec = ExportRecord {
            id: super::new_id("exp"),
            project: p.project.clone(),
            permits: p.permits.clone(),
            requester: self.session.principal().to_owned(),
            revision: 0,
            query: req.query.clone(),
            reason: req.reason.clone(),
            format: req.format.clone(),
            versions: p.versions.clone(),
            query_hash: p.query_hash.clone(),
            result_hash: p.result_hash.clone(),
            rows: p.rows,
            created_at: Utc::now(),
            reviews: vec![],
            releases: vec![],
        };
        let event = event
            .project(rec.project.clone())
            .detail("export", rec.id.clone())
            .detail("query_hash", rec.query_hash.clone())
            .detail("result_hash", rec.result_hash.clone())
            .detail("versions", rec.versions.clone())
            .detail("format", rec.format.clone())
            .detail("reason", rec.reason.clone());
        self.recorded(event, async { Ok(self.catalog.add_export(&rec).await?) })
            .await?;
        Ok(rec.into())
    }

    async fn export_update(&self, req: &ExportUpdateRequest) -> Result<ExportView> {
        self.allow(Action::ExportRequest).await?;
        self.ensure_writable()?;
        let old = self.catalog.export(&req.id).await?;
        let event = Draft::new("export.update")
            .project(old.project.clone())
            .permit(old.permits.first().cloned().unwrap_or_default())
            .detail("export", old.id.clone());
        self.enforce(
            &event,
            airlock::check_update(&old, self.session.principal()),
        )
        .await?;
        let mut new = old.clone();
        if let Some(r) = &req.reason {
            crate::guard::check("the request's reason", r)?;
            shh_access::model::validate_text("reason", r, true)?;
            new.reason = r.clone();
        }
        if let Some(q) = &req.query {
            new.query = q.clone();
        }
        let r = self.checked(&event, &new.permits, &new.query, &[]).await?;
        new.revision += 1;
        new.versions = r.provenance.versions.clone();
        new.query_hash = r.provenance.query_hash.clone();
        new.result_hash = r.provenance.result_hash.clone();
        new.rows = r.provenance.rows;
        let event = event
            .detail("revision", new.revision)
            .detail("query_hash", new.query_hash.clone())
            .detail("result_hash", new.result_hash.clone());
        self.recorded(event, async {
            Ok(self.catalog.change_export(&old, &new).await?)
        })
        .await?;
        Ok(new.into())
    }

    async fn export_review(&self, req: &ExportReviewRequest) -> Result<ExportView> {
        self.allow(Action::ExportReview).await?;
        self.ensure_writable()?;
        crate::guard::check("the review's note", &req.note)?;
        shh_access::model::validate_text("note", &req.note, false)?;
        let old = self.catalog.export(&req.id).await?;
        let event = Draft::new("export.review")
            .project(old.project.clone())
            .permit(old.permits.first().cloned().unwrap_or_default())
            .detail("export", old.id.clone())
            .detail("revision", old.revision)
            .detail("approve", req.approve);
        // A signed review needs a proven checker before anything else.
        self.session.key()?;
        self.enforce(
            &event,
            airlock::check_review(&old, self.session.principal(), self.session.grants()),
        )
        .await?;
        let signed = self.sign(
            "export.review",
            &Reviewed {
                export: &old.id,
                revision: old.revision,
                result_hash: &old.result_hash,
                approve: req.approve,
                note: &req.note,
            },
        )?;
        let mut new = old.clone();
        new.reviews.push(Review {
            by: self.session.principal().to_owned(),
            revision: old.revision,
            approve: req.approve,
            note: req.note.clone(),
            at: Utc::now(),
            signature: signed.signature.clone(),
            public_key: signed.public_key.clone(),
        });
        let event = signed.on(event.detail("note", req.note.clone()));
        self.recorded(event, async {
            Ok(self.catalog.change_export(&old, &new).await?)
        })
        .await?;
        Ok(new.into())
    }

    async fn export_release(&self, id: &str) -> Result<Released> {
        self.allow(Action::ExportRequest).await?;
        self.ensure_writable()?;
        let old = self.catalog.export(id).await?;
        let event = Draft::new("export.release")
            .project(old.project.clone())
            .permit(old.permits.first().cloned().unwrap_or_default())
            .detail("export", old.id.clone())
            .detail("revision", old.revision);
        self.enforce(
            &event,
            airlock::check_release(&old, self.session.principal()),
        )
        .await?;
        let r = self
            .checked(&event, &old.permits, &old.query, &old.versions)
            .await?;
        if r.provenance.result_hash != old.result_hash {
            let d = Denied {
                rule: "airlock.recompute",
                reason: format!(
                    "{}: the result computed now is not the result reviewed (revision {})",
                    old.id, old.revision
                ),
            };
            self.enforce(&event, Err(d.clone())).await?;
        }
        let bytes = r.to_bytes(format_of(&old.format)?)?;
        let release = Release {
            by: self.session.principal().to_owned(),
            at: Utc::now(),
            blake3: blake3::hash(&bytes).to_hex().to_string(),
            bytes: bytes.len() as u64,
        };
        let mut new = old.clone();
        new.releases.push(release.clone());
        let event = event
            .detail("blake3", release.blake3.clone())
            .detail("bytes", release.bytes)
            .detail("format", old.format.clone());
        self.recorded(event, async {
            Ok(self.catalog.change_export(&old, &new).await?)
        })
        .await?;
        Ok(Released {
            view: new.into(),
            bytes,
        })
    }
}

/// The airlock's operations.
impl Hub {
    /// Asks for a query's result to be released.
    pub async fn export_request(&self, s: &Session, req: &ExportAskRequest) -> Result<ExportView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .export_ask(req)
            .await
    }

    /// Changes a request (a new revision: its reviews start again).
    pub async fn export_update(
        &self,
        s: &Session,
        req: &ExportUpdateRequest,
    ) -> Result<ExportView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .export_update(req)
            .await
    }

    /// An output checker's signed review.
    pub async fn export_review(
        &self,
        s: &Session,
        req: &ExportReviewRequest,
    ) -> Result<ExportView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .export_review(req)
            .await
    }

    /// Releases an approved request's file (computed again, hashed, logged).
    pub async fn export_release(&self, s: &Session, id: &str) -> Result<Released> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .export_release(id)
            .await
    }

    /// The release requests of a project (or all) this session may see: a researcher, those
    /// of their own projects (as `project list`).
    pub async fn exports(&self, s: &Session, project: Option<&str>) -> Result<Vec<ExportView>> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .exports(project)
            .await
    }

    /// One release request, if this session may see its project.
    pub async fn export_show(&self, s: &Session, id: &str) -> Result<ExportView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .export_show(id)
            .await
    }
}
