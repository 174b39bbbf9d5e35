//! What earlier runs left and what `--delete` removes: staging files of killed local writes,
//! multipart uploads no object took up, destination-only objects moved to quarantine.

use super::*;

/// What earlier runs of this journal left at a local destination: the staging files of writes
/// killed before they were verified. Names the journal does not list are never touched.
pub(super) fn remove_left_staging(ctx: &Ctx) -> Result<()> {
    let Some(root) = ctx.dst.url.local_path() else {
        return Ok(());
    };
    for name in ctx.journal.started_not_done() {
        if !ctx.in_scope(name) {
            continue;
        }
        let freed = shh_store::remove_staged(&root, name).map_err(|e| {
            MigrateError::Refused(format!(
                "removing what an interrupted run left of {name}: {e}"
            ))
        })?;
        ctx.journal.cleaned(name)?;
        if freed > 0 {
            ctx.stat(|s| s.staging_removed.add(freed));
        }
    }
    Ok(())
}

/// Multipart uploads an earlier run started and no object of this (complete) run took up —
/// the object was finished otherwise, or left the plan — are aborted at the service, which
/// would otherwise keep (and bill) their parts for ever.
pub(super) async fn abort_untaken_uploads(ctx: &Ctx) -> Result<()> {
    let Some(mp) = ctx.dst.backend.multipart.clone() else {
        return Ok(());
    };
    for (name, id) in ctx.journal.untaken_uploads() {
        if !ctx.in_scope(&name) {
            continue;
        }
        let Ok(p) = listed(&name) else { continue };
        match mp.abort_multipart(&p, &id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                ctx.journal.upload_ended(&name)?;
                ctx.stat(|s| s.uploads_aborted += 1);
            }
            // Kept in the journal: the next run tries again.
            Err(_) => {}
        }
    }
    Ok(())
}

/// Copies a destination-only object into the quarantine prefix, then deletes it.
pub(super) async fn quarantine(ctx: &Ctx, item: &Item) -> Result<(), ObjErr> {
    let p = listed(&item.path)?;
    let q = listed(&format!(
        ".shh-quarantine/{}/{}",
        ctx.opts.run_id, item.path
    ))?;
    ctx.retry(|_| async {
        ctx.dst
            .store()
            .copy(&p, &q)
            .await
            .map_err(st("quarantine copy"))
    })
    .await?;
    let meta = ctx
        .dst
        .store()
        .head(&q)
        .await
        .map_err(st("quarantine check"))?;
    if meta.size != item.size {
        return Err(ObjErr::Mismatch(format!(
            "quarantined copy has {} bytes, not {}",
            meta.size, item.size
        )));
    }
    ctx.retry(|_| async { ctx.dst.store().delete(&p).await.map_err(st("delete")) })
        .await
}
