//! Requests to an S3 service that `object_store` does not send, signed here (AWS Signature
//! Version 4): uploads streamed with every chunk signed (`aws-chunked`,
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), and the two deliberately wrong requests with which
//! `shh_migrate::probe` finds out whether a service checks what it receives. The signing is
//! `sigv4`'s, the framing `chunked`'s; this module is the client.
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
use ring::{digest, hmac};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

mod chunked;
mod sigv4;
#[cfg(test)]
mod tests;

use chunked::*;
use sigv4::*;

pub use chunked::chunked_len;

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
            RawError::Status { status, code } => crate::retry::retriable_status(*status, code),
            RawError::Transport(_) => true,
            RawError::Source(e) => crate::retry::retriable(e),
            RawError::Credentials(_) | RawError::Length { .. } | RawError::Exists => false,
        }
    }
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

    /// Sends `body` to `key` (replacing what is there) signed as if its SHA-256 were
    /// `claimed_sha256`: with a wrong claim, a service that checks signed bodies refuses it.
    /// For the probes that find out (`shh_migrate::probe`).
    pub async fn put_claiming(
        &self,
        key: &str,
        body: Bytes,
        claimed_sha256: &[u8],
        timeout: Duration,
    ) -> Result<(), RawError> {
        let cred = self.credential().await?;
        let signer = Signer::now(&cred.secret_key, &self.region);
        let len = body.len() as u64;
        let signed = Body::Signed {
            len,
            sha256: claimed_sha256,
        };
        let (req, _) = self.prepare(&cred, &signer, key, signed, Put::Object { create: false })?;
        self.send(req, body.into(), timeout).await.map(drop)
    }

    /// Sends `data` to `key` as a chunk-signed upload of `chunk`-byte chunks whose last chunk
    /// has one byte changed after it was signed: a service that checks chunk signatures
    /// refuses it and stores nothing. For the probes that find out (`shh_migrate::probe`).
    pub async fn put_chunked_tampered(
        &self,
        key: &str,
        data: Bytes,
        chunk: usize,
        timeout: Duration,
    ) -> Result<(), RawError> {
        let cred = self.credential().await?;
        let signer = Signer::now(&cred.secret_key, &self.region);
        let size = data.len() as u64;
        if size == 0 || chunk == 0 {
            return Err(RawError::Length { got: 0, want: 1 });
        }
        let last = (data.len() - 1) % chunk + 1;
        let (req, seed) = self.prepare(
            &cred,
            &signer,
            key,
            Body::Chunked {
                size,
                chunk: chunk as u64,
            },
            Put::Object { create: false },
        )?;
        let mut frames = VecDeque::new();
        let mut framer = Framer::new(signer, seed, chunk, size);
        framer.push(data, &mut frames)?;
        framer.finish(&mut frames)?;
        // Each chunk is framed as header, data, CRLF; the last chunk's data is the last frame
        // of its length before the closing empty chunk.
        let n = frames.len();
        let tampered = frames
            .iter_mut()
            .take(n.saturating_sub(2))
            .rev()
            .find(|f| f.len() == last)
            .ok_or(RawError::Length { got: 0, want: size })?;
        let mut changed = tampered.to_vec();
        changed[0] ^= 1;
        *tampered = changed.into();
        let body: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        self.send(req, body.into(), timeout).await.map(drop)
    }
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
