//! The decision for one object of the plan: copy it (whole, streamed or part by part), find it
//! already there and verify it, or report it gone from the source.

use super::*;

/// The object a listed name addresses. Listings give names as the service stores them, and
/// `Path::from` would percent-encode some characters (non-ASCII, `~`, `%`, `?`…), addressing
/// another object: a source key `données/é.bin` would be read as `donn%C3%A9es/%C3%A9.bin`.
pub(super) fn listed(name: &str) -> Result<Path, ObjErr> {
    Path::parse(name)
        .map_err(|source| ObjErr::Store("name", object_store::Error::InvalidPath { source }))
}

pub(super) async fn object(ctx: &Ctx, item: &Item) -> Result<(), ObjErr> {
    let p = listed(&item.path)?;
    match item.action {
        Action::Check => {
            let (a, b) = futures::try_join!(
                hash_object(ctx, ctx.src.store(), &p, false),
                hash_object(ctx, ctx.dst.store(), &p, true)
            )?;
            if a == b {
                ctx.stat(|s| s.checked_equal.add(item.size));
                return Ok(());
            }
            copy(ctx, item, &p, true).await?;
            ctx.stat(|s| s.replaced.add(item.size));
        }
        Action::Replace => {
            copy(ctx, item, &p, true).await?;
            ctx.stat(|s| s.replaced.add(item.size));
        }
        Action::Copy => match copy(ctx, item, &p, false).await {
            Ok(true) => ctx.stat(|s| s.already_there.add(item.size)),
            Ok(false) => ctx.stat(|s| s.copied.add(item.size)),
            Err(e) if item.size == 0 && e.not_found() && gone(ctx, &p).await => ctx.stat(|s| {
                s.empty_gone.add(0);
                if s.empty_gone_names.len() < NAMES_KEPT {
                    s.empty_gone_names.push(item.path.clone());
                }
            }),
            Err(e) => return Err(e),
        },
        Action::Same | Action::DestOnly => {}
    }
    Ok(())
}

/// Names of empty objects gone from the source kept in the run's report.
pub const NAMES_KEPT: usize = 100;

/// Whether the source says `p` does not exist (and not merely that a request failed).
pub(super) async fn gone(ctx: &Ctx, p: &Path) -> bool {
    matches!(
        ctx.src.store().head(p).await,
        Err(object_store::Error::NotFound { .. })
    )
}

/// Copies and verifies one object; true when it was already there (and verified).
pub(super) async fn copy(
    ctx: &Ctx,
    item: &Item,
    p: &Path,
    overwrite: bool,
) -> Result<bool, ObjErr> {
    if ctx.dst.url.local_path().is_some() {
        // A kill from here to `done` may leave staging files: the next run removes them.
        ctx.journal.started(&item.path).map_err(ObjErr::Journal)?;
    }
    if item.size >= ctx.multipart_threshold() {
        let digest = match ctx.dst.backend.multipart.clone() {
            Some(mp) => copy_resumable(ctx, item, p, mp.as_ref()).await?,
            None => copy_streamed(ctx, item, p).await?,
        };
        ctx.journal
            .done(&item.path, item.size, &digest)
            .map_err(ObjErr::Journal)?;
        return Ok(false);
    }
    let create = !overwrite && ctx.dst.caps.conditional_create == Some(true);
    let force = AtomicBool::new(false);
    // Bytes of a streamed object the progress bar has shown: a retry shows only what goes
    // beyond an earlier attempt.
    let shown = Arc::new(AtomicU64::new(0));
    let (sent, hash) = ctx
        .retry(|_| async {
            let create = create && !force.load(Ordering::Relaxed);
            let (sent, hash) = match ctx.chunked(item.size) {
                Some(raw) => put_chunked(ctx, raw, p, item.size, create, &shown).await?,
                None => put_whole(ctx, p, item.size, create).await?,
            };
            match verify_whole(ctx, p, item.size, &hash, sent).await {
                Ok(()) => Ok((sent, hash)),
                Err(ObjErr::Mismatch(m)) if sent == Sent::Not => Err(ObjErr::Conflict(format!(
                    "already at the destination with other content ({m}); not overwritten"
                ))),
                Err(e) => {
                    // What we wrote did not arrive intact: the next attempt replaces it.
                    force.store(true, Ordering::Relaxed);
                    Err(e)
                }
            }
        })
        .await?;
    ctx.journal
        .done(&item.path, item.size, &hash.to_hex())
        .map_err(ObjErr::Journal)?;
    Ok(sent == Sent::Not)
}
