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
use shh_sink::Sink;
use shh_store::StoreUrl;

pub use shh_migrate::report::{AcceptanceReport, ReportCheck};
pub use shh_migrate::{Options, PlanHeader, VerifyMode};
pub use shh_store::retry::BackoffConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod compare;
mod requests;
mod run;
mod sides;
mod switches;
mod verify;

pub use requests::*;
pub use verify::check_report;

/// Where an acceptance report goes: the caller's sink and the report's name in it.
#[derive(Clone, Copy)]
pub(super) struct Report<'a> {
    sink: &'a dyn Sink,
    name: &'a str,
}

impl Report<'_> {
    async fn writer(&self) -> Result<ReportWriter> {
        crate::guard::check("the report's name", self.name)?;
        let staged = self.sink.stage(self.name).await?;
        ReportWriter::create(staged).await.map_err(migrate_err)
    }
}

fn refused(msg: impl Into<String>) -> HubError {
    HubError::Migrate(MigrateError::Refused(msg.into()))
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
        self.allow(s, shh_access::Action::Migrate).await?;
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
        self.allow(s, shh_access::Action::Migrate).await?;
        let core = self.core.read().await;
        // Boxed, like every long operation: its state is large.
        Box::pin(Call::new(&core, s, task).migrate_run(req, on_plan)).await
    }

    /// Checks every object every dataset version's manifest references at `req.to` (default:
    /// the primary store) against the ciphertext BLAKE3 in the manifest (with `deep`, decrypts
    /// and checks the plaintext too), and the audit log stored there. Writes the signed
    /// acceptance report as the result `req.report` of the caller's `sink`.
    pub async fn migrate_verify(
        &self,
        s: &Session,
        task: &Task,
        req: &VerifyRequest,
        sink: &dyn Sink,
    ) -> Result<AcceptanceReport> {
        self.allow(s, shh_access::Action::Migrate).await?;
        let core = self.core.read().await;
        Box::pin(Call::new(&core, s, task).migrate_verify(
            req.to.as_deref(),
            req.deep,
            req.concurrency,
            Report {
                sink,
                name: &req.report,
            },
        ))
        .await
    }

    /// Sends every new write to `to` as well (or, with `None`, stops doing so): other
    /// holders of the hub would go on writing to the primary only, and the mirror would
    /// silently miss their objects, so it waits for them. The event is recorded before the
    /// change is made.
    pub async fn migrate_mirror(&self, s: &Session, req: &MirrorRequest) -> Result<()> {
        self.allow(s, shh_access::Action::Migrate).await?;
        let task = Task::silent();
        let mut core = self.exclusive(req.wait).await?;
        CallMut::new(&mut core, s, &task)
            .migrate_mirror(req.to.as_deref(), req.wait)
            .await
    }

    /// Cut-over: exclusive use of the hub, read-only, final sync, verify, switch the primary
    /// store, audit event. The source is kept (and, with `mirror_source`, kept current by dual
    /// writes) until [`Hub::migrate_finalize`]; any failure, a cancelled `task` included,
    /// leaves the hub on the source, writable, and so does a process killed before the switch
    /// (the next open undoes it, [`crate::switch`]). The acceptance report is the result
    /// `req.report` of the caller's `sink`.
    pub async fn migrate_cutover(
        &self,
        s: &Session,
        task: &Task,
        req: &CutoverRequest,
        sink: &dyn Sink,
    ) -> Result<SwitchReport> {
        self.allow(s, shh_access::Action::Migrate).await?;
        let mut core = self.exclusive(req.wait).await?;
        Box::pin(CallMut::new(&mut core, s, task).migrate_cutover(
            &req.to,
            req.options.clone(),
            req.wait,
            req.mirror_source,
            Report {
                sink,
                name: &req.report,
            },
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
        self.allow(s, shh_access::Action::Migrate).await?;
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
        req: &FinalizeRequest,
    ) -> Result<MigrationState> {
        self.allow(s, shh_access::Action::Migrate).await?;
        let task = Task::silent();
        let mut core = self.exclusive(req.wait).await?;
        CallMut::new(&mut core, s, &task)
            .migrate_finalize(req.wait)
            .await
    }

    /// Shadow reads: a deterministic `pct` % sample of the primary's objects is read from the
    /// primary and from the other store and compared.
    pub async fn migrate_compare(
        &self,
        s: &Session,
        req: &CompareRequest,
    ) -> Result<CompareReport> {
        self.allow(s, shh_access::Action::Migrate).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .migrate_compare(req.with.as_deref(), req.pct, req.concurrency)
            .await
    }
}
