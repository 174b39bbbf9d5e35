//! The two sides of a migration: residency-checked (before any request), probed, listed and
//! merged into a plan; and where the journal of each pair of stores lives.

use super::*;

/// Probes a migration's source (read-only) and destination at once.
pub(super) async fn probed(
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

impl Call<'_> {
    /// Opens a store for migration: the residency policy is checked first, so a refused
    /// destination never receives a request. A writable side is probed by a tiny create-only
    /// write under `.shh-migrate/`.
    pub(super) async fn open_side(&self, url: &str, write: bool) -> Result<Side> {
        let (url, backend) = self.side_backend(url)?;
        let caps = probe::probe(&url, &backend, write).await;
        Ok(Side { url, backend, caps })
    }

    /// The residency check and the client of one side; nothing is sent.
    pub(super) fn side_backend(&self, url: &str) -> Result<(StoreUrl, shh_store::Backend)> {
        // A prefix becomes part of every object name the provider reads.
        crate::guard::check("a store URL", url)?;
        let url = StoreUrl::parse(url).map_err(shh_store::StoreError::from)?;
        let backend = shh_store::open_backend(&url, &self.config.residency)?;
        Ok((url, backend))
    }

    pub(super) fn journal_path(&self, from: &str, to: &str) -> PathBuf {
        let key = blake3::hash(format!("{from}\n{to}").as_bytes()).to_hex();
        self.migrate_dir()
            .join(format!("journal-{}.ndjson", &key[..16]))
    }

    pub(super) async fn migrate_plan(
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
    pub(super) async fn open_sides(&self, from: &str, to: &str) -> Result<(Side, Side)> {
        let to = self.side_backend(to)?;
        let from = self.side_backend(from)?;
        Ok(probed(from, to).await)
    }

    /// Opens both sides and plans between them: the probes and the two listings all run at
    /// once (listings skip the probes' `.shh-migrate/` objects). Returns the plan written to
    /// `out` and the opened sides.
    pub(super) async fn plan_sides(
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
}
