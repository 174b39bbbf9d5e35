//! The operations that change the hub's store: mirror (dual writes), cut-over, rollback and
//! finalize, each with exclusive use of the hub (this process's other operations drained,
//! other processes closed) and journaled in `shh.toml` (`crate::switch`).

use super::*;

impl CallMut<'_> {
    pub(super) async fn migrate_mirror(
        &mut self,
        to: Option<&str>,
        wait: std::time::Duration,
    ) -> Result<()> {
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
    pub(super) async fn rewrite_alone(
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
    pub(super) async fn migrate_cutover(
        &mut self,
        to: &str,
        options: Options,
        wait: std::time::Duration,
        mirror_source: bool,
        report: Report<'_>,
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
            .cutover_steps(&source, &target, options, report)
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
    pub(super) async fn cutover_steps(
        &self,
        source: &str,
        target: &str,
        options: Options,
        report: Report<'_>,
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
            .verify_inner(Some(target), false, concurrency, report, true)
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
    pub(super) async fn migrate_rollback(
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
    pub(super) async fn migrate_finalize(
        &mut self,
        wait: std::time::Duration,
    ) -> Result<MigrationState> {
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
