//! Shadow reads: a sample of the primary's objects compared with another store's.

use super::*;

impl Call<'_> {
    /// Shadow reads: a deterministic `pct` % sample of the primary's objects is read from the
    /// primary and from `other` (default: the mirror, or the cut-over's source) and compared.
    pub(super) async fn migrate_compare(
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

impl Call<'_> {
    pub(super) async fn compare_inner(
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
