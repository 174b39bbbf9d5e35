//! The `aws-chunked` body of a streamed upload: the source cut into chunks, each framed with
//! its length and its signature chained to the previous one, zero-copy (only the headers are
//! new bytes), ending with the empty chunk; and the stream that carries it, failing the
//! request if the source fails or has another length than announced.

use super::*;

/// The payload hash that announces a chunk-signed body.
pub(super) const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";

/// `;chunk-signature=` plus the signature and the header's CRLF.
pub(super) const CHUNK_META: u64 = 17 + 64 + 2;

/// Length of one encoded chunk carrying `len` bytes.
pub(super) fn frame_len(len: u64) -> u64 {
    format!("{len:x}").len() as u64 + CHUNK_META + len + 2
}

/// Length of the `aws-chunked` encoding of `size` bytes in chunks of `chunk`.
pub fn chunked_len(size: u64, chunk: u64) -> u64 {
    let chunk = chunk.max(1);
    let (full, rest) = (size / chunk, size % chunk);
    full * frame_len(chunk) + if rest > 0 { frame_len(rest) } else { 0 } + frame_len(0)
}

/// Cuts a byte stream into signed chunks of a fixed size (the last one shorter), then the
/// empty chunk that ends the body.
pub(super) struct Framer {
    signer: Signer,
    previous: String,
    chunk: usize,
    want: u64,
    seen: u64,
    pending: Vec<Bytes>,
    pending_len: usize,
    hash: digest::Context,
}

impl Framer {
    pub(super) fn new(signer: Signer, seed: String, chunk: usize, want: u64) -> Self {
        Self {
            signer,
            previous: seed,
            chunk: chunk.max(1),
            want,
            seen: 0,
            pending: Vec::new(),
            pending_len: 0,
            hash: digest::Context::new(&digest::SHA256),
        }
    }

    pub(super) fn push(&mut self, mut b: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), RawError> {
        self.seen += b.len() as u64;
        if self.seen > self.want {
            return Err(RawError::Length {
                got: self.seen,
                want: self.want,
            });
        }
        while !b.is_empty() {
            let part = b.split_to((self.chunk - self.pending_len).min(b.len()));
            self.hash.update(&part);
            self.pending_len += part.len();
            self.pending.push(part);
            if self.pending_len == self.chunk {
                self.emit(out);
            }
        }
        Ok(())
    }

    pub(super) fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), RawError> {
        if self.seen != self.want {
            return Err(RawError::Length {
                got: self.seen,
                want: self.want,
            });
        }
        if self.pending_len > 0 {
            self.emit(out);
        }
        self.emit(out);
        Ok(())
    }

    pub(super) fn emit(&mut self, out: &mut VecDeque<Bytes>) {
        let hash = std::mem::replace(&mut self.hash, digest::Context::new(&digest::SHA256));
        let sig = self.signer.chunk(&self.previous, hash.finish().as_ref());
        out.push_back(Bytes::from(format!(
            "{:x};chunk-signature={sig}\r\n",
            self.pending_len
        )));
        out.extend(self.pending.drain(..));
        out.push_back(Bytes::from_static(b"\r\n"));
        self.previous = sig;
        self.pending_len = 0;
    }
}

/// The body of a chunk-signed upload: `source` cut into signed chunks. A failure of the source
/// (or a length other than announced) is kept in `failed` and ends the body with an error, so
/// the request fails and the service stores nothing.
pub(super) fn framed<S>(
    source: S,
    framer: Framer,
    failed: Arc<Mutex<Option<RawError>>>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, object_store::Error>> + Send + 'static,
{
    struct St<S> {
        source: std::pin::Pin<Box<S>>,
        framer: Framer,
        out: VecDeque<Bytes>,
        done: bool,
        failed: Arc<Mutex<Option<RawError>>>,
    }
    let st = St {
        source: Box::pin(source),
        framer,
        out: VecDeque::new(),
        done: false,
        failed,
    };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(b) = st.out.pop_front() {
                return Some((Ok(b), st));
            }
            if st.done {
                return None;
            }
            let step = match st.source.next().await {
                Some(Ok(b)) => st.framer.push(b, &mut st.out),
                Some(Err(e)) => Err(RawError::Source(e)),
                None => {
                    st.done = true;
                    st.framer.finish(&mut st.out)
                }
            };
            if let Err(e) = step {
                st.done = true;
                st.out.clear();
                let msg = e.to_string();
                if let Ok(mut f) = st.failed.lock() {
                    *f = Some(e);
                }
                return Some((Err(std::io::Error::other(msg)), st));
            }
        }
    })
}
