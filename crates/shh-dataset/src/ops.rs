//! Reading versions back: manifests, verification and export.

use crate::manifest::{Manifest, SHORT_ID};
use crate::{DatasetError, HubStore};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Serialize;
use shh_catalog::{Catalog, VersionRecord};
use shh_sink::{Sink, Staged};
use std::sync::Arc;

/// Reads and authenticates a version's manifest (its hash must be the version id).
pub async fn load_manifest(
    store: &HubStore,
    record: &VersionRecord,
) -> Result<Manifest, DatasetError> {
    let p = Path::from(record.manifest_path.as_str());
    let bytes = store.get(&p).await?.bytes().await?;
    Manifest::from_stored(&bytes, &record.id, &record.manifest_path)
}

/// The check of one file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FileCheck {
    /// Path in the store.
    pub path: String,
    /// Whether sizes and both hashes match the manifest.
    pub ok: bool,
    /// What failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Result of verifying a version.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct VerifyReport {
    /// Dataset.
    pub dataset: String,
    /// Version id.
    pub version: String,
    /// Rows the manifest announces.
    pub rows: u64,
    /// Bytes of ciphertext re-read.
    pub stored_bytes: u64,
    /// Every file, in manifest order.
    pub files: Vec<FileCheck>,
}

impl VerifyReport {
    /// The first file that failed, if any.
    pub fn first_bad(&self) -> Option<&FileCheck> {
        self.files.iter().find(|f| !f.ok)
    }
}

/// Re-reads every file of a version, authenticating each segment, and checks the plaintext
/// and ciphertext BLAKE3 and sizes against the manifest. Every file is checked even after a
/// failure, so the report is complete; [`VerifyReport::first_bad`] names the first.
pub async fn verify_version(
    store: &HubStore,
    catalog: &dyn Catalog,
    dataset: &str,
    version: Option<&str>,
) -> Result<VerifyReport, DatasetError> {
    let record = catalog.version(dataset, version).await?;
    let manifest = load_manifest(store, &record).await?;
    let mut files = Vec::with_capacity(manifest.files.len());
    let mut stored_bytes = 0;
    for f in &manifest.files {
        let check = match store.read_digest(&Path::from(f.path.as_str())).await {
            Err(e) => Err(e.to_string()),
            Ok(d) => {
                stored_bytes += d.stored_len;
                let mut diffs = Vec::new();
                if d.stored_len != f.stored_size {
                    diffs.push(format!("stored size {} != {}", d.stored_len, f.stored_size));
                }
                if hex::encode(d.stored_blake3) != f.stored_blake3 {
                    diffs.push("ciphertext BLAKE3 differs".to_owned());
                }
                if d.plain_len != f.plain_size {
                    diffs.push(format!(
                        "plaintext size {} != {}",
                        d.plain_len, f.plain_size
                    ));
                }
                if hex::encode(d.plain_blake3) != f.plain_blake3 {
                    diffs.push("plaintext BLAKE3 differs".to_owned());
                }
                if diffs.is_empty() {
                    Ok(())
                } else {
                    Err(diffs.join(", "))
                }
            }
        };
        files.push(FileCheck {
            path: f.path.clone(),
            ok: check.is_ok(),
            error: check.err(),
        });
    }
    Ok(VerifyReport {
        dataset: dataset.to_owned(),
        version: record.id,
        rows: manifest.rows,
        stored_bytes,
        files,
    })
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportReport {
    /// The result's name in the sink: `<dataset>@<id12>`.
    pub name: String,
    /// Where it is (for a local directory, its path).
    pub location: String,
    /// Version id.
    pub version: String,
    /// Parquet files written, relative to the result.
    pub files: Vec<String>,
    /// Rows.
    pub rows: u64,
    /// Plaintext bytes written.
    pub bytes: u64,
}

/// The file an export's human-readable manifest is in.
pub const EXPORT_MANIFEST: &str = "manifest.json";

/// Writes a version as plain Parquet files plus its manifest, as the result
/// `<dataset>@<id12>` of `sink`.
///
/// `manifest.json` is for people; `manifest.canonical.json` holds the exact bytes whose BLAKE3
/// is the version id, so a recipient can check the export against a cited version without shh.
/// Each file's plaintext hash is checked while it is written. The sink shows the result only
/// once it is complete: an interrupted export leaves nothing half-written.
pub async fn export_version(
    store: &HubStore,
    catalog: &dyn Catalog,
    dataset: &str,
    version: Option<&str>,
    sink: &dyn Sink,
) -> Result<ExportReport, DatasetError> {
    stage_export(store, catalog, dataset, version, sink)
        .await?
        .publish()
        .await
}

/// An export staged in its sink, not yet visible under its name. The hub records the audit
/// event before [`StagedExport::publish`]: nothing leaves unrecorded. Dropping it discards it.
#[derive(Debug)]
pub struct StagedExport {
    staged: Box<dyn Staged>,
    report: ExportReport,
}

impl StagedExport {
    /// What the export holds.
    pub fn report(&self) -> &ExportReport {
        &self.report
    }

    /// Makes the export visible under its name.
    pub async fn publish(self) -> Result<ExportReport, DatasetError> {
        let mut report = self.report;
        report.location = self.staged.commit().await?;
        Ok(report)
    }

    /// Removes the staged files.
    pub async fn discard(self) {
        self.staged.abort().await;
    }
}

/// Builds an export staged in `sink`; see [`export_version`].
pub async fn stage_export(
    store: &HubStore,
    catalog: &dyn Catalog,
    dataset: &str,
    version: Option<&str>,
    sink: &dyn Sink,
) -> Result<StagedExport, DatasetError> {
    let record = catalog.version(dataset, version).await?;
    let manifest = load_manifest(store, &record).await?;
    let name = format!("{dataset}@{}", &record.id[..SHORT_ID]);
    // Dropped on any error below: the sink discards what was written.
    let staged = sink.stage(&name).await?;
    let mut files = Vec::new();
    let mut bytes = 0;
    for (i, f) in manifest.files.iter().enumerate() {
        let rel = format!("data/part-{i:05}.parquet");
        let mut file = staged.create(&rel).await?;
        let mut hasher = blake3::Hasher::new();
        let mut stream = store.get(&Path::from(f.path.as_str())).await?.into_stream();
        while let Some(chunk) = stream.try_next().await? {
            hasher.update(&chunk);
            file.write(&chunk).await?;
            bytes += chunk.len() as u64;
        }
        if hasher.finalize().to_hex().as_str() != f.plain_blake3 {
            return Err(DatasetError::FileMismatch {
                path: f.path.clone(),
                what: "plaintext BLAKE3 differs from the manifest".into(),
            });
        }
        file.finish().await?;
        files.push(rel);
    }
    let pretty =
        serde_json::to_vec_pretty(&manifest).map_err(|e| DatasetError::Manifest(e.to_string()))?;
    staged.put(EXPORT_MANIFEST, pretty.into()).await?;
    staged
        .put(
            "manifest.canonical.json",
            manifest.canonical_bytes()?.into(),
        )
        .await?;
    Ok(StagedExport {
        report: ExportReport {
            name,
            location: staged.location(),
            version: record.id,
            files,
            rows: manifest.rows,
            bytes,
        },
        staged,
    })
}

/// Streams the named columns of every file of a version (integrity is checked by the
/// encryption layer on every range read), calling `f` on each batch.
pub async fn read_columns(
    store: &Arc<HubStore>,
    manifest: &Manifest,
    columns: &[String],
    mut f: impl FnMut(arrow::record_batch::RecordBatch) -> Result<(), DatasetError>,
) -> Result<(), DatasetError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    for file in &manifest.files {
        // Whole files (at most the writer's file size): the reference tables read this way are
        // key columns, and the bytes are authenticated as they are decrypted.
        let bytes = store
            .get(&Path::from(file.path.as_str()))
            .await?
            .bytes()
            .await?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
        let roots: Vec<usize> = columns
            .iter()
            .map(|c| {
                builder.schema().index_of(c).map_err(|_| {
                    DatasetError::SchemaMismatch(format!(
                        "{}: no column {c:?} in {}",
                        manifest.dataset, file.path
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), roots);
        for b in builder.with_projection(mask).build()? {
            f(b?)?;
        }
    }
    Ok(())
}
