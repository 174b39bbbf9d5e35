//! Verification at the destination: an object's BLAKE3 recomputed from a read-back, whole or
//! part by part, where the destination did not check every byte on receipt.

use super::*;

/// Hashes a whole object by streaming it (`read_back` counts it as verification traffic).
pub(super) async fn hash_object(
    ctx: &Ctx,
    store: &Arc<dyn ObjectStore>,
    p: &Path,
    read_back: bool,
) -> Result<(u64, blake3::Hash), ObjErr> {
    ctx.retry(|_| async {
        let (len, hash) = blake3_of(store.as_ref(), p, None)
            .await
            .map_err(st("read"))?;
        if read_back {
            ctx.stat(|s| s.bytes_read_back += len);
        }
        Ok((len, hash))
    })
    .await
}

/// Length and BLAKE3 of an object (or of `range` of it), streamed.
pub async fn blake3_of(
    store: &dyn ObjectStore,
    p: &Path,
    range: Option<std::ops::Range<u64>>,
) -> object_store::Result<(u64, blake3::Hash)> {
    let got = store.get_opts(p, ranged(range)).await?;
    let mut stream = shh_store::byte_stream(got, PIECE);
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    while let Some(c) = stream.try_next().await? {
        len += c.len() as u64;
        hasher.update(&c);
    }
    Ok((len, hasher.finalize()))
}

pub(super) async fn verify_whole(
    ctx: &Ctx,
    p: &Path,
    len: u64,
    hash: &blake3::Hash,
    sent: Sent,
) -> Result<(), ObjErr> {
    match ctx.check(sent) {
        Check::OnReceipt | Check::Written => {}
        Check::Size => {
            let meta = ctx.dst.store().head(p).await.map_err(st("verify"))?;
            if meta.size != len {
                return Err(ObjErr::Mismatch(format!("size {} != {len}", meta.size)));
            }
        }
        Check::ReadBack => {
            let (got_len, got) = hash_object(ctx, ctx.dst.store(), p, true).await?;
            if got_len != len {
                return Err(ObjErr::Mismatch(format!("size {got_len} != {len}")));
            }
            if &got != hash {
                return Err(ObjErr::Mismatch("BLAKE3 differs from the source's".into()));
            }
        }
    }
    Ok(())
}

/// Reads the destination object back and checks every part's BLAKE3.
pub(super) async fn verify_parts(
    ctx: &Ctx,
    p: &Path,
    size: u64,
    ps: u64,
    hashes: &[String],
    sent: Sent,
) -> Result<(), ObjErr> {
    let check = ctx.check(sent);
    if matches!(check, Check::OnReceipt | Check::Written) {
        return Ok(());
    }
    if check == Check::Size {
        let meta = ctx.dst.store().head(p).await.map_err(st("verify"))?;
        if meta.size != size {
            return Err(ObjErr::Mismatch(format!("size {} != {size}", meta.size)));
        }
        return Ok(());
    }
    // The size first (a truncated or extended object fails here), then every part by a ranged
    // read of its own, several at once, each hashed as it streams.
    let meta = ctx.dst.store().head(p).await.map_err(st("verify"))?;
    if meta.size != size {
        return Err(ObjErr::Mismatch(format!("size {} != {size}", meta.size)));
    }
    let n = size.div_ceil(ps).max(1) as usize;
    if n != hashes.len() {
        return Err(ObjErr::Mismatch(format!(
            "{n} parts expected, {} written",
            hashes.len()
        )));
    }
    let mut checks = futures::stream::iter(0..n)
        .map(|i| async move {
            let range = part_range(i, ps, size);
            let (len, hash) = blake3_of(ctx.dst.store().as_ref(), p, Some(range.clone()))
                .await
                .map_err(st("verify"))?;
            ctx.stat(|s| s.bytes_read_back += len);
            if len != range.end - range.start || hash.to_hex().as_str() != hashes[i] {
                return Err(ObjErr::Mismatch(format!(
                    "part {i} BLAKE3 differs from the source's"
                )));
            }
            Ok(())
        })
        .buffer_unordered(ctx.opts.part_concurrency.max(1));
    while let Some(r) = checks.next().await {
        r?;
    }
    Ok(())
}
