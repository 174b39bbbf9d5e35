//! `shh query`: SQL under a permit. The session is built for the one query: the permit's
//! views (its columns, its row predicate beneath the SQL, identifiers under the project's own
//! pseudonyms) over the version's encrypted Parquet, in a sandbox with memory, time and size
//! limits. Aggregate permits answer through disclosure control (`shh_query::disclosure`),
//! against the project's ledger; extract permits return rows.
//!
//! Every query, answered or refused, is a `query.run` event naming the permit, the project,
//! the dataset version, the query's hash, the rules that fired and the rows out. The same
//! query at the same versions returns the same bytes: fixed partitioning, exact sums, and a
//! final sort on every column unless the query orders its rows itself.

use crate::core::Call;
use crate::{Hub, HubError, Result, Session};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use shh_access::{Denied, Mode};
use shh_audit::Draft;
use shh_keys::KeyPurpose;
use shh_query::disclosure::overlap::{Ledger, LedgerCell};
use shh_query::disclosure::{self, Report};
use shh_query::{Limits, QueryError, Sandbox};
use std::collections::BTreeSet;
use std::sync::Arc;

/// `shh query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// The permits it runs under: one per dataset it reads, all of one project and one mode
    /// (a join of claims with beneficiaries takes a permit on each).
    pub permits: Vec<String>,
    /// One SQL query.
    pub sql: String,
}

/// A query's answer.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Their schema.
    pub schema: SchemaRef,
    /// What it ran on and how it was protected.
    pub provenance: Provenance,
}

/// How a result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// An aligned text table (for people); suppressed cells read `suppressed`.
    Table,
    /// CSV with a header; a suppressed cell is empty.
    Csv,
    /// JSON lines, one object per row; a suppressed cell is `null`.
    Json,
    /// Parquet (open, typed); a suppressed cell is null.
    Parquet,
}

impl Format {
    /// Parses a `--format` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "table" => Some(Self::Table),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

impl QueryResult {
    /// The result's bytes in `format`. The same result gives the same bytes.
    pub fn to_bytes(&self, format: Format) -> Result<Vec<u8>> {
        let internal = |e: &dyn std::fmt::Display| HubError::Internal(e.to_string());
        let mut out = Vec::new();
        match format {
            Format::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in &self.batches {
                    w.write(b).map_err(|e| internal(&e))?;
                }
            }
            Format::Json => {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
                for b in &self.batches {
                    w.write(b).map_err(|e| internal(&e))?;
                }
                w.finish().map_err(|e| internal(&e))?;
            }
            Format::Parquet => {
                // No creation time or library string that varies: the bytes depend on the
                // result alone.
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_created_by("shh".into())
                    .build();
                let mut w = parquet::arrow::ArrowWriter::try_new(
                    &mut out,
                    self.schema.clone(),
                    Some(props),
                )
                .map_err(|e| internal(&e))?;
                for b in &self.batches {
                    w.write(b).map_err(|e| internal(&e))?;
                }
                w.close().map_err(|e| internal(&e))?;
            }
            Format::Table => out = self.table().into_bytes(),
        }
        Ok(out)
    }

    fn table(&self) -> String {
        let null = if self.provenance.mode == Mode::Aggregate {
            "suppressed"
        } else {
            ""
        };
        let names: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut rows: Vec<Vec<String>> = Vec::new();
        let options = arrow::util::display::FormatOptions::default().with_null(null);
        for b in &self.batches {
            let fmts: Vec<_> = b
                .columns()
                .iter()
                .filter_map(|c| {
                    arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).ok()
                })
                .collect();
            for r in 0..b.num_rows() {
                rows.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
            }
        }
        let mut width: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
        for r in &rows {
            for (w, v) in width.iter_mut().zip(r) {
                *w = (*w).max(v.chars().count());
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&width)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = line(&names);
        out.push('\n');
        out.push_str(&line(
            &width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        ));
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// What a result was computed from: enough to compute it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The permits.
    pub permits: Vec<String>,
    /// The project.
    pub project: String,
    /// Aggregate or extract.
    pub mode: Mode,
    /// `dataset@version` (the full manifest id) of every view.
    pub versions: Vec<String>,
    /// BLAKE3 of the SQL text, hex.
    pub query_hash: String,
    /// Rows out.
    pub rows: u64,
    /// BLAKE3 of the result's canonical bytes (Arrow IPC), hex.
    pub result_hash: String,
    /// What disclosure control did (aggregate permits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<Report>,
}

/// The project's ledger in the catalog.
struct CatalogLedger<'a> {
    catalog: &'a dyn shh_catalog::Catalog,
    project: String,
    scope: String,
}

#[async_trait]
impl Ledger for CatalogLedger<'_> {
    async fn near(&self, signature: &str, lo: u64, hi: u64) -> Result<Vec<LedgerCell>, String> {
        self.catalog
            .ledger_near(&self.project, &self.scope, signature, lo, hi)
            .await
            .map_err(|e| e.to_string())
    }
    async fn add(&self, cells: &[LedgerCell]) -> Result<(), String> {
        self.catalog
            .ledger_add(&self.project, &self.scope, cells)
            .await
            .map_err(|e| e.to_string())
    }
}

fn query_error(e: QueryError) -> HubError {
    match e {
        QueryError::Refused(r) => HubError::Denied(Denied {
            rule: r.rule,
            reason: r.reason,
        }),
        QueryError::Limit(reason) => HubError::Denied(Denied {
            rule: "query.limit",
            reason,
        }),
        QueryError::Plan(reason) => HubError::Invalid(shh_access::Invalid {
            field: "query",
            reason,
        }),
        QueryError::Execution(m) => HubError::Internal(format!("the query failed: {m}")),
    }
}

/// Derived 32-byte keys of the hub's first pseudonym key (stable across key rotations: a
/// project's pseudonyms and the record keys must not change when ingest moves to a new key).
fn derived(core: &crate::core::Core, context: &str, salt: &[u8]) -> Result<[u8; 32]> {
    let k = core
        .keystore
        .all(KeyPurpose::Pseudonym)
        .min_by_key(|k| k.info.version)
        .ok_or_else(|| HubError::Internal("the keystore holds no pseudonym key".into()))?;
    let mut material = k.secret().to_vec();
    material.extend_from_slice(salt);
    Ok(blake3::derive_key(context, &material))
}

/// The final order: the query's own if it has one, else every column ascending.
fn ordered(
    plan_sorted: bool,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let internal = |e: arrow::error::ArrowError| HubError::Internal(e.to_string());
    let batch = arrow::compute::concat_batches(schema, &batches).map_err(internal)?;
    if plan_sorted || batch.num_rows() < 2 || batch.num_columns() == 0 {
        return Ok(vec![batch]);
    }
    let columns: Vec<arrow::compute::SortColumn> = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::SortColumn {
            values: c.clone(),
            options: None,
        })
        .collect();
    let idx = arrow::compute::lexsort_to_indices(&columns, None).map_err(internal)?;
    let cols = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &idx, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(internal)?;
    Ok(vec![
        RecordBatch::try_new(schema.clone(), cols).map_err(internal)?,
    ])
}

fn result_hash(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, schema)
            .map_err(|e| HubError::Internal(e.to_string()))?;
        for b in batches {
            w.write(b).map_err(|e| HubError::Internal(e.to_string()))?;
        }
        w.finish().map_err(|e| HubError::Internal(e.to_string()))?;
    }
    Ok(blake3::hash(&buf).to_hex().to_string())
}

/// A query answered, with what the airlock checks it against.
pub(crate) struct Answered {
    pub(crate) result: QueryResult,
    /// Each view's manifest and identifier columns.
    pub(crate) views: Vec<(shh_dataset::Manifest, Vec<String>)>,
}

fn refusal(rule: &'static str, reason: String) -> std::result::Result<(), Denied> {
    Err(Denied { rule, reason })
}

impl Call<'_> {
    async fn query(&self, req: &QueryRequest) -> Result<QueryResult> {
        Ok(self.answer(req, &[]).await?.result)
    }

    /// Answers `req`, on the versions `pinned` names (`dataset@id`: a release recomputes on
    /// the versions of its request), else on the permits'.
    pub(crate) async fn answer(&self, req: &QueryRequest, pinned: &[String]) -> Result<Answered> {
        let Some(first) = req.permits.first() else {
            return Err(shh_access::Invalid {
                field: "permit",
                reason: "name the permit (or permits, of one project) the query runs under".into(),
            }
            .into());
        };
        let mut permits = Vec::with_capacity(req.permits.len());
        for id in &req.permits {
            permits.push(self.usable_permit(id).await?);
        }
        let (_, project) = &permits[0];
        let mode = permits[0].0.terms.mode;
        let query_hash = blake3::hash(req.sql.as_bytes()).to_hex().to_string();
        let event = Draft::new("query.run")
            .permit(first.clone())
            .project(project.id.clone())
            .detail("permits", req.permits.clone())
            .detail("mode", mode.as_str())
            .detail("query_hash", query_hash.clone());
        // One project (its pseudonyms, its ledger), one mode, one permit per dataset.
        let mut datasets = BTreeSet::new();
        for (p, _) in &permits {
            let verdict = if p.terms.project != project.id {
                refusal(
                    "query.one-project",
                    format!("{} belongs to another project", p.id),
                )
            } else if p.terms.mode != mode {
                refusal(
                    "query.one-mode",
                    "the permits of one query are all aggregate or all extract".into(),
                )
            } else if !datasets.insert(p.terms.dataset.clone()) {
                refusal(
                    "query.one-dataset",
                    format!("two permits name {}", p.terms.dataset),
                )
            } else {
                Ok(())
            };
            self.enforce(&event, verdict).await?;
        }

        let limits = Limits::default();
        let sandbox = Sandbox::new(limits).map_err(query_error)?;
        sandbox
            .register_store(self.store.clone() as Arc<dyn object_store::ObjectStore>)
            .map_err(query_error)?;
        let keys = shh_query::pseudonyms::Pseudonyms::new(
            &derived(
                self,
                "shh 2026-12 project pseudonyms v1",
                project.id.as_bytes(),
            )?,
            &derived(self, "shh 2026-12 disclosure record keys v1", b"")?,
        );
        let mut versions = Vec::new();
        let mut views = Vec::new();
        for (permit, _) in &permits {
            let terms = &permit.terms;
            let pin = pinned.iter().find_map(|v| {
                v.split_once('@')
                    .filter(|(d, _)| *d == terms.dataset)
                    .map(|(_, id)| id)
            });
            let rec = self
                .catalog
                .version(&terms.dataset, pin.or(terms.version.as_deref()))
                .await?;
            let manifest = shh_dataset::load_manifest(&self.store, &rec).await?;
            versions.push(format!("{}@{}", terms.dataset, rec.id));
            let schema = Arc::new(manifest.schema.clone());
            let spec = shh_query::view::ViewSpec::of(
                &terms.dataset,
                &schema,
                terms.columns.clone(),
                terms.predicate.clone(),
            );
            let files = manifest
                .files
                .iter()
                .map(|f| shh_query::table::VersionFile {
                    path: f.path.clone(),
                    size: f.plain_size,
                })
                .collect();
            let table = Arc::new(shh_query::table::VersionTable::new(schema, files));
            let view =
                shh_query::view::build(&sandbox, table, &spec, &keys).map_err(query_error)?;
            sandbox
                .register(&terms.dataset, view)
                .map_err(query_error)?;
            views.push((manifest, spec.identifiers));
        }
        let event = event.dataset(versions.join(","));

        // Aggregate answers of one project one at a time (see `LedgerLock`).
        let _ledger = match mode {
            Mode::Aggregate => {
                match crate::lock::LedgerLock::take(&self.dir, &project.id, limits.wall).await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        self.record(event.failed(e.to_string())).await?;
                        return Err(e);
                    }
                }
            }
            Mode::Extract => None,
        };
        let run = async {
            let plan = sandbox.plan(&req.sql).await?;
            let sorted = matches!(
                &plan,
                shh_query::datafusion::logical_expr::LogicalPlan::Sort(_)
            ) || matches!(&plan, shh_query::datafusion::logical_expr::LogicalPlan::Limit(l)
                if matches!(l.input.as_ref(), shh_query::datafusion::logical_expr::LogicalPlan::Sort(_)));
            let schema = Arc::new(plan.schema().as_arrow().clone());
            match mode {
                Mode::Extract => Ok((sandbox.collect(plan).await?, None, sorted, schema)),
                Mode::Aggregate => {
                    // One ledger per project, across its permits and datasets: a second
                    // permit of the project does not escape what the first released.
                    let ledger = CatalogLedger {
                        catalog: self.catalog.as_ref(),
                        project: project.id.clone(),
                        scope: "project".into(),
                    };
                    let settings = &self.config.disclosure;
                    let (b, r) =
                        disclosure::answer(&sandbox, plan, &datasets, &keys, settings, &ledger)
                            .await?;
                    Ok((b, Some(r), sorted, schema))
                }
            }
        };
        let (batches, report, sorted, schema) = match run.await {
            Ok(v) => v,
            Err(e) => {
                let e = query_error(e);
                let draft = match &e {
                    HubError::Denied(d) => event.detail("rule", d.rule).refused(d.reason.clone()),
                    other => event.failed(other.to_string()),
                };
                self.record(draft).await?;
                return Err(e);
            }
        };
        let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
        let batches = ordered(sorted, &schema, batches)?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let provenance = Provenance {
            permits: req.permits.clone(),
            project: project.id.clone(),
            mode,
            versions,
            query_hash,
            rows,
            result_hash: result_hash(&schema, &batches)?,
            disclosure: report.clone(),
        };
        let mut event = event
            .detail("rows_out", rows)
            .detail("result_hash", provenance.result_hash.clone());
        if let Some(r) = &report {
            event = event
                .detail("cells", r.cells)
                .detail("published", r.published)
                .detail("rules", serde_json::to_value(&r.rules).unwrap_or_default());
        }
        self.record(event).await?;
        Ok(Answered {
            result: QueryResult {
                batches,
                schema,
                provenance,
            },
            views,
        })
    }
}

impl Hub {
    /// Runs one SQL query under a permit.
    pub async fn query(&self, s: &Session, req: &QueryRequest) -> Result<QueryResult> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .query(req)
            .await
    }

    /// The hub's disclosure settings (`shh disclosure show`).
    pub async fn disclosure_settings(&self, s: &Session) -> Result<disclosure::Settings> {
        // Public to every role: the protection is stated, not hidden.
        self.allow(s, shh_access::Action::DatasetsShow).await?;
        let core = self.core.read().await;
        Ok(core.config.disclosure.clone())
    }
}
