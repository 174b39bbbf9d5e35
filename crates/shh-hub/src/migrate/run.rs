//! Running a plan (or planning and running), with one audit event for the outcome.

use super::*;

impl Call<'_> {
    pub(super) async fn migrate_run(
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
    pub(super) async fn run_inner(
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
}
