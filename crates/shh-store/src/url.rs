//! Store URLs: parsing, display without secrets, and the network destination they resolve to.

use crate::residency::Destination;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Local disk.
    File,
    /// Process memory (tests).
    Memory,
    /// Any S3-compatible service.
    S3,
    /// Azure Blob Storage (or Azurite).
    #[serde(rename = "az")]
    Azure,
}

impl StoreKind {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            StoreKind::File => "file",
            StoreKind::Memory => "memory",
            StoreKind::S3 => "s3",
            StoreKind::Azure => "az",
        }
    }
}

/// A malformed store URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid store URL {url:?}: {reason}")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    kind: StoreKind,
    bucket: String,
    prefix: String,
    path: Option<PathBuf>,
    params: BTreeMap<String, String>,
}

const KNOWN_PARAMS: &[&str] = &[
    "endpoint",
    "region",
    "account",
    "emulator",
    "anonymous",
    "max_parts",
    "creds",
];

impl StoreUrl {
    /// Parses a store URL.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let err = |reason: &str| UrlError {
            url: s.to_owned(),
            reason: reason.to_owned(),
        };
        // URLs are recorded in plans, reports and the audit log: no control characters (the
        // URL parser would silently drop some), and nothing it would ignore, like a fragment.
        if s.chars().any(char::is_control) {
            return Err(err("control characters are not allowed"));
        }
        let u = url::Url::parse(s).map_err(|e| err(&e.to_string()))?;
        if u.fragment().is_some() {
            return Err(err("a store URL has no #fragment"));
        }
        let mut params = BTreeMap::new();
        for (k, v) in u.query_pairs() {
            if !KNOWN_PARAMS.contains(&k.as_ref()) {
                return Err(err(&format!(
                    "unknown parameter {k:?} (known: {})",
                    KNOWN_PARAMS.join(", ")
                )));
            }
            // A credential set is named in the URL (URLs are recorded in plans, reports and
            // the audit log); its secrets come from the environment.
            if k == "creds"
                && (v.is_empty()
                    || v.len() > 32
                    || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                return Err(err(
                    "creds must name a credential set: 1 to 32 letters, digits or _",
                ));
            }
            if v.chars().any(char::is_control) {
                return Err(err("control characters are not allowed"));
            }
            params.insert(k.into_owned(), v.into_owned());
        }
        let prefix = u.path().trim_matches('/').to_owned();
        let (kind, bucket, path) = match u.scheme() {
            "file" => {
                let p = u
                    .to_file_path()
                    .map_err(|_| err("file URLs need an absolute path: file:///dir"))?;
                match p.to_str() {
                    None => return Err(err("the path is not UTF-8")),
                    Some(t) if t.chars().any(char::is_control) => {
                        return Err(err("control characters are not allowed"));
                    }
                    Some(_) => {}
                }
                (StoreKind::File, String::new(), Some(p))
            }
            "memory" if prefix.is_empty() && u.host_str().is_none_or(str::is_empty) => {
                (StoreKind::Memory, String::new(), None)
            }
            "memory" => return Err(err("memory:// takes no path")),
            "s3" | "az" => {
                let bucket = u
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| err("missing bucket or container name"))?
                    .to_owned();
                let kind = if u.scheme() == "s3" {
                    StoreKind::S3
                } else {
                    StoreKind::Azure
                };
                (kind, bucket, None)
            }
            other => {
                return Err(err(&format!(
                    "unsupported scheme {other:?} (use file, memory, s3 or az)"
                )));
            }
        };
        if let Some(e) = params.get("endpoint") {
            let eu = url::Url::parse(e).map_err(|x| err(&format!("endpoint: {x}")))?;
            if !matches!(eu.scheme(), "http" | "https") || eu.host_str().is_none() {
                return Err(err("endpoint must be an http:// or https:// URL"));
            }
        }
        Ok(Self {
            kind,
            bucket,
            prefix: if kind == StoreKind::File {
                String::new()
            } else {
                prefix
            },
            path,
            params,
        })
    }

    /// Which backend.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }
    /// Bucket (S3) or container (Azure); empty otherwise.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
    /// Key prefix inside the bucket, without slashes at either end.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// Local directory of a `file://` URL.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.path.clone()
    }
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
    /// Whether this Azure URL targets the Azurite emulator.
    pub fn is_emulator(&self) -> bool {
        self.kind == StoreKind::Azure && self.param("emulator") == Some("true")
    }

    /// The network destination the backend will talk to, resolved exactly as the backend is
    /// configured: this is what the residency policy judges.
    pub fn destination(&self) -> Destination {
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        match self.kind {
            StoreKind::File | StoreKind::Memory => Destination {
                kind: self.kind,
                endpoint: "local".into(),
                region: None,
            },
            StoreKind::S3 => {
                let region = self
                    .param("region")
                    .map(str::to_owned)
                    .or_else(|| env("AWS_REGION"))
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into());
                let endpoint = self
                    .param("endpoint")
                    .map(str::to_owned)
                    .or_else(|| env("AWS_ENDPOINT_URL"))
                    .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
                Destination {
                    kind: self.kind,
                    endpoint: normalize_endpoint(&endpoint),
                    region: Some(region),
                }
            }
            StoreKind::Azure => {
                let endpoint = if self.is_emulator() {
                    // object_store reads the emulator address from this variable; judge the same.
                    env("AZURITE_BLOB_STORAGE_URL")
                        .unwrap_or_else(|| "http://127.0.0.1:10000".into())
                } else if let Some(e) = self.param("endpoint") {
                    e.to_owned()
                } else {
                    let account = self
                        .param("account")
                        .map(str::to_owned)
                        .or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"))
                        .unwrap_or_else(|| "unknown-account".into());
                    format!("https://{account}.blob.core.windows.net")
                };
                Destination {
                    kind: self.kind,
                    endpoint: normalize_endpoint(&endpoint),
                    region: None,
                }
            }
        }
    }

    /// The same store with `sub` appended to its prefix (file: a subdirectory).
    pub fn join(&self, sub: &str) -> StoreUrl {
        let sub = sub.trim_matches('/');
        let mut u = self.clone();
        match self.kind {
            StoreKind::File => u.path = self.path.as_ref().map(|p| p.join(sub)),
            StoreKind::Memory => {}
            _ => {
                u.prefix = if self.prefix.is_empty() {
                    sub.to_owned()
                } else {
                    format!("{}/{sub}", self.prefix)
                }
            }
        }
        u
    }
}

/// Scheme, lower-case host and explicit port, without path or trailing slash.
pub(crate) fn normalize_endpoint(e: &str) -> String {
    match url::Url::parse(e) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
            let port = u
                .port_or_known_default()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            format!("{}://{host}{port}", u.scheme())
        }
        Err(_) => e.trim_end_matches('/').to_ascii_lowercase(),
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            // Encoded as a URL, so that a path with `#`, `?` or `%` reads back the same.
            StoreKind::File => match self.path.as_deref().map(url::Url::from_file_path) {
                Some(Ok(u)) => f.write_str(u.as_str())?,
                _ => f.write_str("file://")?,
            },
            StoreKind::Memory => f.write_str("memory://")?,
            k => {
                write!(f, "{}://{}", k.scheme(), self.bucket)?;
                if !self.prefix.is_empty() {
                    write!(f, "/{}", self.prefix)?;
                }
            }
        }
        let mut sep = '?';
        for (k, v) in &self.params {
            // Parameters were decoded when parsed: what would change their meaning when the
            // URL is read again is encoded back.
            let v = v
                .replace('%', "%25")
                .replace('&', "%26")
                .replace('#', "%23")
                .replace('+', "%2B")
                .replace(' ', "%20");
            write!(f, "{sep}{k}={v}")?;
            sep = '&';
        }
        Ok(())
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        let s = StoreUrl::parse("s3://hub/data/v1?endpoint=http://127.0.0.1:9000&region=fr-par")
            .expect("s3");
        assert_eq!(
            (s.kind(), s.bucket(), s.prefix()),
            (StoreKind::S3, "hub", "data/v1")
        );
        let d = s.destination();
        assert_eq!(d.endpoint, "http://127.0.0.1:9000");
        assert_eq!(d.region.as_deref(), Some("fr-par"));
        let a = StoreUrl::parse("az://container?emulator=true").expect("az");
        assert!(a.is_emulator());
        let f = StoreUrl::parse("file:///tmp/x").expect("file");
        assert_eq!(f.local_path(), Some(PathBuf::from("/tmp/x")));
        assert_eq!(
            StoreUrl::parse("memory://").expect("mem").kind(),
            StoreKind::Memory
        );
    }

    #[test]
    fn rejects_bad_urls_with_reason() {
        for bad in [
            "ftp://x",
            "s3:///nobucket",
            "s3://b?endpont=x",
            "s3://b?endpoint=ftp://x",
            "file://relative",
            "s3://b?creds=",
            "file:///tmp/a\u{0}b",
            "s3://b/p#frag",
            "file:///tmp/%E2%28",
            "file:///tmp/a%1Eb",
            "memory:8h",
            "memory://x/y",
            "s3://b?region=a%01b",
            "s3://b?creds=a-b",
            "s3://b?creds=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let e = StoreUrl::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for u in [
            "s3://b/p?endpoint=http://127.0.0.1:9000",
            "s3://b/p?endpoint=http://127.0.0.1:9000&creds=ovh_prod&max_parts=1000",
            "s3://b/p?endpoint=http://h/a%26b%23c%2Bd%25e",
            "file:///?emulator=+",
            "az://c/x/y?emulator=true",
            "file:///tmp/a",
            "file:///tmp/a%23b%3Fc%25d%20e",
            "memory://",
        ] {
            let p = StoreUrl::parse(u).expect(u);
            assert_eq!(StoreUrl::parse(&p.to_string()).expect("reparse"), p);
        }
    }
}
