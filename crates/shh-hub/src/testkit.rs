//! Test-only operations, behind the `testkit` feature: writing a sample dataset version and a
//! burst of audit events, for the `shh-testkit` binary that crash tests kill mid-way and for
//! benchmarks. They go through the same sessions, guards and audit events as every operation.

use crate::core::Call;
use crate::{Draft, Hub, Result, Session, Task};
use shh_dataset::{VersionWriter, WriteOptions, sample};

/// What to write.
#[derive(Debug, Clone)]
pub struct SampleRequest {
    /// Dataset name.
    pub dataset: String,
    /// Rows.
    pub rows: u64,
    /// Rows per Parquet file.
    pub rows_per_file: u64,
    /// A string written into every row (a test looks for it in the raw store).
    pub marker: Option<String>,
    /// Seed of the generator.
    pub seed: u64,
}

impl Hub {
    /// Writes a sample version; `on_file` sees each file (path, rows) as it is written.
    /// Returns the version's `name@short-id`.
    pub async fn testkit_write_sample(
        &self,
        s: &Session,
        req: &SampleRequest,
        mut on_file: impl FnMut(&str, u64) + Send + 'static,
    ) -> Result<String> {
        let core = self.core.read().await;
        let task = Task::silent();
        let call = Call::new(&core, s, &task);
        call.ensure_writable()?;
        let opts = WriteOptions {
            max_rows_per_file: req.rows_per_file,
            ..Default::default()
        };
        let mut w = VersionWriter::new(
            call.store.clone(),
            call.catalog.clone(),
            &req.dataset,
            sample::schema(),
            opts,
        )
        .await?;
        w.on_file(move |f| on_file(&f.path, f.rows));
        for b in sample::batches(req.rows, 8192, req.seed, req.marker.as_deref()) {
            w.write(&b).await?;
        }
        let v = call
            .commit_version_as(w, Draft::new("dataset.version.write"))
            .await?;
        Ok(crate::ops::short_ref(&req.dataset, &v.id))
    }

    /// Records one `debug.burst` event with `details`.
    pub async fn testkit_record(&self, s: &Session, writer: u64, i: u64) -> Result<u64> {
        let core = self.core.read().await;
        let task = Task::silent();
        Call::new(&core, s, &task)
            .record(
                Draft::new("debug.burst")
                    .detail("writer", writer)
                    .detail("i", i),
            )
            .await
    }

    /// Every object of the store, decrypted: what a test searches for a leaked identifier.
    pub async fn testkit_decrypted_objects(&self) -> Result<Vec<(String, bytes::Bytes)>> {
        use futures::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let core = self.core.read().await;
        let metas: Vec<_> = core.raw.list(None).try_collect().await?;
        let mut out = Vec::new();
        for m in metas {
            let bytes = core.store.get(&m.location).await?.bytes().await?;
            out.push((m.location.to_string(), bytes));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Events in the log.
    pub async fn testkit_audit_size(&self) -> Result<u64> {
        let core = self.core.read().await;
        Ok(core.audit_log().await?.size().await)
    }
}
