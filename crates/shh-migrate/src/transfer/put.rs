//! Writing an object in one upload: read whole and sent signed with its SHA-256, or streamed
//! in signed chunks; and reading the source as it goes, hashed and under the bandwidth limit.

use super::*;

/// Reads the whole object, then writes it in one request signed with its SHA-256. The
/// buffer budget is held only until the bytes are sent (a read-back streams).
pub(super) async fn put_whole(
    ctx: &Ctx,
    p: &Path,
    size: u64,
    create: bool,
) -> Result<(Sent, blake3::Hash), ObjErr> {
    let _held = ctx.hold(size).await?;
    let (chunks, hash) = read(ctx, ctx.src.store(), p, None, true).await?;
    let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    if len != size {
        return Err(ObjErr::Changed(format!("{len} bytes, listed {size}")));
    }
    let mode = if create {
        PutMode::Create
    } else {
        PutMode::Overwrite
    };
    let payload: PutPayload = chunks.into_iter().collect();
    match ctx
        .dst
        .store()
        .put_opts(p, payload, PutOptions::from(mode))
        .await
    {
        Ok(_) => {
            ctx.sent(len);
            Ok((Sent::Signed, hash))
        }
        Err(object_store::Error::AlreadyExists { .. }) => Ok((Sent::Not, hash)),
        Err(e) => Err(ObjErr::Store("write", e)),
    }
}

/// Streams the object from the source to the destination in one upload whose every chunk is
/// signed, hashing it as it passes: a few chunks in memory however large the object. Progress
/// moves as the bytes pass (`shown` is what earlier attempts already showed).
pub(super) async fn put_chunked(
    ctx: &Ctx,
    raw: &S3Raw,
    p: &Path,
    size: u64,
    create: bool,
    shown: &Arc<AtomicU64>,
) -> Result<(Sent, blake3::Hash), ObjErr> {
    let _held = ctx.hold(3 * PIECE as u64).await?;
    match stream_put(ctx, raw, p, 0..size, Put::Object { create }, shown).await {
        Ok((_, hash)) => {
            ctx.stat(|s| {
                s.bytes_sent += size;
                s.chunk_signed.add(size);
            });
            Ok((Sent::Chunked, hash))
        }
        // Refused before the body was read through: hash the source on its own.
        Err(RawError::Exists) => {
            let (len, hash) = hash_object(ctx, ctx.src.store(), p, false).await?;
            if len != size {
                return Err(ObjErr::Changed(format!("{len} bytes, listed {size}")));
            }
            Ok((Sent::Not, hash))
        }
        Err(e) => Err(raw_err(e)),
    }
}

/// Streams `range` of the source object into one chunk-signed PUT (`put`: the object, or one
/// part of an upload of it), hashing the bytes as they pass and moving the progress bar
/// (`shown`: what earlier attempts of the same bytes showed). Returns the service's ETag and
/// the BLAKE3 of the bytes sent. What it holds at most: three pieces of a local source.
pub(super) async fn stream_put(
    ctx: &Ctx,
    raw: &S3Raw,
    p: &Path,
    range: std::ops::Range<u64>,
    put: Put<'_>,
    shown: &Arc<AtomicU64>,
) -> Result<(String, blake3::Hash), RawError> {
    let size = range.end - range.start;
    let whole = matches!(put, Put::Object { .. });
    let got = ctx
        .src
        .store()
        .get_opts(p, ranged((!whole).then(|| range.clone())))
        .await
        .map_err(RawError::Source)?;
    let got_len = got.range.end - got.range.start;
    if got_len != size {
        return Err(RawError::Length {
            got: got_len,
            want: size,
        });
    }
    let hasher = Arc::new(Mutex::new(blake3::Hasher::new()));
    let (h, bw) = (hasher.clone(), ctx.bw.clone());
    let (progress, shown_by_stream) = (ctx.task.clone(), shown.clone());
    let passed = Arc::new(AtomicU64::new(0));
    let source = shh_store::byte_stream(got, PIECE).and_then(move |b| {
        let (h, bw) = (h.clone(), bw.clone());
        let (progress, shown, passed) = (progress.clone(), shown_by_stream.clone(), passed.clone());
        async move {
            if let Some(bw) = bw {
                bw.take(b.len() as u64).await;
            }
            if let Ok(mut h) = h.lock() {
                h.update(&b);
            }
            let now = passed.fetch_add(b.len() as u64, Ordering::Relaxed) + b.len() as u64;
            let before = shown.fetch_max(now, Ordering::Relaxed);
            if now > before {
                progress.advance(now - before);
            }
            Ok(b)
        }
    });
    // Generous, so that only a stalled transfer times out: five minutes plus the bytes at
    // 256 KiB/s (or at the bandwidth limit, when lower).
    let rate = ctx
        .bw
        .as_ref()
        .map_or(256.0 * 1024.0, |b| b.rate.min(256.0 * 1024.0));
    let timeout = Duration::from_secs(300) + Duration::from_secs_f64(size as f64 / rate);
    let etag = raw
        .put_chunked(p.as_ref(), put, size, STREAM_CHUNK, source, timeout)
        .await?;
    let hash = hasher
        .lock()
        .map(|h| h.finalize())
        .map_err(|_| RawError::Transport("hasher lock poisoned".into()))?;
    Ok((etag, hash))
}

/// Reads an object (or a range), hashing it, under the bandwidth limit when `limit`.
pub(super) async fn read(
    ctx: &Ctx,
    store: &Arc<dyn ObjectStore>,
    p: &Path,
    range: Option<std::ops::Range<u64>>,
    limit: bool,
) -> Result<(Vec<Bytes>, blake3::Hash), ObjErr> {
    // Whole object (or part) in one call: on local disk that is one blocking read instead of
    // one thread hand-off per 8 KiB chunk; over HTTP it is the same stream, collected.
    let bytes = store
        .get_opts(p, ranged(range))
        .await
        .map_err(st("read"))?
        .bytes()
        .await
        .map_err(st("read"))?;
    if let Some(bw) = ctx.bw.as_ref().filter(|_| limit) {
        bw.take(bytes.len() as u64).await;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    let chunks = vec![bytes];
    Ok((chunks, hasher.finalize()))
}

/// GET options for `range`, or the whole object.
pub(super) fn ranged(range: Option<std::ops::Range<u64>>) -> GetOptions {
    GetOptions {
        range: range.map(GetRange::Bounded),
        ..GetOptions::default()
    }
}
