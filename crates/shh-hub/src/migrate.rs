//! The hub's side of a migration: which stores (residency-checked before any request), where
//! plans, journals and reports live (`<hub>/migrate/`), what the manifests say every object
//! must hash to, the cut-over state in `shh.toml`, and the audit event of every step.
//!
//! The mechanics (listing, plan, transfer, journal, report) are `shh-migrate`'s.

use crate::config::MigrationState;
use crate::core::{Call, CallMut, save_config};
use crate::{Draft, Hub, HubError, Result, Session, Task};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;
use serde::{Deserialize, Serialize};
use shh_crypt::EncryptedStore;
use shh_migrate::blake3_of;
use shh_migrate::listing::{DEFAULT_RUN_LEN, SortedListing};
use shh_migrate::plan::{Estimate, PLAN_FORMAT, PlanCapabilities, march, write_plan};
use shh_migrate::report::{ObjectCheck, ReportWriter};
use shh_migrate::transfer::execute;
use shh_migrate::{
    Capabilities, Journal, MigrateError, PlanReader, RunStats, Side, Summary, probe,
};
use shh_store::StoreUrl;

pub use shh_migrate::report::{AcceptanceReport, ReportCheck};
pub use shh_migrate::{Options, PlanHeader, VerifyMode};
pub use shh_store::retry::BackoffConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRequest {
    /// A reviewed plan to execute.
    pub plan: Option<PathBuf>,
    /// Or: the source (default: the hub's primary store)…
    pub from: Option<String>,
    /// …and the destination, planned now.
    pub to: Option<String>,
    /// Only names under this prefix.
    pub prefix: Option<String>,
    /// Compare same-size objects by content.
    pub checksum: bool,
    /// Transfer options.
    pub options: Options,
    /// With `options.delete`: refuse to run if more destination-only objects than this.
    pub max_delete: u64,
    /// Recorded as `migrate.sync` rather than `migrate.run`.
    pub sync: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The plan executed.
    pub plan: PathBuf,
    /// Its hash.
    pub plan_hash: String,
    /// Source.
    pub from: String,
    /// Destination.
    pub to: String,
    /// The plan's counts.
    pub summary: Summary,
    /// What happened.
    pub stats: RunStats,
    /// The journal.
    pub journal: PathBuf,
    /// Objects the journal had verified before this run.
    pub journal_done_before: u64,
    /// Interrupted multipart uploads found in the journal.
    pub resumable_uploads: usize,
    /// Audit sequence number of the run's event.
    pub audit_seq: u64,
}

/// What a cut-over or rollback did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchReport {
    /// The store the hub ran on.
    pub from: String,
    /// The store it runs on now.
    pub to: String,
    /// The final sync.
    pub sync: RunReport,
    /// The acceptance report (cut-over only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<AcceptanceReport>,
    /// The store receiving dual writes from now on.
    pub mirror: Option<String>,
}

/// Shadow-read comparison of the primary store and another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    /// The primary.
    pub primary: String,
    /// The other side.
    pub other: String,
    /// Objects at the primary.
    pub listed: u64,
    /// Objects read on both sides.
    pub sampled: u64,
    /// Identical.
    pub equal: u64,
    /// Missing at the other side.
    pub missing: Vec<String>,
    /// Different bytes.
    pub differ: Vec<String>,
    /// Bytes read per side.
    pub bytes: u64,
}

/// A plan to write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanRequest {
    /// The source (default: the hub's primary store).
    pub from: Option<String>,
    /// The destination.
    pub to: String,
    /// Only names under this prefix.
    pub prefix: Option<String>,
    /// Compare same-size objects by content.
    pub checksum: bool,
    /// Transfers the estimate assumes.
    pub transfers: usize,
    /// Where the plan is written.
    pub out: PathBuf,
}

/// An acceptance check of a store against the manifests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyRequest {
    /// The store (default: the primary).
    pub to: Option<String>,
    /// Decrypt and check the plaintext too.
    pub deep: bool,
    /// Objects read at once.
    pub concurrency: usize,
    /// The directory the signed report is written into.
    pub out: PathBuf,
}

/// A cut-over to another store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CutoverRequest {
    /// The new primary store.
    pub to: String,
    /// The final sync's transfer options.
    pub options: Options,
    /// How long to wait for other operations and processes to let go of the hub.
    pub wait: std::time::Duration,
    /// Keep the source current by dual writes until finalize.
    pub mirror_source: bool,
    /// The directory the acceptance report is written into.
    pub report_dir: PathBuf,
}

/// A rollback to the cut-over's source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RollbackRequest {
    /// The copy-back's transfer options.
    pub options: Options,
    /// How long to wait for other operations and processes to let go of the hub.
    pub wait: std::time::Duration,
}

/// Shadow reads against another store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CompareRequest {
    /// The other store (default: the mirror, or the cut-over's source).
    pub with: Option<String>,
    /// Percent of the primary's objects read.
    pub pct: f64,
    /// Objects read at once.
    pub concurrency: usize,
}

/// Checks an acceptance report in `dir` against the hub's public keys, without the hub: what
/// an auditor runs on a copy.
pub fn check_report(dir: &Path, keys: &[shh_audit::PublicKey]) -> Result<ReportCheck> {
    shh_migrate::report::check_report(dir, keys).map_err(migrate_err)
}

fn refused(msg: impl Into<String>) -> HubError {
    HubError::Migrate(MigrateError::Refused(msg.into()))
}

/// Probes a migration's source (read-only) and destination at once.
async fn probed(
    (from_url, from): (StoreUrl, shh_store::Backend),
    (to_url, to): (StoreUrl, shh_store::Backend),
) -> (Side, Side) {
    let (from_caps, to_caps) = futures::join!(
        probe::probe(&from_url, &from, false),
        probe::probe(&to_url, &to, true)
    );
    (
        Side {
            url: from_url,
            backend: from,
            caps: from_caps,
        },
        Side {
            url: to_url,
            backend: to,
            caps: to_caps,
        },
    )
}

fn migrate_err(e: MigrateError) -> HubError {
    HubError::Migrate(e)
}

impl crate::core::Core {
    /// Where plans, journals and reports are kept.
    pub(crate) fn migrate_dir(&self) -> PathBuf {
        self.dir.join("migrate")
    }
}

impl Call<'_> {
    /// Opens a store for migration: the residency policy is checked first, so a refused
    /// destination never receives a request. A writable side is probed by a tiny create-only
    /// write under `.shh-migrate/`.
    async fn open_side(&self, url: &str, write: bool) -> Result<Side> {
        let (url, backend) = self.side_backend(url)?;
        let caps = probe::probe(&url, &backend, write).await;
        Ok(Side { url, backend, caps })
    }

    /// The residency check and the client of one side; nothing is sent.
    fn side_backend(&self, url: &str) -> Result<(StoreUrl, shh_store::Backend)> {
        // A prefix becomes part of every object name the provider reads.
        crate::guard::check("a store URL", url)?;
        let url = StoreUrl::parse(url).map_err(shh_store::StoreError::from)?;
        let backend = shh_store::open_backend(&url, &self.config.residency)?;
        Ok((url, backend))
    }

    fn journal_path(&self, from: &str, to: &str) -> PathBuf {
        let key = blake3::hash(format!("{from}\n{to}").as_bytes()).to_hex();
        self.migrate_dir()
            .join(format!("journal-{}.ndjson", &key[..16]))
    }

    async fn migrate_plan(
        &self,
        from: Option<&str>,
        to: &str,
        prefix: Option<&str>,
        checksum: bool,
        transfers: usize,
        out: &Path,
    ) -> Result<PlanHeader> {
        let from = from.unwrap_or(&self.config.store).to_owned();
        let (header, _) = self
            .plan_sides(&from, to, prefix, checksum, transfers, out)
            .await?;
        Ok(header)
    }

    /// Opens the source and destination of a migration (the destination's residency checked
    /// before any request is sent to either) and probes both at once.
    async fn open_sides(&self, from: &str, to: &str) -> Result<(Side, Side)> {
        let to = self.side_backend(to)?;
        let from = self.side_backend(from)?;
        Ok(probed(from, to).await)
    }

    /// Opens both sides and plans between them: the probes and the two listings all run at
    /// once (listings skip the probes' `.shh-migrate/` objects). Returns the plan written to
    /// `out` and the opened sides.
    async fn plan_sides(
        &self,
        from: &str,
        to: &str,
        prefix: Option<&str>,
        checksum: bool,
        transfers: usize,
        out: &Path,
    ) -> Result<(PlanHeader, (Side, Side))> {
        let tmp = self.migrate_dir();
        std::fs::create_dir_all(&tmp).map_err(crate::io(&tmp))?;
        let to = self.side_backend(to)?;
        let from = self.side_backend(from)?;
        let (from_store, from_name) = (from.1.store.clone(), from.0.to_string());
        let (to_store, to_name) = (to.1.store.clone(), to.0.to_string());
        let ((src, dst), listings) = futures::join!(
            probed(from, to),
            futures::future::try_join(
                SortedListing::collect(
                    from_store.as_ref(),
                    &from_name,
                    prefix,
                    DEFAULT_RUN_LEN,
                    &tmp
                ),
                SortedListing::collect(to_store.as_ref(), &to_name, prefix, DEFAULT_RUN_LEN, &tmp),
            )
        );
        let (a, b) = listings.map_err(migrate_err)?;
        let header = PlanHeader {
            format: PLAN_FORMAT.into(),
            created_at: chrono::Utc::now(),
            from: src.url.to_string(),
            to: dst.url.to_string(),
            prefix: prefix.map(str::to_owned),
            proxy: self.config.residency.proxy.clone(),
            checksum,
            summary: Summary::default(),
            capabilities: PlanCapabilities {
                from: src.caps.clone(),
                to: dst.caps.clone(),
            },
            estimate: Estimate::new(&Summary::default(), 1.0, 0.0, 1),
            objects_file: String::new(),
            objects_blake3: String::new(),
            plan_hash: String::new(),
        };
        // Each object costs a read, a write and a read-back: three round trips.
        let rtt = |c: &Capabilities| c.round_trip_ms.unwrap_or(5.0) / 1e3;
        let per_object = rtt(&src.caps) + 2.0 * rtt(&dst.caps);
        let header = write_plan(out, march(a, b, checksum), header, |s| {
            Estimate::new(s, 100e6, per_object, transfers)
        })
        .map_err(migrate_err)?;
        Ok((header, (src, dst)))
    }

    async fn migrate_run(
        &self,
        req: RunRequest,
        on_plan: impl FnOnce(&PlanHeader),
    ) -> Result<RunReport> {
        let action = if req.sync {
            "migrate.sync"
        } else {
            "migrate.run"
        };
        let mut failed = Draft::new(action);
        if let Some(t) = &req.to {
            failed = failed.object(t.clone());
        }
        if let Some(p) = &req.plan {
            failed = failed.detail("plan", p.display().to_string());
        }
        self.audited(failed, self.run_inner(req, on_plan, true))
            .await
    }

    /// A cut-over's or rollback's sync records nothing: an event appended after the copy would
    /// exist at one side only, and the two audit logs would fork. The switch's own event
    /// carries the sync's figures instead.
    async fn run_inner(
        &self,
        req: RunRequest,
        on_plan: impl FnOnce(&PlanHeader),
        audit: bool,
    ) -> Result<RunReport> {
        if let Some(t) = &req.to {
            // The destination is checked before any listing, even of the source.
            StoreUrl::parse(t)
                .map_err(shh_store::StoreError::from)
                .and_then(|u| Ok(self.config.residency.check(&u)?))?;
        }
        // A plan made here has just opened and probed both sides: the run uses them as they are.
        let (plan_path, opened) = match &req.plan {
            Some(p) => (p.clone(), None),
            None => {
                let to = req
                    .to
                    .as_deref()
                    .ok_or_else(|| refused("give --plan PLAN.json, or --to URL"))?;
                let dir = self.migrate_dir().join("plans");
                std::fs::create_dir_all(&dir).map_err(crate::io(&dir))?;
                let out = dir.join(format!(
                    "{}.json",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
                ));
                let from = req.from.as_deref().unwrap_or(&self.config.store);
                let (_, sides) = self
                    .plan_sides(
                        from,
                        to,
                        req.prefix.as_deref(),
                        req.checksum,
                        req.options.transfers,
                        &out,
                    )
                    .await?;
                (out, Some(sides))
            }
        };
        let reader = PlanReader::open(&plan_path).map_err(migrate_err)?;
        let h = reader.header.clone();
        on_plan(&h);
        let action = if req.sync {
            "migrate.sync"
        } else {
            "migrate.run"
        };
        let mut event = Draft::new(action)
            .object(h.to.clone())
            .detail("from", h.from.clone())
            .detail("plan_hash", h.plan_hash.clone());
        if let Some(p) = &self.config.residency.proxy {
            event = event.detail("proxy", p.clone());
        }
        let (src, dst) = match opened {
            Some(sides) => sides,
            None => self.open_sides(&h.from, &h.to).await?,
        };
        if req.options.delete && h.summary.dest_only.objects > req.max_delete {
            let why = format!(
                "{} objects exist only at the destination, more than --max-delete {}; nothing was changed",
                h.summary.dest_only.objects, req.max_delete
            );
            if audit {
                self.record(event.refused(why.clone())).await?;
            }
            return Err(refused(why));
        }
        let journal_path = self.journal_path(&h.from, &h.to);
        let journal = Arc::new(Journal::open(&journal_path).map_err(migrate_err)?);
        let done_before = journal.done_before();
        let resumable = journal.open_uploads();
        let items = reader.items().map_err(migrate_err)?;
        let options = Options {
            scope: h.prefix.clone(),
            ..req.options.clone()
        };
        let stats = execute(items, src, dst, journal, options, self.task.clone())
            .await
            .map_err(migrate_err)?;
        let mut event = event
            .detail("copied_objects", stats.copied.objects)
            .detail("copied_bytes", stats.copied.bytes)
            .detail("replaced_objects", stats.replaced.objects)
            .detail("bytes_sent", stats.bytes_sent)
            .detail("parts_resumed", stats.parts_resumed)
            .detail("quarantined", stats.quarantined.objects)
            .detail("staging_removed", stats.staging_removed.objects)
            .detail("uploads_aborted", stats.uploads_aborted)
            .detail("verification", stats.verification.clone())
            .detail("failures", stats.failures.len() as u64);
        if let Some(f) = stats.failures.first() {
            event = event.failed(format!("{}: {}", f.path, f.error));
        }
        let seq = if audit { self.record(event).await? } else { 0 };
        Ok(RunReport {
            plan: plan_path,
            plan_hash: h.plan_hash.clone(),
            from: h.from.clone(),
            to: h.to.clone(),
            summary: h.summary,
            stats,
            journal: journal_path,
            journal_done_before: done_before,
            resumable_uploads: resumable,
            audit_seq: seq,
        })
    }

    async fn migrate_verify(
        &self,
        to: Option<&str>,
        deep: bool,
        concurrency: usize,
        out: &Path,
    ) -> Result<AcceptanceReport> {
        let failed = Draft::new("migrate.verify")
            .object(to.unwrap_or(&self.config.store).to_owned())
            .detail("deep", deep);
        let report = self
            .audited(failed, self.verify_inner(to, deep, concurrency, out, false))
            .await?;
        let mut event = Draft::new("migrate.verify")
            .object(report.target.clone())
            .detail("deep", deep)
            .detail("objects", report.summary.objects)
            .detail("failed", report.summary.failed)
            .detail("merkle_root", report.merkle_root.clone());
        if let Some(f) = &report.first_failure {
            event = event.failed(f.clone());
        }
        self.record(event).await?;
        Ok(report)
    }

    /// `complete_audit`: the stored log must hold every event the hub has (at a cut-over, when
    /// nothing is written); otherwise a log that verifies but lags (events written since the
    /// last sync) is fine, and the report shows both sizes.
    async fn verify_inner(
        &self,
        to: Option<&str>,
        deep: bool,
        concurrency: usize,
        out: &Path,
        complete_audit: bool,
    ) -> Result<AcceptanceReport> {
        let to = to.unwrap_or(&self.config.store).to_owned();
        let side = self.open_side(&to, false).await?;
        let raw = side.backend.store.clone();
        let enc = EncryptedStore::new(raw.clone(), self.keystore.storage_keys());
        let mut w = ReportWriter::create(out).map_err(migrate_err)?;
        let datasets = self.catalog.datasets().await?;
        let mut versions = 0u64;
        self.task.phase("verifying", None, shh_task::Unit::Objects);
        for d in &datasets {
            for v in self.catalog.versions(&d.name).await? {
                if self.task.is_cancelled() {
                    return Err(HubError::Cancelled(
                        "the verification was stopped before its report was signed".into(),
                    ));
                }
                versions += 1;
                let manifest = shh_dataset::load_manifest(&enc, &v).await;
                let m = match manifest {
                    Ok(m) => {
                        push(
                            &mut w,
                            manifest_check(&d.name, &v.id, &v.manifest_path, None),
                        )?;
                        m
                    }
                    Err(e) => {
                        let error = format!("manifest unreadable or altered: {e}");
                        push(
                            &mut w,
                            manifest_check(&d.name, &v.id, &v.manifest_path, Some(error)),
                        )?;
                        continue;
                    }
                };
                let (raw, enc) = (&raw, &enc);
                let mut checks = futures::stream::iter(m.files.iter())
                    .map(|f| check_file(raw, enc, &d.name, &v.id, f, deep))
                    .buffered(concurrency.max(1));
                while let Some(c) = checks.next().await {
                    self.task.advance(1);
                    push(&mut w, c)?;
                }
            }
        }
        // The audit log travelled too: it must verify where it now is.
        let log =
            shh_audit::AuditLog::open(Arc::new(enc), &self.config.hub_id, self.audit_signer()?)
                .await;
        let audit = match log {
            Ok(log) => log.verify(Vec::new()).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let local = self
            .audit_log()
            .await?
            .latest_head()
            .await?
            .map(|h| h.head.size)
            .unwrap_or(0);
        let (ok, error, size) = match audit {
            Ok(r) if r.ok && (r.events >= local || !complete_audit) => (true, None, r.events),
            Ok(r) if r.ok => (
                false,
                Some(format!("{} events, the hub has {local}", r.events)),
                r.events,
            ),
            Ok(r) => (false, r.problem.clone(), r.events),
            Err(e) => (false, Some(e), 0),
        };
        push(
            &mut w,
            ObjectCheck {
                path: "audit/".into(),
                kind: "audit".into(),
                dataset: None,
                version: None,
                expected_size: Some(local),
                size: Some(size),
                expected_blake3: None,
                blake3: None,
                plaintext_ok: None,
                ok,
                error,
            },
        )?;
        let failed = w.failed();
        let report = w
            .finish(
                &self.config.hub_id,
                &side.url.to_string(),
                deep,
                datasets.len() as u64,
                versions,
                Some(side.caps.clone()),
                &self.audit_signer()?,
            )
            .map_err(migrate_err)?;
        debug_assert_eq!(failed, report.summary.failed);
        Ok(report)
    }

    /// Shadow reads: a deterministic `pct` % sample of the primary's objects is read from the
    /// primary and from `other` (default: the mirror, or the cut-over's source) and compared.
    async fn migrate_compare(
        &self,
        other: Option<&str>,
        pct: f64,
        concurrency: usize,
    ) -> Result<CompareReport> {
        let failed = Draft::new("migrate.compare").object(other.unwrap_or("").to_owned());
        self.audited(failed, self.compare_inner(other, pct, concurrency))
            .await
    }
}

impl CallMut<'_> {
    async fn migrate_mirror(&mut self, to: Option<&str>, wait: std::time::Duration) -> Result<()> {
        if let Some(t) = to {
            crate::guard::check("the mirror's store URL", t)?;
            self.call().open_side(t, true).await?;
        }
        let event = Draft::new("migrate.mirror")
            .object(to.unwrap_or("none").to_owned())
            .detail("primary", self.config.store.clone());
        let to = to.map(str::to_owned);
        self.rewrite_alone(wait, event, |c| c.mirror = to).await
    }

    /// Rewrites `shh.toml` (by `change`) with exclusive use of the hub, waiting up to `wait`
    /// for the other processes to close it (they would go on with the old configuration), and
    /// records `event` before the rewrite. Returns the hub on the new configuration.
    async fn rewrite_alone(
        &mut self,
        wait: std::time::Duration,
        event: Draft,
        change: impl FnOnce(&mut crate::HubConfig),
    ) -> Result<()> {
        self.lock.exclusive(wait).await?;
        let result = async {
            self.record(event).await?;
            let mut config = self.config.clone();
            change(&mut config);
            save_config(&self.dir, &config)?;
            Ok(config)
        }
        .await;
        let config = match result {
            Ok(c) => c,
            Err(e) => {
                self.lock.share()?;
                return Err(e);
            }
        };
        let reconfigured = self.reconfigure(config);
        self.lock.share()?;
        reconfigured
    }

    /// Cut-over: exclusive use of the hub (waiting up to `wait` for other processes to close
    /// it), read-only, final sync, verify, switch the primary store, audit event. The source is
    /// kept (and, with `mirror_source`, kept current by dual writes) until
    /// [`Hub::migrate_finalize`]; any failure leaves the hub on the source, writable, and so
    /// does a process killed before the switch (the next open undoes it, [`crate::switch`]).
    async fn migrate_cutover(
        &mut self,
        to: &str,
        options: Options,
        wait: std::time::Duration,
        mirror_source: bool,
        report_dir: &Path,
    ) -> Result<SwitchReport> {
        if let Some(m) = &self.config.migration {
            return Err(refused(format!(
                "a cut-over to {} is in progress; run `shh migrate finalize` or `shh migrate rollback` first",
                m.target
            )));
        }
        crate::guard::check("the target's store URL", to)?;
        let source = self.config.store.clone();
        let target = StoreUrl::parse(to)
            .map_err(shh_store::StoreError::from)?
            .to_string();
        if target == source {
            return Err(refused("the hub already runs on that store"));
        }
        self.config
            .residency
            .check(&StoreUrl::parse(&target).map_err(shh_store::StoreError::from)?)
            .map_err(shh_store::StoreError::from)?;
        // Nothing may write to the source after the final sync: no other process may have the
        // hub open until the switch is done.
        self.lock.exclusive(wait).await?;
        if let Err(e) = self
            .record(Draft::new("migrate.cutover.begin").object(target.clone()))
            .await
        {
            self.lock.share()?;
            return Err(e);
        }
        let switch = match self.start_switch("migrate.cutover", &source, &target) {
            Ok(s) => s,
            Err(e) => {
                self.lock.share()?;
                return Err(e);
            }
        };
        let result = self
            .call()
            .cutover_steps(&source, &target, options, report_dir)
            .await;
        let (sync, report) = match result {
            Ok(v) => v,
            Err(e) => {
                self.abandon_switch(&switch, e.to_string()).await?;
                self.lock.share()?;
                return Err(e);
            }
        };
        let mut config = self.config.clone();
        config.store = target.clone();
        config.mirror = mirror_source.then(|| source.clone());
        config.migration = Some(MigrationState {
            source: source.clone(),
            target: target.clone(),
            cutover_at: chrono::Utc::now(),
            report_root: report.merkle_root.clone(),
        });
        let event = Draft::new("migrate.cutover")
            .object(target.clone())
            .detail("from", source.clone())
            .detail("plan_hash", sync.plan_hash.clone())
            .detail("copied_objects", sync.stats.copied.objects)
            .detail("bytes_sent", sync.stats.bytes_sent)
            .detail("report_root", report.merkle_root.clone())
            .detail("objects_verified", report.summary.objects)
            .detail("mirror", config.mirror.clone().unwrap_or_default());
        let config = self.switched_config(config, &event);
        save_config(&self.dir, &config)?;
        self.reconfigure(config)?;
        self.finish_switch(event).await?;
        self.lock.share()?;
        let mirror = self.config.mirror.clone();
        Ok(SwitchReport {
            from: source,
            to: target,
            sync,
            acceptance: Some(report),
            mirror,
        })
    }
}

impl Call<'_> {
    async fn cutover_steps(
        &self,
        source: &str,
        target: &str,
        options: Options,
        report_dir: &Path,
    ) -> Result<(RunReport, AcceptanceReport)> {
        let concurrency = options.transfers;
        let sync = self
            .run_inner(
                RunRequest {
                    from: Some(source.to_owned()),
                    to: Some(target.to_owned()),
                    options,
                    sync: true,
                    ..RunRequest::default()
                },
                |_| {},
                false,
            )
            .await?;
        if let Some(f) = sync.stats.failures.first() {
            return Err(refused(format!(
                "final sync failed ({} objects; first {}: {}); the hub stays on {source}",
                sync.stats.failures.len(),
                f.path,
                f.error
            )));
        }
        let report = self
            .verify_inner(Some(target), false, concurrency, report_dir, true)
            .await?;
        if let Some(f) = &report.first_failure {
            return Err(refused(format!(
                "verification of {target} failed ({} objects; first {f}); the hub stays on {source}",
                report.summary.failed
            )));
        }
        Ok((sync, report))
    }
}

impl CallMut<'_> {
    /// Rollback: back to the cut-over's source. Objects written to the target since the
    /// cut-over are copied back first (hub objects are create-only, so nothing at the source is
    /// overwritten), so no write is lost. Journaled like a cut-over.
    async fn migrate_rollback(
        &mut self,
        options: Options,
        wait: std::time::Duration,
    ) -> Result<SwitchReport> {
        let Some(state) = self.config.migration.clone() else {
            return Err(refused("no cut-over to roll back (or it was finalized)"));
        };
        self.lock.exclusive(wait).await?;
        let switch = match self.start_switch("migrate.rollback", &state.target, &state.source) {
            Ok(s) => s,
            Err(e) => {
                self.lock.share()?;
                return Err(e);
            }
        };
        let sync = self
            .call()
            .run_inner(
                RunRequest {
                    from: Some(state.target.clone()),
                    to: Some(state.source.clone()),
                    options,
                    sync: true,
                    ..RunRequest::default()
                },
                |_| {},
                false,
            )
            .await;
        let sync = match sync {
            Ok(s) if s.stats.failures.is_empty() => s,
            other => {
                let why = match other {
                    Ok(s) => format!(
                        "{} objects could not be copied back",
                        s.stats.failures.len()
                    ),
                    Err(e) => e.to_string(),
                };
                self.abandon_switch(&switch, why.clone()).await?;
                self.lock.share()?;
                return Err(refused(format!(
                    "rollback failed: {why}; the hub stays on {}",
                    state.target
                )));
            }
        };
        let mut config = self.config.clone();
        config.store = state.source.clone();
        config.mirror = None;
        config.migration = None;
        let event = Draft::new("migrate.rollback")
            .object(state.source.clone())
            .detail("from", state.target.clone())
            .detail("copied_back", sync.stats.copied.objects);
        let config = self.switched_config(config, &event);
        save_config(&self.dir, &config)?;
        self.reconfigure(config)?;
        self.finish_switch(event).await?;
        self.lock.share()?;
        Ok(SwitchReport {
            from: state.target,
            to: state.source,
            sync,
            acceptance: None,
            mirror: None,
        })
    }

    /// Ends the rollback window: the source is no longer kept current or offered for rollback.
    /// Nothing is deleted; the operator removes the source with the provider's tools. Takes
    /// exclusive use of the hub (up to `wait`), since other processes would go on mirroring.
    async fn migrate_finalize(&mut self, wait: std::time::Duration) -> Result<MigrationState> {
        let Some(state) = self.config.migration.clone() else {
            return Err(refused("no cut-over to finalize"));
        };
        let event = Draft::new("migrate.finalize")
            .object(state.target.clone())
            .detail("source_released", state.source.clone());
        let source = state.source.clone();
        self.rewrite_alone(wait, event, |c| {
            c.migration = None;
            if c.mirror.as_deref() == Some(source.as_str()) {
                c.mirror = None;
            }
        })
        .await?;
        Ok(state)
    }
}

impl Call<'_> {
    async fn compare_inner(
        &self,
        other: Option<&str>,
        pct: f64,
        concurrency: usize,
    ) -> Result<CompareReport> {
        let other = other
            .map(str::to_owned)
            .or_else(|| self.config.mirror.clone())
            .or_else(|| self.config.migration.as_ref().map(|m| m.source.clone()))
            .ok_or_else(|| refused("nothing to compare with: give --with URL"))?;
        let primary = self.open_side(&self.config.store, false).await?;
        let second = self.open_side(&other, false).await?;
        let threshold = (pct.clamp(0.0, 100.0) / 100.0 * u64::MAX as f64) as u64;
        let (a, b) = (primary.backend.store.clone(), second.backend.store.clone());
        let mut report = CompareReport {
            primary: primary.url.to_string(),
            other: second.url.to_string(),
            listed: 0,
            sampled: 0,
            equal: 0,
            missing: Vec::new(),
            differ: Vec::new(),
            bytes: 0,
        };
        let listed = std::sync::atomic::AtomicU64::new(0);
        let mut results = a
            .list(None)
            .try_filter(|m| {
                if shh_migrate::is_internal(m.location.as_ref()) {
                    return futures::future::ready(false);
                }
                listed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let h = blake3::hash(m.location.as_ref().as_bytes());
                let mut first = [0u8; 8];
                first.copy_from_slice(&h.as_bytes()[..8]);
                futures::future::ready(u64::from_le_bytes(first) <= threshold)
            })
            .map_err(HubError::from)
            .map_ok(|m| {
                let (a, b) = (a.clone(), b.clone());
                async move {
                    let (x, y) = futures::join!(
                        blake3_of(a.as_ref(), &m.location, None),
                        blake3_of(b.as_ref(), &m.location, None)
                    );
                    Ok::<_, HubError>((m.location, m.size, x?, y))
                }
            })
            .try_buffer_unordered(concurrency.max(1));
        while let Some((p, size, x, y)) = results.try_next().await? {
            report.sampled += 1;
            report.bytes += size;
            match y {
                Ok(y) if y == x => report.equal += 1,
                Ok(_) => report.differ.push(p.to_string()),
                Err(object_store::Error::NotFound { .. }) => report.missing.push(p.to_string()),
                Err(e) => return Err(e.into()),
            }
        }
        drop(results);
        report.listed = listed.into_inner();
        report.missing.sort();
        report.differ.sort();
        self.record(
            Draft::new("migrate.compare")
                .object(report.other.clone())
                .detail("sampled", report.sampled)
                .detail("missing", report.missing.len() as u64)
                .detail("differ", report.differ.len() as u64),
        )
        .await?;
        Ok(report)
    }
}

fn push(w: &mut ReportWriter, c: ObjectCheck) -> Result<()> {
    w.push(&c).map_err(migrate_err)
}

fn manifest_check(dataset: &str, version: &str, path: &str, error: Option<String>) -> ObjectCheck {
    ObjectCheck {
        path: path.to_owned(),
        kind: "manifest".into(),
        dataset: Some(dataset.to_owned()),
        version: Some(version.to_owned()),
        expected_size: None,
        size: None,
        expected_blake3: None,
        blake3: None,
        plaintext_ok: None,
        ok: error.is_none(),
        error,
    }
}

async fn check_file(
    raw: &Arc<dyn ObjectStore>,
    enc: &shh_dataset::HubStore,
    dataset: &str,
    version: &str,
    f: &shh_dataset::FileEntry,
    deep: bool,
) -> ObjectCheck {
    let p = ObjPath::from(f.path.as_str());
    let mut c = ObjectCheck {
        path: f.path.clone(),
        kind: "data".into(),
        dataset: Some(dataset.to_owned()),
        version: Some(version.to_owned()),
        expected_size: Some(f.stored_size),
        size: None,
        expected_blake3: Some(f.stored_blake3.clone()),
        blake3: None,
        plaintext_ok: None,
        ok: false,
        error: None,
    };
    let mut problems = Vec::new();
    if deep {
        match enc.read_digest(&p).await {
            Ok(d) => {
                c.size = Some(d.stored_len);
                c.blake3 = Some(hex::encode(d.stored_blake3));
                let plain =
                    d.plain_len == f.plain_size && hex::encode(d.plain_blake3) == f.plain_blake3;
                c.plaintext_ok = Some(plain);
                if !plain {
                    problems.push("plaintext size or BLAKE3 differs from the manifest".to_owned());
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    } else {
        match blake3_of(raw.as_ref(), &p, None).await {
            Ok((n, h)) => {
                c.size = Some(n);
                c.blake3 = Some(h.to_hex().to_string());
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Some(n) = c.size.filter(|&n| n != f.stored_size) {
        problems.push(format!("size {n} != {} in the manifest", f.stored_size));
    }
    if c.blake3.as_ref().is_some_and(|h| h != &f.stored_blake3) {
        problems.push("ciphertext BLAKE3 differs from the manifest".into());
    }
    c.ok = problems.is_empty();
    c.error = (!problems.is_empty()).then(|| problems.join("; "));
    c
}

/// The migration operations. Those that change the hub's store (mirror, cut-over, rollback,
/// finalize) first wait (up to the request's `wait`) for this process's other operations to
/// finish and keep new ones waiting, then for other processes to close the hub; the `Hub`
/// then runs on the new configuration.
impl Hub {
    /// Where plans, journals and reports are kept.
    pub fn migrate_dir(&self) -> PathBuf {
        self.dir().join("migrate")
    }

    /// Lists both stores, merges the listings and writes the plan to `req.out`.
    pub async fn migrate_plan(&self, s: &Session, req: &PlanRequest) -> Result<PlanHeader> {
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .migrate_plan(
                req.from.as_deref(),
                &req.to,
                req.prefix.as_deref(),
                req.checksum,
                req.transfers,
                &req.out,
            )
            .await
    }

    /// Runs a plan (or plans and runs), recording one audit event with the outcome. `on_plan`
    /// sees the plan before the first object is sent.
    pub async fn migrate_run(
        &self,
        s: &Session,
        task: &Task,
        req: RunRequest,
        on_plan: impl FnOnce(&PlanHeader),
    ) -> Result<RunReport> {
        let core = self.core.read().await;
        // Boxed, like every long operation: its state is large.
        Box::pin(Call::new(&core, s, task).migrate_run(req, on_plan)).await
    }

    /// Checks every object every dataset version's manifest references at `req.to` (default:
    /// the primary store) against the ciphertext BLAKE3 in the manifest (with `deep`, decrypts
    /// and checks the plaintext too), and the audit log stored there. Writes the signed
    /// acceptance report into `req.out`.
    pub async fn migrate_verify(
        &self,
        s: &Session,
        task: &Task,
        req: &VerifyRequest,
    ) -> Result<AcceptanceReport> {
        let core = self.core.read().await;
        Box::pin(Call::new(&core, s, task).migrate_verify(
            req.to.as_deref(),
            req.deep,
            req.concurrency,
            &req.out,
        ))
        .await
    }

    /// Sends every new write to `to` as well (or, with `None`, stops doing so): other
    /// holders of the hub would go on writing to the primary only, and the mirror would
    /// silently miss their objects, so it waits for them. The event is recorded before the
    /// change is made.
    pub async fn migrate_mirror(
        &self,
        s: &Session,
        to: Option<&str>,
        wait: std::time::Duration,
    ) -> Result<()> {
        let task = Task::silent();
        let mut core = self.exclusive(wait).await?;
        CallMut::new(&mut core, s, &task)
            .migrate_mirror(to, wait)
            .await
    }

    /// Cut-over: exclusive use of the hub, read-only, final sync, verify, switch the primary
    /// store, audit event. The source is kept (and, with `mirror_source`, kept current by dual
    /// writes) until [`Hub::migrate_finalize`]; any failure, a cancelled `task` included,
    /// leaves the hub on the source, writable, and so does a process killed before the switch
    /// (the next open undoes it, [`crate::switch`]).
    pub async fn migrate_cutover(
        &self,
        s: &Session,
        task: &Task,
        req: &CutoverRequest,
    ) -> Result<SwitchReport> {
        let mut core = self.exclusive(req.wait).await?;
        Box::pin(CallMut::new(&mut core, s, task).migrate_cutover(
            &req.to,
            req.options.clone(),
            req.wait,
            req.mirror_source,
            &req.report_dir,
        ))
        .await
    }

    /// Rollback: back to the cut-over's source. Objects written to the target since the
    /// cut-over are copied back first (hub objects are create-only, so nothing at the source
    /// is overwritten), so no write is lost. Journaled like a cut-over.
    pub async fn migrate_rollback(
        &self,
        s: &Session,
        task: &Task,
        req: &RollbackRequest,
    ) -> Result<SwitchReport> {
        let mut core = self.exclusive(req.wait).await?;
        Box::pin(CallMut::new(&mut core, s, task).migrate_rollback(req.options.clone(), req.wait))
            .await
    }

    /// Ends the rollback window: the source is no longer kept current or offered for
    /// rollback. Nothing is deleted; the operator removes the source with the provider's
    /// tools. Returns the migration it ended.
    pub async fn migrate_finalize(
        &self,
        s: &Session,
        wait: std::time::Duration,
    ) -> Result<MigrationState> {
        let task = Task::silent();
        let mut core = self.exclusive(wait).await?;
        CallMut::new(&mut core, s, &task)
            .migrate_finalize(wait)
            .await
    }

    /// Shadow reads: a deterministic `pct` % sample of the primary's objects is read from the
    /// primary and from the other store and compared.
    pub async fn migrate_compare(
        &self,
        s: &Session,
        req: &CompareRequest,
    ) -> Result<CompareReport> {
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .migrate_compare(req.with.as_deref(), req.pct, req.concurrency)
            .await
    }
}
