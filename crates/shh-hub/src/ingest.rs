//! Ingest into the hub: resolves schema and policy, unlocks the pseudonym key, loads the
//! opt-out register and the keys that foreign keys point to, runs the ingest pipeline into a
//! new dataset version, and records the `dataset.ingest` event before the version is visible.
//!
//! A failed ingest publishes nothing: the files already written are deleted, the current
//! version is unchanged, and the failure itself is recorded.

use crate::core::Call;
use crate::{Hub, HubError, Result, Session, Task};
use serde::{Deserialize, Serialize};
use shh_audit::Draft;
use shh_catalog::OptOutRecord;
use shh_dataset::{VersionWriter, WriteOptions};
pub use shh_ingest::Format;
pub use shh_ingest::job::IngestParams;
use shh_ingest::pipeline::{self, PipelineOptions};
use shh_ingest::{Converter, IngestError, IngestStats};
use shh_keys::KeyPurpose;
use shh_pseudo::Pseudonymizer;
pub use shh_pseudo::RiskReport;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// What kind of source identifier an opt-out names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptOutKind {
    /// A French NIR, as SNDS tables hold it.
    #[default]
    Nir,
    /// A FHIR resource id (a patient's `id`): 1 to 64 of `A-Z a-z 0-9 - .`.
    FhirId,
}

impl OptOutKind {
    /// The id as ingest pseudonymizes it, if it is one of this kind.
    pub fn canonical(self, id: &str) -> Option<String> {
        match self {
            OptOutKind::Nir => shh_pseudo::nir::canonical(id),
            OptOutKind::FhirId => (id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
            .then(|| id.to_owned()),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            OptOutKind::Nir => "a NIR (15 characters with a valid key)",
            OptOutKind::FhirId => "a FHIR id (1 to 64 letters, digits, '-' and '.')",
        }
    }
}

/// What to ingest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestRequest {
    /// Target dataset.
    pub dataset: String,
    /// Input files (one format).
    pub files: Vec<PathBuf>,
    /// Format; from the extension when `None`.
    pub format: Option<Format>,
    /// Table Schema (required for CSV and Parquet; FHIR has built-in ones).
    pub schema: Option<PathBuf>,
    /// Column policy (defaults when `None`).
    pub policy: Option<PathBuf>,
    /// Rows that may be rejected before the ingest fails.
    pub max_errors: u64,
    /// Where rejected rows are listed (file, line, field, reason — never values).
    pub rejects: Option<PathBuf>,
    /// Foreign-key violations are errors.
    pub strict_fk: bool,
    /// FHIR: map resource types without a dedicated mapping by the generic allow-list.
    pub fhir_generic: bool,
    /// Report schema violations instead of failing (values kept without the broken
    /// constraint, or null when they do not have the type); the NIR guard still fails.
    pub lenient: bool,
    /// Write the version even if no row is left to store (a header-only file, every row
    /// rejected or opted out). Without it such an ingest fails: an empty version would
    /// silently replace the current one.
    pub allow_empty: bool,
}

/// What an ingest did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestReport {
    /// `name@short-id` of the new version.
    pub reference: String,
    /// Full version id.
    pub version: String,
    /// Pseudonym key version used.
    pub pseudonym_key_version: u32,
    /// Identifier columns (pseudonymized).
    pub identifiers: Vec<String>,
    /// Columns dropped at read time, with their class.
    pub dropped: Vec<(String, String)>,
    /// Counts, sources, foreign keys, risk.
    #[serde(flatten)]
    pub stats: IngestStats,
}

fn ingest_err(e: IngestError) -> HubError {
    HubError::Ingest(e)
}

impl crate::core::Core {
    /// The pseudonymizer under the current pseudonym key.
    pub(crate) fn pseudonymizer(&self) -> Result<Pseudonymizer> {
        let k = self
            .keystore
            .current(KeyPurpose::Pseudonym)
            .ok_or_else(|| HubError::Config {
                path: self.dir.clone(),
                reason: "the keystore holds no pseudonym key".into(),
            })?;
        Ok(Pseudonymizer::new(k.info.version, k.secret()))
    }
}

impl Call<'_> {
    async fn optout_add(&self, ids: &[String], kind: OptOutKind) -> Result<(u64, u64)> {
        let failed = Draft::new("optout.add").detail("submitted", ids.len() as u64);
        self.audited(failed, async {
            self.ensure_writable()?;
            let p = self.pseudonymizer()?;
            let now = chrono::Utc::now();
            let mut entries = Vec::with_capacity(ids.len());
            for (i, raw) in ids.iter().enumerate() {
                let id = raw.trim();
                if id.is_empty() {
                    continue;
                }
                let id = kind.canonical(id).ok_or_else(|| {
                    HubError::Ingest(IngestError::Plan {
                        reason: format!(
                            "opt-out id #{} ({} characters) is not {}; nothing was added",
                            i + 1,
                            id.chars().count(),
                            kind.describe()
                        ),
                    })
                })?;
                entries.push(OptOutRecord {
                    pseudonym: p.pseudonym(&id),
                    key_version: p.version(),
                    added_at: now,
                });
            }
            let added = self.catalog.add_optouts(&entries).await?;
            self.record(
                Draft::new("optout.add")
                    .detail("submitted", entries.len() as u64)
                    .detail("added", added)
                    .detail("key_version", u64::from(p.version())),
            )
            .await?;
            Ok((entries.len() as u64, added))
        })
        .await
    }

    async fn ingest(&self, req: &IngestRequest) -> Result<IngestReport> {
        let mut failed = Draft::new("dataset.ingest").detail("files", file_names(req));
        if shh_dataset::validate_name(&req.dataset).is_ok() {
            failed = failed.dataset(req.dataset.clone());
        }
        if let Some(s) = &req.schema {
            failed = failed.detail("schema", s.display().to_string());
        }
        self.audited(failed, async {
            self.ensure_writable()?;
            check_names(req)?;
            self.ingest_inner(req).await
        })
        .await
    }

    async fn ingest_inner(&self, req: &IngestRequest) -> Result<IngestReport> {
        // Format, schema and policy, plan and sources: ingest's; keys, opt-outs, the
        // writer and the event: the hub's.
        let prepared = shh_ingest::job::prepare(&shh_ingest::job::Inputs {
            files: &req.files,
            format: req.format,
            schema: req.schema.as_deref(),
            policy: req.policy.as_deref(),
            fhir_generic: req.fhir_generic,
            lenient: req.lenient,
        })
        .map_err(ingest_err)?;
        let pseudonymizer = self.pseudonymizer()?;
        let optout: HashSet<String> = self
            .catalog
            .optouts()
            .await?
            .into_iter()
            .filter(|o| o.key_version == pseudonymizer.version())
            .map(|o| o.pseudonym)
            .collect();
        let mut fk_sets = Vec::new();
        for fk in &prepared.plan.foreign_keys {
            fk_sets.push(self.reference_keys(&fk.resource, &fk.ref_fields).await?);
        }
        let plan = prepared.plan.clone();
        let identifiers: Vec<String> = plan.identifiers().iter().map(|s| s.to_string()).collect();
        let mut prepared = prepared;
        let sources = std::mem::take(&mut prepared.sources);
        let conv = Converter {
            plan,
            pseudonymizer,
            optout,
            fk_sets,
            reject_rows: req.max_errors > 0,
            lenient: req.lenient,
        };
        let key_version = conv.pseudonymizer.version();
        let mut writer = VersionWriter::new(
            self.store.clone(),
            self.catalog.clone(),
            &req.dataset,
            conv.plan.output.clone(),
            WriteOptions::default(),
        )
        .await?;

        // The pipeline runs on blocking threads; batches come back over a bounded channel and
        // are encoded and encrypted here, so reading, converting and writing overlap.
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let opts = PipelineOptions {
            max_errors: req.max_errors,
            strict_fk: req.strict_fk,
            allow_empty: req.allow_empty,
            ..Default::default()
        };
        let rejects_path = req.rejects.clone();
        let task = self.task.clone();
        task.phase("reading", None, shh_task::Unit::Rows);
        let run = tokio::task::spawn_blocking(move || {
            let mut rejects = match rejects_path {
                Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(&p).map_err(
                    |source| IngestError::Io {
                        path: p.display().to_string(),
                        source,
                    },
                )?)),
                None => None,
            };
            if let Some(w) = rejects.as_mut() {
                use std::io::Write;
                let _ = writeln!(w, "file,line,field,reason");
            }
            let out = rejects.as_mut().map(|w| w as &mut dyn std::io::Write);
            let stats = pipeline::run(&conv, sources, &opts, out, &task, |b| {
                tx.blocking_send(b)
                    .map_err(|_| IngestError::Sink("the writer stopped".into()))
            });
            if let Some(mut w) = rejects {
                use std::io::Write;
                let _ = w.flush();
            }
            stats
        });
        let mut write_error = None;
        while let Some(b) = rx.recv().await {
            if let Err(e) = writer.write(&b).await {
                write_error = Some(e);
                break;
            }
        }
        drop(rx);
        let stats = run
            .await
            .map_err(|e| ingest_err(IngestError::Sink(e.to_string())))?;
        let stats = match (write_error, stats) {
            (Some(e), _) => {
                writer.abort().await;
                return Err(e.into());
            }
            (None, Err(IngestError::Cancelled)) => {
                writer.abort().await;
                return Err(HubError::Cancelled(
                    "the ingest was stopped; nothing was written".into(),
                ));
            }
            (None, Err(e)) => {
                writer.abort().await;
                return Err(ingest_err(e));
            }
            (None, Ok(s)) => s,
        };
        let params = shh_ingest::job::IngestParams::new(
            &prepared,
            req.schema.as_deref(),
            key_version,
            &stats,
            req.lenient,
        );
        let waived = params.guard_waived.clone().unwrap_or_default();
        let dropped = params.dropped_columns.clone();
        let format = prepared.format;
        let mut map = params.to_map();
        for v in map.values_mut() {
            shh_audit::map_json_strings(v, &crate::guard::redact);
        }
        writer.set_params(map);
        let fk_violations: u64 = stats.foreign_keys.iter().map(|f| f.violations).sum();
        let event = Draft::new("dataset.ingest")
            .detail("format", serde_json::to_value(format).unwrap_or_default())
            .detail(
                "sources",
                stats
                    .sources
                    .iter()
                    .map(|s| serde_json::json!({"file": s.path, "bytes": s.bytes, "blake3": s.blake3}))
                    .collect::<Vec<_>>(),
            )
            .detail("rows_read", stats.rows_read)
            .detail("rows_written", stats.rows_written)
            .detail("rows_rejected", stats.rows_rejected)
            .detail("rows_opted_out", stats.opted_out)
            .detail("fk_violations", fk_violations)
            .detail(
                "schema_violations",
                stats.violations.iter().map(|v| v.count).sum::<u64>(),
            )
            .detail("pseudonym_key_version", u64::from(key_version))
            .detail("unique_records", stats.risk.unique_records);
        let event = if waived.is_empty() {
            event
        } else {
            event.detail("guard_waived", waived)
        };
        let v = self.commit_version_as(writer, event).await?;
        Ok(IngestReport {
            reference: crate::ops::short_ref(&req.dataset, &v.id),
            version: v.id,
            pseudonym_key_version: key_version,
            identifiers,
            dropped,
            stats,
        })
    }

    /// The key hashes of `fields` in the current version of dataset `resource`, or `None`
    /// when the hub has no such dataset (the foreign key is then reported as not checked).
    async fn reference_keys(
        &self,
        resource: &str,
        fields: &[String],
    ) -> Result<Option<shh_ingest::FkSet>> {
        if shh_dataset::validate_name(resource).is_err() {
            return Ok(None);
        }
        let rec = match self.catalog.version(resource, None).await {
            Ok(r) => r,
            Err(shh_catalog::CatalogError::NoDataset(_)) => return Ok(None),
            Err(shh_catalog::CatalogError::NoVersion { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let m = shh_dataset::load_manifest(&self.store, &rec).await?;
        if fields.iter().any(|f| m.schema.index_of(f).is_err()) {
            return Ok(None);
        }
        let mut set = HashSet::new();
        shh_dataset::read_columns(&self.store, &m, fields, |b| {
            let idx: Vec<usize> = fields
                .iter()
                .filter_map(|f| b.schema().index_of(f).ok())
                .collect();
            for h in shh_ingest::key_hashes(&b, &idx).into_iter().flatten() {
                set.insert(h);
            }
            Ok(())
        })
        .await?;
        Ok(Some(Arc::new(set)))
    }
}

/// The ingest operations.
impl Hub {
    /// Adds source identifiers to the opt-out register (stored as pseudonyms only). Every id
    /// must be of `kind` (a NIR by default, in any of its written forms): a mistyped one would
    /// silently opt nobody out, so one bad id refuses the whole list, naming its position and
    /// never its text. Returns how many were submitted and how many were new.
    pub async fn optout_add(
        &self,
        s: &Session,
        ids: &[String],
        kind: OptOutKind,
    ) -> Result<(u64, u64)> {
        self.allow(s, shh_access::Action::Ingest).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .optout_add(ids, kind)
            .await
    }

    /// The opt-out register.
    pub async fn optout_list(&self, s: &Session) -> Result<Vec<OptOutRecord>> {
        self.allow(s, shh_access::Action::Ingest).await?;
        Ok(self.core.read().await.catalog.optouts().await?)
    }

    /// Ingests files into a new version of a dataset. A failure is recorded too; a cancelled
    /// ingest (`task`) publishes nothing.
    pub async fn ingest(
        &self,
        s: &Session,
        task: &Task,
        req: &IngestRequest,
    ) -> Result<IngestReport> {
        self.allow(s, shh_access::Action::Ingest).await?;
        let core = self.core.read().await;
        // Boxed: an ingest's state is large, and a caller may poll it on a small stack.
        Box::pin(Call::new(&core, s, task).ingest(req)).await
    }
}

/// The doors of an ingest: the dataset name becomes object paths; the files, schema and
/// policy paths go into the manifest and the audit event; the rejects path into messages.
fn check_names(req: &IngestRequest) -> Result<()> {
    shh_dataset::validate_name(&req.dataset)?;
    for (i, f) in req.files.iter().enumerate() {
        crate::guard::check_path(&format!("the path of input file #{}", i + 1), f)?;
    }
    for (what, p) in [
        ("the table schema's path", &req.schema),
        ("the column policy's path", &req.policy),
        ("the rejects file's path", &req.rejects),
    ] {
        if let Some(p) = p {
            crate::guard::check_path(what, p)?;
        }
    }
    Ok(())
}

fn file_names(req: &IngestRequest) -> Vec<String> {
    req.files.iter().map(|f| f.display().to_string()).collect()
}
