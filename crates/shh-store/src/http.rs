//! The HTTP clients of the cloud backends: which proxy a request goes through, and which
//! trust roots a client loads.
//!
//! - **Proxies.** `reqwest`, under `object_store`, sends requests through whatever proxy
//!   `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` names: an address no residency rule allowed.
//!   [`Connector`] builds clients that ignore them. The only proxy ever used is the one the
//!   residency policy names (`[residency] proxy`), set explicitly in the client options, which
//!   hands the client back to `object_store`'s own builder (an explicit proxy turns the
//!   environment's off there too).
//! - **Trust roots.** `object_store` builds every client with the system's trust roots, and
//!   reading and parsing them is most of the cost of building one (about 20 ms each on the
//!   test VM, twice per `migrate` command: once per side). An endpoint reached over plain HTTP
//!   (a service on the loopback or inside the operator's own network) verifies no
//!   certificate, so its client loads none.

use object_store::client::ReqwestConnector;
use object_store::client::{ClientConfigKey, ClientOptions, HttpClient, HttpConnector};
use rand::seq::SliceRandom;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds clients that ignore the environment's proxies, with trust roots only for HTTPS
/// endpoints; any option it does not carry over (a configured proxy, HTTP/2 tuning) sends it
/// back to `object_store`'s own client. Default headers are the one option `ClientOptions`
/// does not let it read: shh sets none, and must not start to on a store this connector
/// serves.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Connector {
    /// Load the built-in trust roots (an HTTPS endpoint).
    roots: bool,
}

impl Connector {
    /// The connector for `endpoint`.
    pub(crate) fn for_endpoint(endpoint: &str) -> Self {
        Self {
            roots: !is_plain(endpoint),
        }
    }
}

/// Options `PlainHttp` leaves to `object_store`'s client when they are set.
const DELEGATED: [ClientConfigKey; 5] = [
    ClientConfigKey::ProxyUrl,
    ClientConfigKey::ProxyCaCertificate,
    ClientConfigKey::Http2KeepAliveInterval,
    ClientConfigKey::Http2KeepAliveTimeout,
    ClientConfigKey::Http2MaxFrameSize,
];

impl HttpConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let value = |key: ClientConfigKey| options.get_config_value(&key);
        let yes = |key: ClientConfigKey| value(key).is_some_and(|v| v == "true");
        if DELEGATED.into_iter().any(|k| value(k).is_some()) || yes(ClientConfigKey::Http2Only) {
            return ReqwestConnector::default().connect(options);
        }
        let duration = |key: ClientConfigKey| -> object_store::Result<Option<Duration>> {
            value(key)
                .map(|v| {
                    humantime::parse_duration(&v)
                        .map_err(|e| generic(format!("client option {key:?} = {v:?}: {e}").into()))
                })
                .transpose()
        };
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(self.roots)
            // As object_store's client: a compressed body would not match its Content-Length.
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .no_deflate();
        if let Some(agent) = value(ClientConfigKey::UserAgent) {
            b = b.user_agent(agent);
        }
        if let Some(t) = duration(ClientConfigKey::Timeout)? {
            b = b.timeout(t);
        }
        if let Some(t) = duration(ClientConfigKey::ConnectTimeout)? {
            b = b.connect_timeout(t);
        }
        if let Some(t) = duration(ClientConfigKey::PoolIdleTimeout)? {
            b = b.pool_idle_timeout(t);
        }
        if let Some(n) = value(ClientConfigKey::PoolMaxIdlePerHost) {
            b = b.pool_max_idle_per_host(n.parse().map_err(|e| generic(Box::new(e)))?);
        }
        if yes(ClientConfigKey::Http1Only) {
            b = b.http1_only();
        }
        if yes(ClientConfigKey::RandomizeAddresses) {
            b = b.dns_resolver(Arc::new(Shuffled));
        }
        Ok(HttpClient::new(b.build().map_err(|e| generic(e.into()))?))
    }
}

/// Resolves a host name to all its addresses in random order, so that many clients spread over
/// a service's nodes (as `object_store`'s own client does by default).
#[derive(Debug)]
struct Shuffled;

impl Resolve for Shuffled {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let mut addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            addrs.shuffle(&mut rand::rng());
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn generic(source: Box<dyn std::error::Error + Send + Sync>) -> object_store::Error {
    object_store::Error::Generic {
        store: "HTTP",
        source,
    }
}

/// Whether `endpoint` is reached without TLS.
pub(crate) fn is_plain(endpoint: &str) -> bool {
    endpoint.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

    fn get(url: &str) -> Result<object_store::client::HttpRequest, http::Error> {
        http::Request::get(url).body(object_store::client::HttpRequestBody::empty())
    }

    /// A listener on the loopback that accepts a connection and never answers; what that
    /// connection sent first comes out of the receiver.
    async fn silent() -> std::io::Result<(u16, tokio::sync::oneshot::Receiver<String>)> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let port = l.local_addr()?.port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut conn, _)) = l.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            // Held open, unanswered, until the client gives up.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        Ok((port, rx))
    }

    /// The request timeout is carried over: without it the client would wait on a silent
    /// server for ever.
    #[tokio::test]
    async fn the_timeout_is_carried_over() -> TestResult {
        let (port, _first) = silent().await?;
        let options = ClientOptions::new()
            .with_allow_http(true)
            .with_timeout(Duration::from_millis(300));
        let client = Connector::default().connect(&options)?;
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            client.execute(get(&format!("http://127.0.0.1:{port}/x"))?),
        )
        .await;
        assert!(matches!(r, Ok(Err(_))), "the request must time out: {r:?}");
        Ok(())
    }

    /// A proxy set for a plain-HTTP store is used (the client goes back to object_store's).
    #[tokio::test]
    async fn a_proxy_is_used() -> TestResult {
        let (port, seen) = silent().await?;
        let options = ClientOptions::new()
            .with_allow_http(true)
            .with_timeout(Duration::from_millis(300))
            .with_proxy_url(format!("http://127.0.0.1:{port}"));
        let client = Connector::default().connect(&options)?;
        // Refused by the loopback if the proxy were ignored.
        let _ = client
            .execute(get("http://127.0.0.2:9/through-the-proxy")?)
            .await;
        let first = tokio::time::timeout(Duration::from_secs(5), seen).await??;
        assert!(first.contains("127.0.0.2:9/through-the-proxy"), "{first}");
        Ok(())
    }

    #[test]
    fn bad_options_are_named() {
        let bad = ClientOptions::new().with_config(ClientConfigKey::Timeout, "soon");
        let err = Connector::default()
            .connect(&bad)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("Timeout") && e.contains("soon")),
            "{err:?}"
        );
        assert!(is_plain("http://127.0.0.1:9000"));
        assert!(!is_plain("https://s3.example"));
    }

    #[tokio::test]
    async fn names_resolve_to_every_address() -> TestResult {
        let name: Name = "localhost".parse()?;
        let addrs: Vec<SocketAddr> = Shuffled.resolve(name).await?.collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        Ok(())
    }
}
