//! A GET's bytes as a stream that is cheap for every backend. `object_store` streams a local
//! file in 8 KiB pieces, each read on a blocking thread of its own: a 64 MiB object becomes
//! 8,192 thread hand-offs. [`byte_stream`] reads a local file in large pieces on one blocking
//! thread, a piece ahead of the consumer; the streams of network backends pass through as they
//! are.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{GetResult, GetResultPayload};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;

/// The piece size for streamed reads: large enough that a local file costs one thread
/// hand-off per 4 MiB, small enough that three pieces in memory do not matter.
pub const READ_PIECE: usize = 4 * 1024 * 1024;

/// The bytes of `result`, a local file's in pieces of `piece` bytes (at most three pieces are
/// in memory at once: one being read, one waiting, one with the consumer).
pub fn byte_stream(
    result: GetResult,
    piece: usize,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    match result.payload {
        GetResultPayload::File(file, path) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let range = result.range;
            tokio::task::spawn_blocking(move || read_pieces(file, path, range, piece.max(1), tx));
            futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .boxed()
        }
        GetResultPayload::Stream(s) => s,
    }
}

type Sender = tokio::sync::mpsc::Sender<object_store::Result<Bytes>>;

fn read_pieces(mut file: File, path: PathBuf, range: Range<u64>, piece: usize, tx: Sender) {
    let fail = |tx: &Sender, e: std::io::Error| {
        let _ = tx.blocking_send(Err(object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!("reading {}: {e}", path.display()).into(),
        }));
    };
    if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
        return fail(&tx, e);
    }
    let mut left = range.end.saturating_sub(range.start);
    while left > 0 {
        let want = left.min(piece as u64);
        let mut buf = Vec::with_capacity(want as usize);
        match (&mut file).take(want).read_to_end(&mut buf) {
            Ok(0) => {
                let eof = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{left} bytes short of the object's length"),
                );
                return fail(&tx, eof);
            }
            Ok(n) => left -= n as u64,
            Err(e) => return fail(&tx, e),
        }
        // The consumer is gone: stop reading.
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::local::LocalFileSystem;
    use object_store::path::Path;
    use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

    #[tokio::test]
    async fn local_objects_stream_in_pieces_whole_and_by_range() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let p = Path::from("a/b.bin");
        store.put(&p, data.clone().into()).await.expect("put");

        let got = store.get(&p).await.expect("get");
        let pieces: Vec<Bytes> = byte_stream(got, 30_000).try_collect().await.expect("read");
        let lens: Vec<usize> = pieces.iter().map(Bytes::len).collect();
        assert_eq!(lens, vec![30_000, 30_000, 30_000, 10_000]);
        assert_eq!(pieces.concat(), data);

        let opts = GetOptions {
            range: Some(GetRange::Bounded(12_345..67_890)),
            ..GetOptions::default()
        };
        let got = store.get_opts(&p, opts).await.expect("get range");
        let pieces: Vec<Bytes> = byte_stream(got, 50_000).try_collect().await.expect("read");
        assert_eq!(pieces.concat(), data[12_345..67_890]);
    }

    #[tokio::test]
    async fn a_file_cut_short_while_streaming_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = LocalFileSystem::new_with_prefix(dir.path()).expect("fs");
        let p = Path::from("short.bin");
        store.put(&p, vec![7u8; 50_000].into()).await.expect("put");
        let got = store.get(&p).await.expect("get");
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("short.bin"))
            .and_then(|f| f.set_len(20_000))
            .expect("truncate");
        let r: Result<Vec<Bytes>, _> = byte_stream(got, 8_192).try_collect().await;
        let e = r.expect_err("cut short");
        assert!(e.to_string().contains("short"), "{e}");
    }
}
