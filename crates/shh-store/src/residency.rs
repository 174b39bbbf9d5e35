//! The residency allowlist: which destinations (backend, endpoint, region) may receive data.
//!
//! Health data must stay where the law and the hub's certification allow (HDS, SecNumCloud).
//! The check runs on the destination a URL *resolves to* (after defaults and environment
//! variables), so an unset region or an environment override cannot slip past it.
//!
//! Proxies are part of the decision too: a request sent through a proxy reaches that proxy
//! first. So the environment's `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are never used
//! (every HTTP client shh builds ignores them), and the only proxy a request ever goes
//! through is the one `[residency] proxy` names, which the operator allows by naming it,
//! which must be an `http(s)://host:port` address, and which plans and audit events name.

use crate::url::{StoreKind, StoreUrl, normalize_endpoint};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a store's requests actually go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// Backend.
    pub kind: StoreKind,
    /// Normalized endpoint (`scheme://host:port`), or `local`.
    pub endpoint: String,
    /// Region, where the backend has one.
    pub region: Option<String>,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.scheme(), self.endpoint)?;
        if let Some(r) = &self.region {
            write!(f, " region {r}")?;
        }
        Ok(())
    }
}

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidencyRule {
    /// Backend.
    pub kind: StoreKind,
    /// Endpoint (`scheme://host[:port]`); required for s3 and az.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allowed regions; empty means any region of that endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

impl ResidencyRule {
    /// A rule allowing the destination of `url` (every region if the URL names none).
    pub fn for_url(url: &StoreUrl) -> Self {
        let d = url.destination();
        match d.kind {
            StoreKind::File | StoreKind::Memory => Self {
                kind: d.kind,
                endpoint: None,
                regions: vec![],
            },
            _ => Self {
                kind: d.kind,
                endpoint: Some(d.endpoint),
                regions: url
                    .param("region")
                    .map(|r| vec![r.to_owned()])
                    .unwrap_or_default(),
            },
        }
    }

    fn allows(&self, d: &Destination) -> bool {
        if self.kind != d.kind {
            return false;
        }
        if matches!(d.kind, StoreKind::File | StoreKind::Memory) {
            return true;
        }
        let Some(e) = &self.endpoint else {
            return false;
        };
        if normalize_endpoint(e) != d.endpoint {
            return false;
        }
        self.regions.is_empty() || d.region.as_ref().is_some_and(|r| self.regions.contains(r))
    }
}

impl fmt::Display for ResidencyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.scheme())?;
        if let Some(e) = &self.endpoint {
            write!(f, " {}", normalize_endpoint(e))?;
        }
        if !self.regions.is_empty() {
            write!(f, " regions {}", self.regions.join(","))?;
        }
        Ok(())
    }
}

/// A store URL refused by the residency policy. Nothing was sent.
#[derive(Debug, thiserror::Error)]
#[error(
    "residency policy refuses {url} (destination: {destination}); allowed: [{allowed}]. \
     Nothing was sent. An operator may add the destination to [residency] in shh.toml"
)]
pub struct ResidencyError {
    /// The URL.
    pub url: String,
    /// Where it resolves to.
    pub destination: Destination,
    /// The allowlist, for the message.
    pub allowed: String,
}

/// The allowlist of destinations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResidencyPolicy {
    /// Allowed destinations.
    #[serde(default)]
    pub allow: Vec<ResidencyRule>,
    /// The one proxy requests to remote stores go through (`http://host:port`); none by
    /// default, and never one from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

/// A `[residency] proxy` that is not a proxy address.
#[derive(Debug, thiserror::Error)]
#[error("[residency] proxy {proxy:?}: {reason}")]
pub struct ProxyError {
    /// What was given.
    pub proxy: String,
    /// What is wrong.
    pub reason: String,
}

/// Checks a proxy address: `http://` or `https://`, a host, no path, user or query.
pub fn check_proxy(proxy: &str) -> Result<String, ProxyError> {
    let bad = |reason: &str| ProxyError {
        proxy: proxy.to_owned(),
        reason: reason.to_owned(),
    };
    let u = url::Url::parse(proxy).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("a proxy is reached over http:// or https://"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("credentials do not belong in the configuration"));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(bad("a proxy address has no path, query or fragment"));
    }
    Ok(normalize_endpoint(proxy))
}

impl ResidencyPolicy {
    /// Local disk and memory only: the embedded default.
    pub fn local_only() -> Self {
        Self {
            allow: vec![
                ResidencyRule {
                    kind: StoreKind::File,
                    endpoint: None,
                    regions: vec![],
                },
                ResidencyRule {
                    kind: StoreKind::Memory,
                    endpoint: None,
                    regions: vec![],
                },
            ],
            proxy: None,
        }
    }

    /// The proxy a request to `url` goes through, checked: none for local stores.
    pub fn proxy_for(&self, url: &StoreUrl) -> Result<Option<String>, ProxyError> {
        match (&self.proxy, url.kind()) {
            (_, StoreKind::File | StoreKind::Memory) | (None, _) => Ok(None),
            (Some(p), _) => check_proxy(p).map(Some),
        }
    }

    /// Accepts `url` if a rule allows its destination.
    pub fn check(&self, url: &StoreUrl) -> Result<(), ResidencyError> {
        let d = url.destination();
        if self.allow.iter().any(|r| r.allows(&d)) {
            return Ok(());
        }
        Err(ResidencyError {
            url: url.to_string(),
            destination: d,
            allowed: self
                .allow
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> StoreUrl {
        StoreUrl::parse(s).expect(s)
    }

    #[test]
    fn allows_listed_endpoint_and_region_only() {
        let mut p = ResidencyPolicy::local_only();
        p.allow.push(ResidencyRule {
            kind: StoreKind::S3,
            endpoint: Some("http://127.0.0.1:9000/".into()),
            regions: vec!["fr-par".into()],
        });
        assert!(p.check(&url("file:///tmp/x")).is_ok());
        assert!(
            p.check(&url(
                "s3://b/p?endpoint=http://127.0.0.1:9000&region=fr-par"
            ))
            .is_ok()
        );
        let e = p
            .check(&url(
                "s3://b/p?endpoint=http://127.0.0.1:9000&region=eu-west-1",
            ))
            .expect_err("wrong region");
        assert!(e.to_string().contains("eu-west-1"), "{e}");
        assert!(
            p.check(&url("s3://b/p?region=fr-par")).is_err(),
            "AWS itself is not listed"
        );
        assert!(
            p.check(&url("s3://b?endpoint=http://127.0.0.2:9000&region=fr-par"))
                .is_err()
        );
        assert!(p.check(&url("az://c?emulator=true")).is_err());
    }

    #[test]
    fn proxies_are_addresses_or_refused() {
        assert_eq!(
            check_proxy("http://127.0.0.1:3128").expect("ok"),
            "http://127.0.0.1:3128"
        );
        for bad in [
            "socks5://127.0.0.1:1080",
            "http://user:pw@127.0.0.1:3128",
            "http://127.0.0.1:3128/x",
            "127.0.0.1:3128",
            "http://",
        ] {
            assert!(check_proxy(bad).is_err(), "{bad}");
        }
        let mut p = ResidencyPolicy::local_only();
        p.proxy = Some("http://127.0.0.1:3128".into());
        assert_eq!(p.proxy_for(&url("file:///tmp/x")).expect("local"), None);
        assert!(
            p.proxy_for(&url("s3://b?endpoint=http://127.0.0.1:9000"))
                .expect("remote")
                .is_some()
        );
    }

    #[test]
    fn empty_policy_refuses_everything() {
        let e = ResidencyPolicy::default()
            .check(&url("file:///tmp/x"))
            .expect_err("refused");
        assert!(e.to_string().contains("Nothing was sent"));
    }
}
