//! Writing a version from Arrow record batches.

use crate::manifest::{FileEntry, MANIFEST_FORMAT, Manifest, data_path, manifest_path};
use crate::{DatasetError, HubStore, validate_name};
use arrow::record_batch::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use shh_catalog::{Catalog, VersionRecord};
use shh_crypt::{EncryptedWriter, ObjectDigest};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a version is written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Start a new file after this many rows.
    pub max_rows_per_file: u64,
    /// Start a new file after about this many encoded bytes.
    pub max_bytes_per_file: u64,
    /// Rows per Parquet row group (the unit buffered in memory).
    pub row_group_rows: usize,
    /// Parquet compression (zstd level 3 by default).
    pub compression: Compression,
    /// Recorded in the manifest (source files, tool version, options).
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            max_rows_per_file: 5_000_000,
            max_bytes_per_file: 256 << 20,
            row_group_rows: 128 * 1024,
            compression: Compression::ZSTD(ZstdLevel::default()),
            params: BTreeMap::new(),
        }
    }
}

/// A committed version.
#[derive(Debug, Clone)]
pub struct CommittedVersion {
    /// The manifest.
    pub manifest: Manifest,
    /// Its id.
    pub id: String,
    /// Catalog record.
    pub record: VersionRecord,
}

/// Adapts the encrypted writer to Parquet's async sink, keeping the digest when complete.
struct Sink {
    writer: Option<EncryptedWriter>,
    digest: Option<ObjectDigest>,
}

impl AsyncFileWriter for Sink {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move {
            let w = self.writer.as_mut().ok_or_else(|| {
                parquet::errors::ParquetError::General("write after complete".into())
            })?;
            w.write(&bs)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        })
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move {
            if let Some(w) = self.writer.take() {
                let d = w
                    .finish()
                    .await
                    .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
                self.digest = Some(d);
            }
            Ok(())
        })
    }
}

/// Called after each data file is written.
type FileCallback = Box<dyn FnMut(&FileEntry) + Send>;

struct OpenFile {
    path: String,
    writer: AsyncArrowWriter<Sink>,
    rows: u64,
}

/// Streams record batches into a new version of a dataset.
pub struct VersionWriter {
    store: Arc<HubStore>,
    catalog: Arc<dyn Catalog>,
    dataset: String,
    parent: Option<String>,
    schema: SchemaRef,
    opts: WriteOptions,
    props: WriterProperties,
    current: Option<OpenFile>,
    files: Vec<FileEntry>,
    rows: u64,
    /// Called after each file is durably written (progress display, tests).
    on_file: Option<FileCallback>,
}

impl VersionWriter {
    /// Starts a version of `dataset` on top of its current version (if any).
    pub async fn new(
        store: Arc<HubStore>,
        catalog: Arc<dyn Catalog>,
        dataset: &str,
        schema: SchemaRef,
        opts: WriteOptions,
    ) -> Result<Self, DatasetError> {
        validate_name(dataset)?;
        let parent = match catalog.dataset(dataset).await {
            Ok(d) => d.current,
            Err(shh_catalog::CatalogError::NoDataset(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let props = WriterProperties::builder()
            .set_compression(opts.compression)
            .set_max_row_group_row_count(Some(opts.row_group_rows))
            .build();
        Ok(Self {
            store,
            catalog,
            dataset: dataset.to_owned(),
            parent,
            schema,
            opts,
            props,
            current: None,
            files: Vec::new(),
            rows: 0,
            on_file: None,
        })
    }

    /// Registers a callback run after each data file is written.
    pub fn on_file(&mut self, f: impl FnMut(&FileEntry) + Send + 'static) {
        self.on_file = Some(Box::new(f));
    }

    /// Replaces the creation parameters recorded in the manifest (known only at the end of an
    /// ingest: counts, source hashes, the risk report).
    pub fn set_params(&mut self, params: BTreeMap<String, serde_json::Value>) {
        self.opts.params = params;
    }

    /// The version this one will build on.
    pub fn parent(&self) -> Option<&str> {
        self.parent.as_deref()
    }

    /// Appends a batch.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), DatasetError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(DatasetError::SchemaMismatch(format!(
                "expected {:?}, got {:?}",
                self.schema.fields(),
                batch.schema().fields()
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.current.is_none() {
            let path = data_path(&self.dataset);
            let w = self.store.writer(&Path::from(path.as_str()))?;
            let sink = Sink {
                writer: Some(w),
                digest: None,
            };
            let writer =
                AsyncArrowWriter::try_new(sink, self.schema.clone(), Some(self.props.clone()))?;
            self.current = Some(OpenFile {
                path,
                writer,
                rows: 0,
            });
        }
        if let Some(f) = self.current.as_mut() {
            f.writer.write(batch).await?;
            f.rows += batch.num_rows() as u64;
            self.rows += batch.num_rows() as u64;
            let size = f.writer.bytes_written() as u64 + f.writer.in_progress_size() as u64;
            if f.rows >= self.opts.max_rows_per_file || size >= self.opts.max_bytes_per_file {
                self.close_file().await?;
            }
        }
        Ok(())
    }

    async fn close_file(&mut self) -> Result<(), DatasetError> {
        let Some(mut f) = self.current.take() else {
            return Ok(());
        };
        f.writer.finish().await?;
        let sink = f.writer.into_inner();
        let d = sink
            .digest
            .ok_or_else(|| DatasetError::Manifest(format!("no digest for {}", f.path)))?;
        let entry = FileEntry {
            path: f.path,
            rows: f.rows,
            plain_size: d.plain_len,
            plain_blake3: hex::encode(d.plain_blake3),
            stored_size: d.stored_len,
            stored_blake3: hex::encode(d.stored_blake3),
        };
        if let Some(cb) = self.on_file.as_mut() {
            cb(&entry);
        }
        self.files.push(entry);
        Ok(())
    }

    /// Gives up: the file being written is aborted and the files already written are deleted
    /// (best effort: a file that cannot be deleted is unreferenced and invisible), so a failed
    /// write leaves nothing behind.
    pub async fn abort(mut self) {
        if let Some(f) = self.current.take() {
            let mut sink = f.writer.into_inner();
            if let Some(w) = sink.writer.take() {
                let _ = w.abort().await;
            }
        }
        for f in std::mem::take(&mut self.files) {
            let _ = self.store.delete(&Path::from(f.path.as_str())).await;
        }
    }

    /// Finishes the files, writes the manifest create-only and moves the current pointer.
    pub async fn commit(self) -> Result<CommittedVersion, DatasetError> {
        self.seal().await?.publish().await
    }

    /// Finishes the files and writes the manifest create-only, without publishing: the
    /// version has its identity but is not visible. The hub records the audit event between
    /// [`Self::seal`] and [`SealedVersion::publish`], so no version is ever visible without it.
    pub async fn seal(mut self) -> Result<SealedVersion, DatasetError> {
        self.close_file().await?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            dataset: self.dataset.clone(),
            parent: self.parent.clone(),
            created_at: chrono::Utc::now(),
            schema: self.schema.as_ref().clone(),
            files: std::mem::take(&mut self.files),
            rows: self.rows,
            params: std::mem::take(&mut self.opts.params),
        };
        let bytes = manifest.canonical_bytes()?;
        let id = blake3::hash(&bytes).to_hex().to_string();
        let mpath = manifest_path(&self.dataset, &id);
        match self
            .store
            .put_with_digest(&Path::from(mpath.as_str()), bytes.into(), PutMode::Create)
            .await
        {
            Ok(_) => {}
            // Identical content at the same content address: a retry after a crash between
            // manifest and catalog commit. The stored object is checked when it is read.
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let record = VersionRecord {
            dataset: self.dataset.clone(),
            id: id.clone(),
            parent: self.parent.clone(),
            manifest_path: mpath,
            created_at: manifest.created_at,
            rows: manifest.rows,
            files: manifest.files.len() as u64,
            bytes: manifest.plain_bytes(),
        };
        Ok(SealedVersion {
            catalog: self.catalog.clone(),
            version: CommittedVersion {
                manifest,
                id,
                record,
            },
        })
    }
}

/// A version whose files and manifest are stored but which the catalog does not show yet.
pub struct SealedVersion {
    catalog: Arc<dyn Catalog>,
    version: CommittedVersion,
}

impl SealedVersion {
    /// The version as it will be published.
    pub fn version(&self) -> &CommittedVersion {
        &self.version
    }

    /// Moves the dataset's current pointer to this version (compare-and-swap on the parent).
    pub async fn publish(self) -> Result<CommittedVersion, DatasetError> {
        self.catalog.commit_version(&self.version.record).await?;
        Ok(self.version)
    }
}
