//! Dataset operations as the CLI and server call them: parse `NAME[@VERSION]`, list, show,
//! verify, export, the keys' public metadata, and the raw (ciphertext) store.

use crate::core::Call;
use crate::{Hub, HubError, Result, Session, Task};
use arrow_schema::Schema;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use shh_audit::Draft;
use shh_catalog::{DatasetRecord, VersionRecord};
pub use shh_dataset::EXPORT_MANIFEST;
use shh_dataset::{ExportReport, FileEntry, SHORT_ID, VerifyReport};
use shh_keys::KeyInfo;
use shh_sink::Sink;
use std::collections::BTreeMap;

/// `NAME` or `NAME@VERSION-PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// Dataset name.
    pub name: String,
    /// Version id prefix; `None` means current.
    pub version: Option<String>,
}

impl DatasetRef {
    /// `NAME` or `NAME@PREFIX` as given (for an event about a version not resolved).
    pub fn shown(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{v}", self.name),
            None => self.name.clone(),
        }
    }

    /// Parses `NAME[@VERSION]`.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (s, None),
        };
        shh_dataset::validate_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            version,
        })
    }
}

/// The versions of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsRequest {
    /// Dataset name.
    pub dataset: String,
}

/// An export of one version, as plain Parquet and its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The version (default: current).
    pub dataset: DatasetRef,
}

/// A version as shown to people and machines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionView {
    /// `name@short-id`.
    pub reference: String,
    /// Dataset.
    pub dataset: String,
    /// Full id.
    pub id: String,
    /// Whether it is the current version.
    pub current: bool,
    /// Parent id.
    pub parent: Option<String>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Rows.
    pub rows: u64,
    /// Columns: name → Arrow type.
    pub columns: Vec<(String, String)>,
    /// Files.
    pub files: Vec<FileEntry>,
    /// Creation parameters.
    pub params: BTreeMap<String, serde_json::Value>,
}

impl VersionView {
    /// How the version was made, if an ingest wrote it (typed: the risk report, sources,
    /// counts).
    pub fn ingest_params(&self) -> Option<crate::ingest::IngestParams> {
        crate::ingest::IngestParams::from_map(&self.params)
    }
}

/// `name@<first 12 hex of id>`.
pub fn short_ref(dataset: &str, id: &str) -> String {
    format!("{dataset}@{}", &id[..SHORT_ID.min(id.len())])
}

fn columns(schema: &Schema) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect()
}

impl Call<'_> {
    pub(crate) async fn show(&self, r: &DatasetRef) -> Result<VersionView> {
        let rec = self.catalog.version(&r.name, r.version.as_deref()).await?;
        let current = self.catalog.dataset(&r.name).await?.current;
        let m = shh_dataset::load_manifest(&self.store, &rec).await?;
        Ok(VersionView {
            reference: short_ref(&r.name, &rec.id),
            dataset: r.name.clone(),
            current: current.as_deref() == Some(rec.id.as_str()),
            id: rec.id,
            parent: m.parent.clone(),
            created_at: m.created_at,
            rows: m.rows,
            columns: columns(&m.schema),
            files: m.files,
            params: m.params,
        })
    }

    async fn verify(&self, r: &DatasetRef) -> Result<VerifyReport> {
        let failed = Draft::new("dataset.verify").dataset(r.shown());
        let report = self
            .audited(failed, async {
                Ok(shh_dataset::verify_version(
                    &self.store,
                    self.catalog.as_ref(),
                    &r.name,
                    r.version.as_deref(),
                )
                .await?)
            })
            .await?;
        let mut event = Draft::new("dataset.verify")
            .dataset(short_ref(&r.name, &report.version))
            .detail("files", report.files.len() as u64)
            .detail("stored_bytes", report.stored_bytes);
        if let Some(bad) = report.first_bad() {
            let error = bad.error.clone().unwrap_or_else(|| "mismatch".into());
            event = event
                .detail("first_bad_file", bad.path.clone())
                .detail("error", error.clone())
                .failed(format!("{}: {error}", bad.path));
        }
        event = event.detail("ok", report.first_bad().is_none());
        self.record(event).await?;
        Ok(report)
    }

    async fn export(&self, r: &DatasetRef, sink: &dyn Sink) -> Result<ExportReport> {
        // The location is recorded: it must not carry an identifier into the log.
        crate::guard::check("the export's location", &sink.location())?;
        let failed = Draft::new("dataset.export")
            .dataset(r.shown())
            .object(sink.location());
        let staged = self
            .audited(failed.clone(), async {
                Ok(shh_dataset::stage_export(
                    &self.store,
                    self.catalog.as_ref(),
                    &r.name,
                    r.version.as_deref(),
                    sink,
                )
                .await?)
            })
            .await?;
        if self.task.is_cancelled() {
            staged.discard().await;
            return Err(HubError::Cancelled(
                "the export was stopped; nothing was written".into(),
            ));
        }
        let rep = staged.report();
        let event = Draft::new("dataset.export")
            .dataset(short_ref(&r.name, &rep.version))
            .object(rep.location.clone())
            .detail("rows_out", rep.rows)
            .detail("bytes_out", rep.bytes)
            .detail("files", rep.files.len() as u64);
        if let Err(e) = self.record(event).await {
            staged.discard().await;
            return Err(e);
        }
        self.audited(failed, async { Ok(staged.publish().await?) })
            .await
    }

    async fn raw_objects(&self) -> Result<Vec<(String, u64)>> {
        let mut v: Vec<(String, u64)> = self
            .raw
            .list(None)
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
            .map_err(HubError::from)?;
        v.sort();
        Ok(v)
    }
}

/// The dataset operations.
impl Hub {
    /// Every dataset, by name.
    pub async fn datasets(&self, s: &Session) -> Result<Vec<DatasetRecord>> {
        self.allow(s, shh_access::Action::DatasetsShow).await?;
        Ok(self.core.read().await.catalog.datasets().await?)
    }

    /// The versions of a dataset, oldest first.
    pub async fn versions(&self, s: &Session, req: &VersionsRequest) -> Result<Vec<VersionRecord>> {
        self.allow(s, shh_access::Action::DatasetsShow).await?;
        Ok(self
            .core
            .read()
            .await
            .catalog
            .versions(&req.dataset)
            .await?)
    }

    /// Shows one version (its manifest is authenticated on the way).
    pub async fn show(&self, s: &Session, r: &DatasetRef) -> Result<VersionView> {
        self.allow(s, shh_access::Action::DatasetsShow).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent()).show(r).await
    }

    /// The re-identification risk report of a version, from the ingest that wrote it (`None`
    /// when no ingest did).
    pub async fn risk(
        &self,
        s: &Session,
        r: &DatasetRef,
    ) -> Result<(String, Option<shh_pseudo::RiskReport>)> {
        self.allow(s, shh_access::Action::DatasetsRisk).await?;
        let core = self.core.read().await;
        let v = Call::new(&core, s, &Task::silent()).show(r).await?;
        Ok((v.reference.clone(), v.ingest_params().map(|p| p.risk)))
    }

    /// Verifies one version; the outcome is recorded: a bad file, a missing or altered
    /// manifest, an unknown version, each as a failure naming what is wrong.
    pub async fn verify(&self, s: &Session, task: &Task, r: &DatasetRef) -> Result<VerifyReport> {
        self.allow(s, shh_access::Action::DatasetsVerify).await?;
        let core = self.core.read().await;
        Call::new(&core, s, task).verify(r).await
    }

    /// Exports one version as the result `<dataset>@<id12>` of the caller's `sink`. The event
    /// (rows and bytes out, the version exported) is durable before the result appears under
    /// its name; a failed export is recorded too.
    pub async fn export(
        &self,
        s: &Session,
        task: &Task,
        req: &ExportRequest,
        sink: &dyn Sink,
    ) -> Result<ExportReport> {
        self.allow(s, shh_access::Action::Export).await?;
        let core = self.core.read().await;
        Call::new(&core, s, task).export(&req.dataset, sink).await
    }

    /// Every object in the backend, as the cloud provider sees it: path and stored size.
    pub async fn raw_objects(&self, s: &Session) -> Result<Vec<(String, u64)>> {
        self.allow(s, shh_access::Action::StoreLs).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent()).raw_objects().await
    }

    /// The keystore's keys: purpose, version, id and creation time (never a secret).
    pub async fn keys(&self, s: &Session) -> Result<Vec<KeyInfo>> {
        self.allow(s, shh_access::Action::Keys).await?;
        Ok(self.core.read().await.keystore.keys())
    }
}
