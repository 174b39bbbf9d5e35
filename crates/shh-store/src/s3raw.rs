//! Requests to an S3 service that `object_store` does not send, signed here (AWS Signature
//! Version 4): uploads streamed with every chunk signed (`aws-chunked`,
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), and the two probes that find out whether a service
//! checks what it receives.
//!
//! Why streamed uploads: a single signed PUT needs the SHA-256 of its whole body before the
//! first byte is sent, so `object_store` holds the whole object in memory, freshly faulted in.
//! A chunk-signed upload signs each chunk as it passes, so an object streams from its source
//! through a chunk or two of memory. A service that checks chunk signatures (AWS, and the S3
//! services built like it) refuses a chunk that differs from what was signed: the same check on
//! receipt as a signed payload, which is why the probes must show it before a migration relies
//! on it.
//!
//! Chunks are zero-copy slices of the source's buffers; only the few bytes of each chunk's
//! header are new.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::aws::{AwsCredential, AwsCredentialProvider};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use ring::{digest, hmac};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The payload hash that announces a chunk-signed body.
const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// SHA-256 of nothing: what a chunk's string to sign carries in place of headers.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// `;chunk-signature=` plus the signature and the header's CRLF.
const CHUNK_META: u64 = 17 + 64 + 2;

/// What it takes to send a request to an S3 store by hand: the same credentials, region and
/// path-style root the store uses, and one HTTP client for all such requests.
#[derive(Clone)]
pub struct S3Raw {
    credentials: AwsCredentialProvider,
    region: String,
    /// `scheme://host[:port]`.
    endpoint: String,
    /// `host[:port]`, as the `Host` header carries it.
    host: String,
    /// `/bucket[/prefix]`, encoded, without a trailing slash.
    root: String,
    /// Built on first use: most stores never send a request of their own.
    /// The configured proxy; the environment's are never used.
    proxy: Option<String>,
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl std::fmt::Debug for S3Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Raw")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Why a hand-signed request failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// The credentials could not be obtained.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The source stream failed while the body was being sent.
    #[error("reading the source: {0}")]
    Source(object_store::Error),
    /// The source delivered another number of bytes than announced.
    #[error("the source delivered {got} bytes where {want} were announced")]
    Length {
        /// Bytes delivered (so far, when too many).
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// A create-only write found the object already there (HTTP 412).
    #[error("already exists")]
    Exists,
    /// The service answered with an error status.
    #[error("HTTP {status}{code}")]
    Status {
        /// The status code.
        status: u16,
        /// `: <S3 error code>` when the body names one.
        code: String,
    },
    /// The request did not complete (connection, timeout).
    #[error("request failed: {0}")]
    Transport(String),
}

impl RawError {
    /// Worth another attempt: throttling, server errors, dropped connections.
    pub fn retriable(&self) -> bool {
        match self {
            // S3 answers a stalled upload with 400 `RequestTimeout`, and bytes that did not
            // arrive as sent with 400 `XAmzContentSHA256Mismatch`, `BadDigest` or
            // `IncompleteBody`: sending them again is the cure.
            RawError::Status { status, code } => {
                matches!(*status, 408 | 409 | 429)
                    || *status >= 500
                    || (*status == 400
                        && [
                            "RequestTimeout",
                            "XAmzContentSHA256Mismatch",
                            "BadDigest",
                            "IncompleteBody",
                        ]
                        .iter()
                        .any(|c| code.ends_with(c)))
            }
            RawError::Transport(_) => true,
            RawError::Source(e) => !matches!(
                e,
                object_store::Error::NotFound { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
            RawError::Credentials(_) | RawError::Length { .. } | RawError::Exists => false,
        }
    }
}

/// AWS's `UriEncode` for paths: everything but unreserved characters and `/` as `%XX`.
fn uri_encode_path(s: &str) -> String {
    uri_encode(s, true)
}

/// AWS's `UriEncode`: everything but unreserved characters (and `/` in paths) as `%XX`.
fn uri_encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (path && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// Signs requests and chunks for one credential, instant and region.
struct Signer {
    key: hmac::Key,
    /// `YYYYMMDDTHHMMSSZ`.
    amz_date: String,
    /// `YYYYMMDD/region/s3/aws4_request`.
    scope: String,
}

impl Signer {
    fn new(secret: &str, date: &str, time: &str, region: &str) -> Self {
        let mut k = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes()),
            date.as_bytes(),
        );
        for part in [region, "s3", "aws4_request"] {
            k = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()),
                part.as_bytes(),
            );
        }
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()),
            amz_date: format!("{date}T{time}Z"),
            scope: format!("{date}/{region}/s3/aws4_request"),
        }
    }

    fn now(secret: &str, region: &str) -> Self {
        let now = chrono::Utc::now();
        let date = now.format("%Y%m%d").to_string();
        let time = now.format("%H%M%S").to_string();
        Self::new(secret, &date, &time, region)
    }

    fn sign(&self, text: &str) -> String {
        hex::encode(hmac::sign(&self.key, text.as_bytes()))
    }

    /// The signature of a request: `path` and `query` encoded (the query's parameters sorted),
    /// `headers` sorted by lower-case name.
    fn request(
        &self,
        method: &str,
        (path, query): (&str, &str),
        headers: &[(&str, String)],
        payload: &str,
    ) -> String {
        let mut canonical = format!("{method}\n{path}\n{query}\n");
        for (name, value) in headers {
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value.trim());
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&signed_headers(headers));
        canonical.push('\n');
        canonical.push_str(payload);
        self.sign(&format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex_sha256(canonical.as_bytes())
        ))
    }

    /// The signature of one chunk, chained to the previous one (the seed for the first).
    fn chunk(&self, previous: &str, chunk_sha256: &[u8]) -> String {
        self.sign(&format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(chunk_sha256)
        ))
    }
}

fn signed_headers(headers: &[(&str, String)]) -> String {
    headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";")
}

/// Length of one encoded chunk carrying `len` bytes.
fn frame_len(len: u64) -> u64 {
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
struct Framer {
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
    fn new(signer: Signer, seed: String, chunk: usize, want: u64) -> Self {
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

    fn push(&mut self, mut b: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), RawError> {
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

    fn finish(&mut self, out: &mut VecDeque<Bytes>) -> Result<(), RawError> {
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

    fn emit(&mut self, out: &mut VecDeque<Bytes>) {
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

/// What a service does with chunk-signed uploads (probed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedSupport {
    /// It stores what the chunks carry, byte for byte.
    pub decoded: bool,
    /// It refuses a chunk that differs from what was signed, and stores nothing then.
    pub checked: bool,
}

/// What a PUT writes.
#[derive(Debug, Clone, Copy)]
pub enum Put<'a> {
    /// A whole object; `create`: only if the key does not exist.
    Object {
        /// Refuse to replace an existing object.
        create: bool,
    },
    /// Part `number` (from 1) of the multipart upload `upload_id`.
    Part {
        /// The upload.
        upload_id: &'a str,
        /// The part number, from 1.
        number: usize,
    },
}

/// The body a request is signed for.
enum Body<'a> {
    /// `len` bytes signed with their SHA-256 (or, to probe, another hash).
    Signed { len: u64, sha256: &'a [u8] },
    /// `size` bytes of an object, in signed chunks of `chunk` bytes.
    Chunked { size: u64, chunk: u64 },
}

/// A signed request ready to send.
struct Prepared {
    url: String,
    headers: reqwest::header::HeaderMap,
}

impl S3Raw {
    /// For the store at `endpoint` (`scheme://host[:port]`), bucket and prefix.
    pub(crate) fn new(
        credentials: AwsCredentialProvider,
        region: String,
        endpoint: &str,
        bucket: &str,
        prefix: &str,
        proxy: Option<&str>,
    ) -> Result<Self, String> {
        let parsed = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(format!("no host in {endpoint}")),
        };
        let mut root = String::new();
        for part in [bucket, prefix] {
            let part = part.trim_matches('/');
            if !part.is_empty() {
                root.push('/');
                root.push_str(&uri_encode_path(part));
            }
        }
        Ok(Self {
            credentials,
            region,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            host,
            root,
            proxy: proxy.map(str::to_owned),
            client: Arc::default(),
        })
    }

    fn client(&self) -> Result<&reqwest::Client, RawError> {
        self.client
            .get_or_init(|| {
                // A plain-HTTP endpoint (a local test server) needs no trust roots, and loading
                // the system's is most of building a client.
                let tls = !crate::http::is_plain(&self.endpoint);
                let b = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .tls_built_in_root_certs(tls);
                // The residency policy's proxy, or none: never HTTP_PROXY and the like.
                let b = match &self.proxy {
                    Some(p) => reqwest::Proxy::all(p)
                        .map(|p| b.proxy(p))
                        .map_err(|e| error_chain(&e))?,
                    None => b.no_proxy(),
                };
                b.build().map_err(|e| error_chain(&e))
            })
            .as_ref()
            .map_err(|e| RawError::Transport(format!("HTTP client: {e}")))
    }

    async fn credential(&self) -> Result<Arc<AwsCredential>, RawError> {
        self.credentials
            .get_credential()
            .await
            .map_err(|e| RawError::Credentials(e.to_string()))
    }

    /// Signs a PUT of `key` (or of one part of an upload of it) carrying `body`. Also returns
    /// the signature (the seed of a chunk-signed body).
    fn prepare(
        &self,
        cred: &AwsCredential,
        signer: &Signer,
        key: &str,
        body: Body,
        put: Put<'_>,
    ) -> Result<(Prepared, String), RawError> {
        let path = format!("{}/{}", self.root, uri_encode_path(key));
        let mut headers: Vec<(&str, String)> = vec![
            ("host", self.host.clone()),
            ("x-amz-date", signer.amz_date.clone()),
        ];
        let query = match put {
            Put::Object { create } => {
                if create {
                    headers.push(("if-none-match", "*".into()));
                }
                String::new()
            }
            // Parameters sorted by name, as the canonical request wants them.
            Put::Part { upload_id, number } => {
                format!(
                    "partNumber={number}&uploadId={}",
                    uri_encode(upload_id, false)
                )
            }
        };
        let payload = match body {
            Body::Signed { len, sha256 } => {
                headers.push(("content-length", len.to_string()));
                hex::encode(sha256)
            }
            Body::Chunked { size, chunk } => {
                headers.push(("content-length", chunked_len(size, chunk).to_string()));
                headers.push(("content-encoding", "aws-chunked".into()));
                headers.push(("x-amz-decoded-content-length", size.to_string()));
                STREAMING.to_owned()
            }
        };
        headers.push(("x-amz-content-sha256", payload.clone()));
        if let Some(token) = &cred.token {
            headers.push(("x-amz-security-token", token.clone()));
        }
        headers.sort_by(|a, b| a.0.cmp(b.0));
        let signature = signer.request("PUT", (&path, &query), &headers, &payload);
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in &headers {
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| RawError::Transport(format!("header {name}: {e}")))?;
            map.insert(*name, value);
        }
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={signature}",
            cred.key_id,
            signer.scope,
            signed_headers(&headers)
        );
        map.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&auth)
                .map_err(|e| RawError::Transport(format!("authorization: {e}")))?,
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        Ok((Prepared { url, headers: map }, signature))
    }

    /// Sends a prepared PUT; returns the `ETag` the service answered with (empty if none).
    async fn send(
        &self,
        req: Prepared,
        body: reqwest::Body,
        timeout: Duration,
    ) -> Result<String, RawError> {
        let resp = self
            .client()?
            .put(&req.url)
            .headers(req.headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| RawError::Transport(error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            let etag = resp.headers().get(reqwest::header::ETAG);
            return Ok(etag
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned());
        }
        if status == reqwest::StatusCode::PRECONDITION_FAILED {
            return Err(RawError::Exists);
        }
        let text = resp.text().await.unwrap_or_default();
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(c, _)| format!(": {}", c.chars().take(64).collect::<String>()))
            .unwrap_or_default();
        Err(RawError::Status {
            status: status.as_u16(),
            code,
        })
    }

    /// Uploads `size` bytes from `source` to `key` (or as one part of a multipart upload of
    /// it) in one PUT, streamed in signed chunks of `chunk` bytes. A create-only object PUT is
    /// refused (`RawError::Exists`) when the key exists. Nothing is stored unless every
    /// announced byte arrived with a valid signature. Returns the service's `ETag` (a part's
    /// id in the upload).
    pub async fn put_chunked<S>(
        &self,
        key: &str,
        put: Put<'_>,
        size: u64,
        chunk: usize,
        source: S,
        timeout: Duration,
    ) -> Result<String, RawError>
    where
        S: Stream<Item = Result<Bytes, object_store::Error>> + Send + 'static,
    {
        let cred = self.credential().await?;
        let signer = Signer::now(&cred.secret_key, &self.region);
        let body = Body::Chunked {
            size,
            chunk: chunk as u64,
        };
        let (req, seed) = self.prepare(&cred, &signer, key, body, put)?;
        let failed: Arc<Mutex<Option<RawError>>> = Arc::default();
        let body = framed(
            source,
            Framer::new(signer, seed, chunk, size),
            failed.clone(),
        );
        let sent = self
            .send(req, reqwest::Body::wrap_stream(body), timeout)
            .await;
        // The body's own failure explains a broken request better than the transport does.
        if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        sent
    }

    /// Sends `body` to `key` signed as if its SHA-256 were `signed_sha256`.
    async fn put_signed_as(
        &self,
        key: &str,
        body: Bytes,
        signed_sha256: &[u8],
    ) -> Result<(), RawError> {
        let cred = self.credential().await?;
        let signer = Signer::now(&cred.secret_key, &self.region);
        let len = body.len() as u64;
        let signed = Body::Signed {
            len,
            sha256: signed_sha256,
        };
        let (req, _) = self.prepare(&cred, &signer, key, signed, Put::Object { create: false })?;
        self.send(req, body.into(), PROBE_TIMEOUT).await.map(drop)
    }

    /// Whether the service refuses a body whose SHA-256 differs from the signed one. The same
    /// small PUT is sent twice, signed once with the body's SHA-256 and once with another
    /// hash: a service that stores the first and refuses the second (holding nothing for it
    /// afterwards) checks payload hashes (AWS answers `XAmzContentSHA256Mismatch`; s3s answers
    /// 500 but stores nothing). `store` is the same store, used to look and clean up.
    pub async fn checks_payload_hash(&self, store: &dyn ObjectStore) -> Result<bool, String> {
        const BODY: &[u8] = b"shh capability probe: is the signed SHA-256 of this body checked?";
        let body = Bytes::from_static(BODY);
        let ok = format!(".shh-migrate/payload-ok-{}", uuid::Uuid::new_v4());
        let right = self
            .put_signed_as(
                &ok,
                body.clone(),
                digest::digest(&digest::SHA256, BODY).as_ref(),
            )
            .await;
        let _ = store.delete(&Path::from(ok)).await;
        right.map_err(|e| format!("a correctly signed request failed: {e}"))?;
        let bad = format!(".shh-migrate/payload-bad-{}", uuid::Uuid::new_v4());
        let wrong = self
            .put_signed_as(
                &bad,
                body,
                digest::digest(&digest::SHA256, b"other").as_ref(),
            )
            .await;
        refused_and_absent(store, &bad, wrong).await
    }

    /// What the service does with chunk-signed uploads. One upload of two chunks must be
    /// stored byte for byte (`decoded`); the same upload with one byte of its second chunk
    /// changed after signing must then be refused and leave nothing behind (`checked`).
    pub async fn probe_chunked(&self, store: &dyn ObjectStore) -> Result<ChunkedSupport, String> {
        const CHUNK: usize = 8192; // the smallest chunk AWS accepts
        let data: Bytes = (0..CHUNK + 100)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let ok = format!(".shh-migrate/chunked-ok-{}", uuid::Uuid::new_v4());
        let source = futures::stream::iter([Ok(data.clone())]);
        let put = self
            .put_chunked(
                &ok,
                Put::Object { create: false },
                data.len() as u64,
                CHUNK,
                source,
                PROBE_TIMEOUT,
            )
            .await;
        let stored = match put {
            Ok(_) => store.get(&Path::from(ok.as_str())).await,
            Err(e) => {
                let _ = store.delete(&Path::from(ok)).await;
                return Err(format!("a correctly signed chunked upload failed: {e}"));
            }
        };
        let stored = match stored {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        let _ = store.delete(&Path::from(ok)).await;
        if stored.map_err(|e| e.to_string())? != data {
            return Ok(ChunkedSupport {
                decoded: false,
                checked: false,
            });
        }
        // The same frames, with one byte of the second chunk changed after it was signed.
        let cred = self.credential().await.map_err(|e| e.to_string())?;
        let signer = Signer::now(&cred.secret_key, &self.region);
        let bad = format!(".shh-migrate/chunked-bad-{}", uuid::Uuid::new_v4());
        let size = data.len() as u64;
        let (req, seed) = self
            .prepare(
                &cred,
                &signer,
                &bad,
                Body::Chunked {
                    size,
                    chunk: CHUNK as u64,
                },
                Put::Object { create: false },
            )
            .map_err(|e| e.to_string())?;
        let mut frames = VecDeque::new();
        let mut framer = Framer::new(signer, seed, CHUNK, size);
        framer.push(data, &mut frames).map_err(|e| e.to_string())?;
        framer.finish(&mut frames).map_err(|e| e.to_string())?;
        // The frames are each chunk's header, data and CRLF; the second chunk's data is the
        // only frame of 100 bytes.
        let tampered = frames
            .iter_mut()
            .find(|f| f.len() == 100)
            .ok_or("unexpected chunk layout")?;
        let mut changed = tampered.to_vec();
        changed[0] ^= 1;
        *tampered = changed.into();
        let body: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let sent = self.send(req, body.into(), PROBE_TIMEOUT).await.map(drop);
        Ok(ChunkedSupport {
            decoded: true,
            checked: refused_and_absent(store, &bad, sent).await?,
        })
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// True when `sent` failed with a status from the service and nothing is stored at `key`
/// (which is removed either way).
async fn refused_and_absent(
    store: &dyn ObjectStore,
    key: &str,
    sent: Result<(), RawError>,
) -> Result<bool, String> {
    let p = Path::from(key);
    let held = store.head(&p).await;
    let _ = store.delete(&p).await;
    match sent {
        Ok(()) => Ok(false),
        Err(RawError::Status { .. }) => {
            Ok(matches!(held, Err(object_store::Error::NotFound { .. })))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The body of a chunk-signed upload: `source` cut into signed chunks. A failure of the source
/// (or a length other than announced) is kept in `failed` and ends the body with an error, so
/// the request fails and the service stores nothing.
fn framed<S>(
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

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The worked examples of AWS's Signature Version 4 documentation for S3.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn example_signer() -> Signer {
        Signer::new(SECRET, "20130524", "000000", "us-east-1")
    }

    fn h(name: &'static str, value: &str) -> (&'static str, String) {
        (name, value.to_owned())
    }

    #[test]
    fn request_signatures_match_the_aws_examples() {
        let s = example_signer();
        let get = [
            h("host", "examplebucket.s3.amazonaws.com"),
            h("range", "bytes=0-9"),
            h("x-amz-content-sha256", EMPTY_SHA256),
            h("x-amz-date", "20130524T000000Z"),
        ];
        assert_eq!(
            s.request("GET", ("/test.txt", ""), &get, EMPTY_SHA256),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let put = [
            h("content-encoding", "aws-chunked"),
            h("content-length", "66824"),
            h("host", "s3.amazonaws.com"),
            h("x-amz-content-sha256", STREAMING),
            h("x-amz-date", "20130524T000000Z"),
            h("x-amz-decoded-content-length", "66560"),
            h("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ];
        assert_eq!(
            s.request(
                "PUT",
                ("/examplebucket/chunkObject.txt", ""),
                &put,
                STREAMING
            ),
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        );
    }

    #[test]
    fn chunk_signatures_match_the_aws_example() {
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let mut f = Framer::new(example_signer(), seed.into(), 65536, 66560);
        let mut out = VecDeque::new();
        let data = Bytes::from(vec![b'a'; 66560]);
        // Split where the chunk boundary is not.
        for piece in [
            data.slice(..1000),
            data.slice(1000..65600),
            data.slice(65600..),
        ] {
            f.push(piece, &mut out).expect("within the announced size");
        }
        f.finish(&mut out).expect("complete");
        let body: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        let mut want = b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n".to_vec();
        want.extend(vec![b'a'; 65536]);
        want.extend(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        want.extend(vec![b'a'; 1024]);
        want.extend(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        assert_eq!(body, want);
        assert_eq!(chunked_len(66560, 65536), 66824);
    }

    #[test]
    fn throttling_timeouts_damage_and_server_errors_are_retried_refusals_are_not() {
        let status = |status: u16, code: &str| RawError::Status {
            status,
            code: code.into(),
        };
        for e in [
            status(503, ": SlowDown"),
            status(500, ": InternalError"),
            status(429, ""),
            status(400, ": RequestTimeout"),
            status(400, ": XAmzContentSHA256Mismatch"),
            RawError::Transport("connection reset".into()),
        ] {
            assert!(e.retriable(), "{e}");
        }
        for e in [
            status(403, ": SignatureDoesNotMatch"),
            status(400, ": InvalidArgument"),
            RawError::Exists,
            RawError::Length { got: 1, want: 2 },
        ] {
            assert!(!e.retriable(), "{e}");
        }
    }

    #[test]
    fn paths_are_encoded_like_aws_does() {
        assert_eq!(uri_encode_path("a b/c$d~e-f_g.h"), "a%20b/c%24d~e-f_g.h");
        assert_eq!(uri_encode_path("é+%"), "%C3%A9%2B%25");
    }

    #[test]
    fn a_source_of_another_length_is_refused() {
        let mut out = VecDeque::new();
        let mut f = Framer::new(example_signer(), "seed".into(), 10, 5);
        assert!(matches!(
            f.push(Bytes::from_static(b"123456"), &mut out),
            Err(RawError::Length { got: 6, want: 5 })
        ));
        let mut f = Framer::new(example_signer(), "seed".into(), 10, 5);
        f.push(Bytes::from_static(b"1234"), &mut out)
            .expect("short so far");
        assert!(matches!(
            f.finish(&mut out),
            Err(RawError::Length { got: 4, want: 5 })
        ));
    }

    #[tokio::test]
    async fn a_failing_source_ends_the_body_with_its_error() {
        let source = futures::stream::iter([
            Ok(Bytes::from_static(b"0123456789")),
            Err(object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            }),
        ]);
        let failed = Arc::default();
        let framer = Framer::new(example_signer(), "seed".into(), 4, 20);
        let items: Vec<_> = framed(source, framer, Arc::clone(&failed)).collect().await;
        assert!(items.last().is_some_and(|r| r.is_err()));
        let kept = failed.lock().ok().and_then(|mut f| f.take());
        assert!(matches!(kept, Some(RawError::Source(_))));
    }

    /// Decodes a chunk-signed body, checking every signature of the chain.
    fn decode(body: &[u8], signer: &Signer, seed: &str) -> Result<Vec<u8>, String> {
        let mut rest = body;
        let mut previous = seed.to_owned();
        let mut data = Vec::new();
        loop {
            let semi = rest.iter().position(|&b| b == b';').ok_or("no size")?;
            let len = usize::from_str_radix(
                std::str::from_utf8(&rest[..semi]).map_err(|e| e.to_string())?,
                16,
            )
            .map_err(|e| e.to_string())?;
            let meta = rest
                .get(semi..semi + CHUNK_META as usize)
                .ok_or("short header")?;
            let sig = std::str::from_utf8(&meta[17..81]).map_err(|e| e.to_string())?;
            let chunk = rest
                .get(semi + CHUNK_META as usize..semi + CHUNK_META as usize + len)
                .ok_or("short chunk")?;
            let want = signer.chunk(&previous, digest::digest(&digest::SHA256, chunk).as_ref());
            if sig != want {
                return Err("bad signature".into());
            }
            previous = want;
            data.extend_from_slice(chunk);
            rest = &rest[semi + CHUNK_META as usize + len..];
            if rest.get(..2) != Some(b"\r\n") {
                return Err("no CRLF after chunk".into());
            }
            rest = &rest[2..];
            if len == 0 {
                return if rest.is_empty() {
                    Ok(data)
                } else {
                    Err("bytes after the end".into())
                };
            }
        }
    }

    proptest! {
        #[test]
        fn framed_bodies_decode_to_the_source_and_have_the_announced_length(
            data in proptest::collection::vec(any::<u8>(), 0..40_000),
            chunk in 1usize..9_000,
            cuts in proptest::collection::vec(0usize..40_000, 0..8),
        ) {
            let data = Bytes::from(data);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let mut f = Framer::new(example_signer(), "seed".into(), chunk, data.len() as u64);
            let mut out = VecDeque::new();
            for w in cuts.windows(2) {
                f.push(data.slice(w[0]..w[1]), &mut out).expect("within size");
            }
            f.finish(&mut out).expect("complete");
            let body: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
            prop_assert_eq!(body.len() as u64, chunked_len(data.len() as u64, chunk as u64));
            let decoded = decode(&body, &example_signer(), "seed");
            prop_assert_eq!(decoded.as_deref(), Ok(&data[..]));
        }
    }
}
