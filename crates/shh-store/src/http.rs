//! The HTTP clients of the cloud backends: which trust roots a client loads.
//!
//! `object_store` builds every client with the system's trust roots, and reading and parsing
//! them is most of the cost of building one (about 20 ms each on the test VM, twice per
//! `migrate` command: once per side). An endpoint reached over plain HTTP (a service on the
//! loopback or inside the operator's own network) verifies no certificate, so [`PlainHttp`]
//! builds its client without any roots. HTTPS endpoints keep `object_store`'s own client,
//! unchanged.

use object_store::client::ReqwestConnector;
use object_store::client::{ClientConfigKey, ClientOptions, HttpClient, HttpConnector};
use rand::seq::SliceRandom;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds clients for plain-HTTP endpoints without loading trust roots; any option it does not
/// carry over (a proxy, HTTP/2 tuning) sends it back to `object_store`'s own client. Default
/// headers are the one option `ClientOptions` does not let it read: shh sets none, and must
/// not start to on a store this connector serves.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PlainHttp;

/// Options `PlainHttp` leaves to `object_store`'s client when they are set.
const DELEGATED: [ClientConfigKey; 5] = [
    ClientConfigKey::ProxyUrl,
    ClientConfigKey::ProxyCaCertificate,
    ClientConfigKey::Http2KeepAliveInterval,
    ClientConfigKey::Http2KeepAliveTimeout,
    ClientConfigKey::Http2MaxFrameSize,
];

impl HttpConnector for PlainHttp {
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
            .tls_built_in_root_certs(false)
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

    #[test]
    fn plain_clients_carry_the_options_over_and_proxies_go_to_object_store() {
        let options = ClientOptions::new()
            .with_timeout(Duration::from_secs(7))
            .with_allow_http(true);
        assert!(PlainHttp.connect(&options).is_ok());
        let bad = ClientOptions::new().with_config(ClientConfigKey::Timeout, "soon");
        let err = PlainHttp.connect(&bad).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("soon") || e.contains("duration")),
            "{err:?}"
        );
        let proxied = ClientOptions::new().with_proxy_url("http://127.0.0.1:9");
        assert!(PlainHttp.connect(&proxied).is_ok());
        assert!(is_plain("http://127.0.0.1:9000"));
        assert!(!is_plain("https://s3.example"));
    }

    #[tokio::test]
    async fn names_resolve_to_every_address() -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    {
        let name: Name = "localhost".parse()?;
        let addrs: Vec<SocketAddr> = Shuffled.resolve(name).await?.collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        Ok(())
    }
}
