//! The acceptance check: every object the manifests name, at a store, against its BLAKE3
//! (and, deep, its plaintext), and the audit log stored there; written as the signed report.

use super::*;

impl Call<'_> {
    pub(super) async fn migrate_verify(
        &self,
        to: Option<&str>,
        deep: bool,
        concurrency: usize,
        out: Report<'_>,
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
    pub(super) async fn verify_inner(
        &self,
        to: Option<&str>,
        deep: bool,
        concurrency: usize,
        out: Report<'_>,
        complete_audit: bool,
    ) -> Result<AcceptanceReport> {
        let to = to.unwrap_or(&self.config.store).to_owned();
        let side = self.open_side(&to, false).await?;
        let raw = side.backend.store.clone();
        let enc = EncryptedStore::new(raw.clone(), self.keystore.storage_keys());
        let mut w = out.writer().await?;
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
                        )
                        .await?;
                        m
                    }
                    Err(e) => {
                        let error = format!("manifest unreadable or altered: {e}");
                        push(
                            &mut w,
                            manifest_check(&d.name, &v.id, &v.manifest_path, Some(error)),
                        )
                        .await?;
                        continue;
                    }
                };
                let (raw, enc) = (&raw, &enc);
                let mut checks = futures::stream::iter(m.files.iter())
                    .map(|f| check_file(raw, enc, &d.name, &v.id, f, deep))
                    .buffered(concurrency.max(1));
                while let Some(c) = checks.next().await {
                    self.task.advance(1);
                    push(&mut w, c).await?;
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
        )
        .await?;
        if self.task.is_cancelled() {
            // Dropping the writer discards the unsigned report.
            return Err(HubError::Cancelled(
                "the verification was stopped before its report was signed".into(),
            ));
        }
        let failed = w.failed();
        let (report, _location) = w
            .finish(
                &self.config.hub_id,
                &side.url.to_string(),
                deep,
                datasets.len() as u64,
                versions,
                Some(side.caps.clone()),
                &self.audit_signer()?,
            )
            .await
            .map_err(migrate_err)?;
        debug_assert_eq!(failed, report.summary.failed);
        Ok(report)
    }
}

pub(super) async fn push(w: &mut ReportWriter, c: ObjectCheck) -> Result<()> {
    w.push(&c).await.map_err(migrate_err)
}

pub(super) fn manifest_check(
    dataset: &str,
    version: &str,
    path: &str,
    error: Option<String>,
) -> ObjectCheck {
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

pub(super) async fn check_file(
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

/// Checks an acceptance report in `dir` against the hub's public keys, without the hub: what
/// an auditor runs on a copy.
pub fn check_report(dir: &Path, keys: &[shh_audit::PublicKey]) -> Result<ReportCheck> {
    shh_migrate::report::check_report(dir, keys).map_err(migrate_err)
}
