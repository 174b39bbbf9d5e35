//! Where the hub's bytes live.
//!
//! A store is named by a URL ([`StoreUrl`]): `file:///path`, `memory://`,
//! `s3://bucket/prefix?endpoint=…&region=…` (any S3-compatible service, path-style) or
//! `az://container/prefix[?account=…&emulator=true]` (Azure Blob, or the Azurite emulator).
//! [`open_store`] checks the URL against the hub's [`ResidencyPolicy`] *before* any client is
//! built, so a store outside the allowlist never receives a byte, not even a request.
//!
//! The stores are `object_store` backends. This crate adds what `object_store` lacks: durable
//! local writes ([`DurableLocal`]), dual writes ([`MirrorStore`]), S3 uploads streamed in signed
//! chunks ([`S3Raw`]), and HTTP clients that load no trust roots for plain-HTTP endpoints.
//! Client-side encryption wraps the stores in `shh-crypt`. The `conformance` suite (feature
//! `conformance`) is what every backend and every wrapper must pass.

#![forbid(unsafe_code)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod http;
mod local;
mod mirror;
mod residency;
pub mod retry;
mod s3raw;
mod stream;
mod url;

pub use local::{DurableLocal, remove_staged};
pub use mirror::MirrorStore;
pub use residency::{
    Destination, ProxyError, ResidencyError, ResidencyPolicy, ResidencyRule, check_proxy,
};
pub use s3raw::{Put, RawError, S3Raw, chunked_len};
pub use stream::{READ_PIECE, byte_stream};
pub use url::{StoreKind, StoreUrl, UrlError};

use object_store::ObjectStore;
use object_store::multipart::MultipartStore;
use object_store::prefix::PrefixStore;
use std::sync::Arc;

/// Errors opening a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is malformed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The residency policy refuses the destination.
    #[error(transparent)]
    Residency(#[from] ResidencyError),
    /// The configured proxy is not a proxy address.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The backend could not be configured.
    #[error("cannot open store {url}: {source}")]
    Backend {
        /// The store URL (without secrets).
        url: String,
        /// The backend's error.
        source: object_store::Error,
    },
    /// The URL names a credential set whose variable is not set.
    #[error("store {url} names credentials, but {var} is not set")]
    MissingCredential {
        /// The store URL.
        url: String,
        /// The variable that is missing.
        var: String,
    },
    /// A local directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Checks `url` against `policy`, then builds the store. Nothing is sent before the check.
pub fn open_store(
    url: &StoreUrl,
    policy: &ResidencyPolicy,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Ok(open_backend(url, policy)?.store)
}

/// A store together with its low-level multipart interface, when the service has one.
///
/// Migration needs the second: an S3 or Azure multipart upload can be resumed after a crash
/// (its id and finished parts are journalled), which `ObjectStore::put_multipart` hides.
#[derive(Clone)]
pub struct Backend {
    /// The store, rooted at the URL's prefix.
    pub store: Arc<dyn ObjectStore>,
    /// The same store's multipart API (S3, Azure), rooted at the same prefix.
    pub multipart: Option<Arc<dyn MultipartStore>>,
    /// For an S3 store with credentials: what it takes to sign a request by hand.
    pub s3: Option<S3Raw>,
    /// For local disk: the store itself, whose syncs a bulk copy may group.
    pub local: Option<Arc<DurableLocal>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("store", &self.store)
            .field("multipart", &self.multipart.is_some())
            .finish()
    }
}

/// Like [`open_store`], also returning the multipart interface.
pub fn open_backend(url: &StoreUrl, policy: &ResidencyPolicy) -> Result<Backend, StoreError> {
    policy.check(url)?;
    let proxy = policy.proxy_for(url)?;
    build_unchecked(url, proxy.as_deref())
}

fn backend(url: &StoreUrl) -> impl Fn(object_store::Error) -> StoreError + '_ {
    move |source| StoreError::Backend {
        url: url.to_string(),
        source,
    }
}

fn with_prefix<T: ObjectStore + MultipartStore>(store: T, prefix: &str) -> Backend {
    if prefix.is_empty() {
        let store = Arc::new(store);
        Backend {
            store: store.clone(),
            multipart: Some(store),
            s3: None,
            local: None,
        }
    } else {
        let store = Arc::new(PrefixStore::new(store, prefix));
        Backend {
            store: store.clone(),
            multipart: Some(store),
            s3: None,
            local: None,
        }
    }
}

fn plain(store: Arc<dyn ObjectStore>) -> Backend {
    Backend {
        store,
        multipart: None,
        s3: None,
        local: None,
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The credential variable `var` for `url`. A URL that names a credential set (`?creds=NAME`)
/// reads `SHH_CREDS_<NAME>_<var>` and nothing else: two stores of one kind (two S3 services)
/// can then hold different keys, and a missing key is an error instead of a fall-back to the
/// default account. Other URLs read `var` itself.
fn credential(url: &StoreUrl, var: &str, required: bool) -> Result<Option<String>, StoreError> {
    match url.param("creds") {
        Some(name) => {
            let full = format!("SHH_CREDS_{}_{var}", name.to_ascii_uppercase());
            match env(&full) {
                Some(v) => Ok(Some(v)),
                None if required => Err(StoreError::MissingCredential {
                    url: url.to_string(),
                    var: full,
                }),
                None => Ok(None),
            }
        }
        None => Ok(env(var)),
    }
}

/// The client options of a remote store: the configured proxy, or none (never the
/// environment's: [`http::Connector`]).
/// (Their retries are set with `with_retry(retry::request_retry())`, never the defaults.)
fn client_options(proxy: Option<&str>) -> object_store::ClientOptions {
    let o = object_store::ClientOptions::new();
    match proxy {
        Some(p) => o.with_proxy_url(p),
        None => o,
    }
}

fn build_unchecked(url: &StoreUrl, proxy: Option<&str>) -> Result<Backend, StoreError> {
    match url.kind() {
        StoreKind::Memory => Ok(plain(Arc::new(object_store::memory::InMemory::new()))),
        StoreKind::File => {
            let path = url.local_path().unwrap_or_default();
            std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&path)
                .map_err(backend(url))?
                .with_automatic_cleanup(true);
            let local = Arc::new(DurableLocal::new(fs));
            let mut b = plain(local.clone());
            b.local = Some(local);
            Ok(b)
        }
        StoreKind::S3 => {
            let dest = url.destination();
            // Only credentials come from the environment: the endpoint and region are the ones
            // the residency check saw, never an environment override.
            let region = dest.region.clone().unwrap_or_default();
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(url.bucket())
                .with_region(region.clone())
                .with_endpoint(dest.endpoint.clone())
                .with_allow_http(http::is_plain(&dest.endpoint))
                .with_virtual_hosted_style_request(false)
                .with_retry(retry::request_retry())
                .with_client_options(
                    client_options(proxy).with_allow_http(http::is_plain(&dest.endpoint)),
                )
                .with_http_connector(http::Connector::for_endpoint(&dest.endpoint));
            let named = url.param("creds").is_some();
            let signed = match (
                credential(url, "AWS_ACCESS_KEY_ID", named)?,
                credential(url, "AWS_SECRET_ACCESS_KEY", named)?,
            ) {
                (Some(id), Some(secret)) => {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                    if let Some(token) = credential(url, "AWS_SESSION_TOKEN", false)? {
                        b = b.with_token(token);
                    }
                    true
                }
                _ => {
                    b = b.with_skip_signature(url.param("anonymous") == Some("true"));
                    false
                }
            };
            let s3 = b.build().map_err(backend(url))?;
            let raw = if signed {
                let raw = S3Raw::new(
                    s3.credentials().clone(),
                    region,
                    &dest.endpoint,
                    url.bucket(),
                    url.prefix(),
                    proxy,
                )
                .map_err(|e| StoreError::Backend {
                    url: url.to_string(),
                    source: object_store::Error::Generic {
                        store: "S3",
                        source: e.into(),
                    },
                })?;
                Some(raw)
            } else {
                None
            };
            let mut backend = with_prefix(s3, url.prefix());
            backend.s3 = raw;
            Ok(backend)
        }
        StoreKind::Azure => {
            let mut b =
                object_store::azure::MicrosoftAzureBuilder::new().with_container_name(url.bucket());
            // The endpoint the residency check judged (for Azurite, the emulator's address).
            let dest = url.destination();
            if url.is_emulator() {
                b = b.with_use_emulator(true);
            } else {
                b = b
                    .with_endpoint(dest.endpoint.clone())
                    .with_allow_http(http::is_plain(&dest.endpoint));
            }
            b = b
                .with_retry(retry::request_retry())
                .with_client_options(
                    client_options(proxy).with_allow_http(http::is_plain(&dest.endpoint)),
                )
                .with_http_connector(http::Connector::for_endpoint(&dest.endpoint));
            if let Some(account) = url
                .param("account")
                .map(str::to_owned)
                .or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"))
            {
                b = b.with_account(account);
            }
            let named = url.param("creds").is_some();
            if let Some(key) = credential(url, "AZURE_STORAGE_ACCOUNT_KEY", named)? {
                b = b.with_access_key(key);
            }
            let az = b.build().map_err(backend(url))?;
            Ok(with_prefix(az, url.prefix()))
        }
    }
}
