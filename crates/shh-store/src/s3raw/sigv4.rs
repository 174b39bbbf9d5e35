//! AWS Signature Version 4 for S3: canonical requests, the signing key of a day and region,
//! the seed signature of a request and the chained signature of each chunk that follows it.

use super::*;

/// SHA-256 of nothing: what a chunk's string to sign carries in place of headers.
pub(super) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// AWS's `UriEncode` for paths: everything but unreserved characters and `/` as `%XX`.
pub(super) fn uri_encode_path(s: &str) -> String {
    uri_encode(s, true)
}

/// AWS's `UriEncode`: everything but unreserved characters (and `/` in paths) as `%XX`.
pub(super) fn uri_encode(s: &str, path: bool) -> String {
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

pub(super) fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// Signs requests and chunks for one credential, instant and region.
pub(super) struct Signer {
    pub(super) key: hmac::Key,
    /// `YYYYMMDDTHHMMSSZ`.
    pub(super) amz_date: String,
    /// `YYYYMMDD/region/s3/aws4_request`.
    pub(super) scope: String,
}

impl Signer {
    pub(super) fn new(secret: &str, date: &str, time: &str, region: &str) -> Self {
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

    pub(super) fn now(secret: &str, region: &str) -> Self {
        let now = chrono::Utc::now();
        let date = now.format("%Y%m%d").to_string();
        let time = now.format("%H%M%S").to_string();
        Self::new(secret, &date, &time, region)
    }

    pub(super) fn sign(&self, text: &str) -> String {
        hex::encode(hmac::sign(&self.key, text.as_bytes()))
    }

    /// The signature of a request: `path` and `query` encoded (the query's parameters sorted),
    /// `headers` sorted by lower-case name.
    pub(super) fn request(
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
    pub(super) fn chunk(&self, previous: &str, chunk_sha256: &[u8]) -> String {
        self.sign(&format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(chunk_sha256)
        ))
    }
}

pub(super) fn signed_headers(headers: &[(&str, String)]) -> String {
    headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";")
}
