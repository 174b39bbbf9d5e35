//! The residency allowlist: which destinations (backend, endpoint, region) may receive data.
//!
//! Health data must stay where the law and the hub's certification allow (HDS, SecNumCloud).
//! The check runs on the destination a URL *resolves to* (after defaults and environment
//! variables), so an unset region or an environment override cannot slip past it.

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
    fn empty_policy_refuses_everything() {
        let e = ResidencyPolicy::default()
            .check(&url("file:///tmp/x"))
            .expect_err("refused");
        assert!(e.to_string().contains("Nothing was sent"));
    }
}
