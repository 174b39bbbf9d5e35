//! Objects sent part by part: through the service's multipart API with every part journalled
//! (a re-run sends only the missing ones), or through `put_multipart` where there is none.

use super::*;

/// The digest of a part-by-part object: BLAKE3 over its parts' BLAKE3s.
pub(super) fn parts_digest(part_size: u64, parts: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    format!("parts:{part_size}:{}", h.finalize().to_hex())
}

pub(super) fn part_range(i: usize, part_size: u64, size: u64) -> std::ops::Range<u64> {
    let start = i as u64 * part_size;
    start..(start + part_size).min(size)
}

/// Part by part through the service's multipart API, journalling the upload and every part.
pub(super) async fn copy_resumable(
    ctx: &Ctx,
    item: &Item,
    p: &Path,
    mp: &dyn MultipartStore,
) -> Result<String, ObjErr> {
    let size = item.size;
    let ps = ctx.dst.caps.part_size(size, ctx.opts.part_size);
    let n = size.div_ceil(ps).max(1) as usize;
    // One fresh start is allowed when a journalled upload turns out to be gone at the service.
    for fresh in [false, true] {
        let mut upload = match ctx.journal.take_upload(&item.path) {
            Some(u) if !fresh && u.size == size && u.part_size == ps => {
                let bytes: u64 = u
                    .parts
                    .keys()
                    .map(|&i| part_range(i, ps, size).end - part_range(i, ps, size).start)
                    .sum();
                ctx.stat(|s| {
                    s.parts_resumed += u.parts.len() as u64;
                    s.bytes_resumed += bytes;
                });
                ctx.task.advance(bytes);
                u
            }
            old => {
                if let Some(u) = old {
                    let _ = mp.abort_multipart(p, &u.id).await;
                    ctx.journal
                        .upload_ended(&item.path)
                        .map_err(ObjErr::Journal)?;
                }
                let id = ctx
                    .retry(|_| async { mp.create_multipart(p).await.map_err(st("start upload")) })
                    .await?;
                ctx.journal
                    .upload_started(&item.path, size, ps, &id)
                    .map_err(ObjErr::Journal)?;
                crate::journal::OpenUpload {
                    size,
                    part_size: ps,
                    id,
                    parts: Default::default(),
                }
            }
        };
        let resumed = !upload.parts.is_empty();
        // Parts stream in signed chunks where the service takes them, like whole objects.
        let chunked_parts = ctx.chunked_uploads();
        let missing: Vec<usize> = (0..n).filter(|i| !upload.parts.contains_key(i)).collect();
        let id = upload.id.clone();
        let results: Vec<Result<(usize, String, String), ObjErr>> = futures::stream::iter(missing)
            .map(|i| {
                let id = &id;
                async move {
                    let range = part_range(i, ps, size);
                    let want = range.end - range.start;
                    let shown = Arc::new(AtomicU64::new(0));
                    let (pid, hash) = ctx
                        .retry(|_| {
                            let (range, shown) = (range.clone(), shown.clone());
                            async move {
                                let _budget = ctx.parts.acquire().await.map_err(|_| {
                                    ObjErr::Conflict("the part budget was closed".into())
                                })?;
                                if let Some(raw) = chunked_parts {
                                    let _held = ctx.hold(want.min(3 * PIECE as u64)).await?;
                                    let number = i + 1; // object_store's numbering
                                    let put = Put::Part {
                                        upload_id: id,
                                        number,
                                    };
                                    let (etag, hash) = stream_put(ctx, raw, p, range, put, &shown)
                                        .await
                                        .map_err(raw_err)?;
                                    ctx.stat(|s| s.bytes_sent += want);
                                    return Ok((PartId { content_id: etag }, hash));
                                }
                                let _held = ctx.hold(want).await?;
                                let (chunks, hash) =
                                    read(ctx, ctx.src.store(), p, Some(range), true).await?;
                                let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
                                if len != want {
                                    return Err(ObjErr::Changed(format!(
                                        "part {i}: {len} bytes, expected {want}"
                                    )));
                                }
                                let payload: PutPayload = chunks.into_iter().collect();
                                let pid = mp
                                    .put_part(p, id, i, payload)
                                    .await
                                    .map_err(st("upload part"))?;
                                ctx.sent(len);
                                Ok((pid, hash))
                            }
                        })
                        .await?;
                    let hash = hash.to_hex().to_string();
                    ctx.journal
                        .part_done(&item.path, i, &pid.content_id, &hash)
                        .map_err(ObjErr::Journal)?;
                    Ok((i, pid.content_id, hash))
                }
            })
            .buffer_unordered(ctx.opts.part_concurrency.max(1))
            .collect()
            .await;
        let mut gone = false;
        for r in results {
            match r {
                Ok((i, e, h)) => {
                    upload.parts.insert(i, (e, h));
                }
                Err(e) if e.not_found() && !fresh => gone = true,
                Err(e) => return Err(e),
            }
        }
        if gone {
            continue;
        }
        let parts: Vec<PartId> = upload
            .parts
            .values()
            .map(|(e, _)| PartId {
                content_id: e.clone(),
            })
            .collect();
        let hashes: Vec<String> = upload.parts.values().map(|(_, h)| h.clone()).collect();
        let done = ctx
            .retry(|_| async {
                mp.complete_multipart(p, &id, parts.clone())
                    .await
                    .map_err(st("complete upload"))
            })
            .await;
        match done {
            Ok(_) => {}
            Err(e) if e.not_found() && !fresh => {
                // The service forgot the upload (expired or aborted): start again.
                continue;
            }
            Err(e) => return Err(e),
        }
        ctx.journal
            .upload_ended(&item.path)
            .map_err(ObjErr::Journal)?;
        let sent = match (resumed, chunked_parts) {
            (true, _) => Sent::Not,
            (false, Some(_)) => Sent::Chunked,
            (false, None) => Sent::Signed,
        };
        if sent == Sent::Chunked {
            ctx.stat(|s| s.chunk_signed.add(size));
        }
        match verify_parts(ctx, p, size, ps, &hashes, sent).await {
            Ok(()) => return Ok(parts_digest(ps, &hashes)),
            // A part taken over from an earlier run did not hold what its journal line says:
            // send the whole object once more, part by part, from the source.
            Err(ObjErr::Mismatch(_)) if resumed && !fresh => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ObjErr::Conflict(
        "the multipart upload was lost twice at the service".into(),
    ))
}

/// Part by part through `put_multipart` (no resume: used where the service has no multipart
/// API, such as local disk).
pub(super) async fn copy_streamed(ctx: &Ctx, item: &Item, p: &Path) -> Result<String, ObjErr> {
    let size = item.size;
    // To local disk the parts are only the pieces the object streams in (nothing resumes
    // them): small ones keep the memory of several large objects in flight low.
    let ps = if ctx.dst.backend.local.is_some() {
        LOCAL_PIECE
    } else {
        ctx.dst.caps.part_size(size, ctx.opts.part_size)
    };
    let n = size.div_ceil(ps).max(1) as usize;
    let hashes = ctx
        .retry(|_| async {
            let mut up = ctx
                .dst
                .store()
                .put_multipart(p)
                .await
                .map_err(st("start upload"))?;
            let mut hashes = Vec::with_capacity(n);
            for i in 0..n {
                let range = part_range(i, ps, size);
                let want = range.end - range.start;
                let _held = ctx.hold(want).await?;
                let r = read(ctx, ctx.src.store(), p, Some(range), true).await;
                let (chunks, hash) = match r {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = up.abort().await;
                        return Err(e);
                    }
                };
                let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
                if len != want {
                    let _ = up.abort().await;
                    return Err(ObjErr::Changed(format!(
                        "part {i}: {len} bytes, expected {want}"
                    )));
                }
                if let Err(e) = up.put_part(chunks.into_iter().collect()).await {
                    let _ = up.abort().await;
                    return Err(ObjErr::Store("write part", e));
                }
                ctx.sent(len);
                hashes.push(hash.to_hex().to_string());
            }
            up.complete().await.map_err(st("complete upload"))?;
            verify_parts(ctx, p, size, ps, &hashes, Sent::Signed).await?;
            Ok(hashes)
        })
        .await?;
    Ok(parts_digest(ps, &hashes))
}
