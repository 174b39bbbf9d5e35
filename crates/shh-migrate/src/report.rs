//! The acceptance report: what a regulator keeps after a migration.
//!
//! A report (a directory, or whatever result the caller's sink holds) has:
//! - `objects.jsonl`: one JSON line per checked object (path, what it belongs to, the expected
//!   and the found size and BLAKE3, ok or the error);
//! - `report.json`: the summary, the RFC 6962 Merkle root over the lines of `objects.jsonl`
//!   (each line's bytes, without its newline, is a leaf), and an Ed25519 signature by the hub's
//!   audit key over the canonical JSON of everything else in `report.json`;
//! - `report.md` and `report.html` for people.
//!
//! [`check_report`] re-derives the root and checks the signature with only the public key
//! (`shh audit pubkey`): an auditor needs neither the hub nor its keys.

use crate::probe::Capabilities;
use crate::{MigrateError, Result, io_err};
use serde::{Deserialize, Serialize};
use shh_audit::canonical::to_canonical_vec;
use shh_audit::merkle::{Frontier, leaf_hash};
use shh_audit::{PublicKey, Signer};
use shh_sink::{SinkFile, Staged};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Report format marker (also the signature's domain).
pub const REPORT_FORMAT: &str = "shh.migrate.acceptance/1";
/// The objects file's name in a report directory.
pub const OBJECTS_FILE: &str = "objects.jsonl";
/// Failures listed in the human reports (all are in `objects.jsonl`).
const SHOWN_FAILURES: usize = 200;

/// One checked object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectCheck {
    /// Object name in the store.
    pub path: String,
    /// `data`, `manifest` or `audit`.
    pub kind: String,
    /// Dataset, for dataset objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Version id, for dataset objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Size the hub recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_size: Option<u64>,
    /// Size found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// BLAKE3 the hub recorded (of the stored ciphertext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_blake3: Option<String>,
    /// BLAKE3 found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Deep check: the plaintext's size and BLAKE3 match too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_ok: Option<bool>,
    /// Everything matched.
    pub ok: bool,
    /// What did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// Objects checked.
    pub objects: u64,
    /// Of which ok.
    pub ok: u64,
    /// Of which failed.
    pub failed: u64,
    /// Bytes read at the destination.
    pub bytes: u64,
    /// Datasets covered.
    pub datasets: u64,
    /// Versions covered.
    pub versions: u64,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptanceReport {
    /// [`REPORT_FORMAT`].
    pub format: String,
    /// Hub id.
    pub hub: String,
    /// The store checked.
    pub target: String,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Whether plaintext was decrypted and checked too.
    pub deep: bool,
    /// Counts.
    pub summary: ReportSummary,
    /// The first failure (`path: error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    /// The target's capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// The objects file.
    pub objects_file: String,
    /// RFC 6962 root over the objects file's lines, hex.
    pub merkle_root: String,
    /// Fingerprint of the signing key.
    pub key: String,
    /// Ed25519 signature (base64) of the canonical JSON of this report without this field.
    #[serde(default)]
    pub signature: String,
}

impl AcceptanceReport {
    /// What is signed: the canonical JSON of the report without its signature, taken from a
    /// parsed JSON value on both sides, so a float reads back to the same bytes.
    fn signed_bytes(&self) -> Result<Vec<u8>> {
        let text = serde_json::to_vec(self).map_err(|e| MigrateError::Refused(e.to_string()))?;
        signed_bytes_of(&text)
    }
}

fn signed_bytes_of(text: &[u8]) -> Result<Vec<u8>> {
    let mut v: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| MigrateError::Refused(e.to_string()))?;
    if let Some(m) = v.as_object_mut() {
        m.remove("signature");
    }
    Ok(to_canonical_vec(&v))
}

/// Writes a report, object by object (constant memory), as a result staged in the caller's
/// sink: it appears, signed and complete, when [`ReportWriter::finish`] commits it.
#[derive(Debug)]
pub struct ReportWriter {
    staged: Box<dyn Staged>,
    out: Box<dyn SinkFile>,
    buf: Vec<u8>,
    tree: Frontier,
    summary: ReportSummary,
    first_failure: Option<String>,
    failures: Vec<ObjectCheck>,
}

/// Lines are handed to the sink in pieces of this size.
const FLUSH_AT: usize = 1 << 20;

impl ReportWriter {
    /// Starts `objects.jsonl` in `staged`.
    pub async fn create(staged: Box<dyn Staged>) -> Result<Self> {
        let out = staged.create(OBJECTS_FILE).await?;
        Ok(Self {
            staged,
            out,
            buf: Vec::with_capacity(FLUSH_AT),
            tree: Frontier::new(),
            summary: ReportSummary::default(),
            first_failure: None,
            failures: Vec::new(),
        })
    }

    /// Appends one object's line.
    pub async fn push(&mut self, check: &ObjectCheck) -> Result<()> {
        let line = serde_json::to_vec(check).map_err(|e| MigrateError::Format {
            path: PathBuf::from(OBJECTS_FILE),
            reason: e.to_string(),
        })?;
        self.tree.push(leaf_hash(&line));
        self.buf.extend_from_slice(&line);
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            self.out.write(&self.buf).await?;
            self.buf.clear();
        }
        self.summary.objects += 1;
        self.summary.bytes += check.size.unwrap_or(0);
        if check.ok {
            self.summary.ok += 1;
        } else {
            self.summary.failed += 1;
            if self.first_failure.is_none() {
                self.first_failure = Some(format!(
                    "{}: {}",
                    check.path,
                    check.error.as_deref().unwrap_or("mismatch")
                ));
            }
            if self.failures.len() < SHOWN_FAILURES {
                self.failures.push(check.clone());
            }
        }
        Ok(())
    }

    /// Failures so far.
    pub fn failed(&self) -> u64 {
        self.summary.failed
    }

    /// Signs `report.json`, writes it with `report.md` and `report.html`, and commits the
    /// report. Returns it and where it is.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        mut self,
        hub: &str,
        target: &str,
        deep: bool,
        datasets: u64,
        versions: u64,
        capabilities: Option<Capabilities>,
        signer: &Signer,
    ) -> Result<(AcceptanceReport, String)> {
        self.out.write(&self.buf).await?;
        self.out.finish().await?;
        self.summary.datasets = datasets;
        self.summary.versions = versions;
        let mut report = AcceptanceReport {
            format: REPORT_FORMAT.into(),
            hub: hub.into(),
            target: target.into(),
            created_at: chrono::Utc::now(),
            deep,
            summary: self.summary.clone(),
            first_failure: self.first_failure.clone(),
            capabilities,
            objects_file: OBJECTS_FILE.into(),
            merkle_root: hex::encode(self.tree.root()),
            key: signer.public().fingerprint(),
            signature: String::new(),
        };
        report.signature = signer.sign_document(REPORT_FORMAT.as_bytes(), &report.signed_bytes()?);
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| MigrateError::Refused(e.to_string()))?;
        self.staged.put("report.json", json.into()).await?;
        self.staged
            .put("report.md", markdown(&report, &self.failures).into())
            .await?;
        self.staged
            .put("report.html", html(&report, &self.failures).into())
            .await?;
        let location = self.staged.commit().await?;
        Ok((report, location))
    }
}

/// What [`check_report`] found.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ReportCheck {
    /// The report.
    pub report: AcceptanceReport,
    /// Lines in the objects file.
    pub lines: u64,
}

/// Checks a report directory with only public keys: the signature, the Merkle root over the
/// objects file, and the counts.
pub fn check_report(dir: &Path, keys: &[PublicKey]) -> Result<ReportCheck> {
    let rp = dir.join("report.json");
    let bad = |path: &Path, reason: String| MigrateError::Format {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read(&rp).map_err(io_err(&rp))?;
    let report: AcceptanceReport =
        serde_json::from_slice(&text).map_err(|e| bad(&rp, format!("not a report: {e}")))?;
    if report.format != REPORT_FORMAT {
        return Err(bad(&rp, format!("unknown format {:?}", report.format)));
    }
    let key = keys
        .iter()
        .find(|k| k.fingerprint() == report.key)
        .ok_or_else(|| {
            bad(
                &rp,
                format!("signed by key {}, which is not trusted", report.key),
            )
        })?;
    if !key.verify_document(
        REPORT_FORMAT.as_bytes(),
        &signed_bytes_of(&text)?,
        &report.signature,
    ) {
        return Err(bad(&rp, "bad signature (the report was altered)".into()));
    }
    let op = dir.join(&report.objects_file);
    let f = File::open(&op).map_err(io_err(&op))?;
    let mut tree = Frontier::new();
    let (mut lines, mut ok, mut failed) = (0u64, 0u64, 0u64);
    for line in BufReader::new(f).split(b'\n') {
        let line = line.map_err(io_err(&op))?;
        tree.push(leaf_hash(&line));
        lines += 1;
        let c: ObjectCheck =
            serde_json::from_slice(&line).map_err(|e| bad(&op, format!("line {lines}: {e}")))?;
        if c.ok {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    if hex::encode(tree.root()) != report.merkle_root {
        return Err(bad(
            &op,
            "the objects do not match the signed Merkle root (altered, added or removed lines)"
                .into(),
        ));
    }
    if ok != report.summary.ok || failed != report.summary.failed {
        return Err(bad(
            &op,
            "the counts do not match the signed summary".into(),
        ));
    }
    Ok(ReportCheck { report, lines })
}

fn verdict(r: &AcceptanceReport) -> &'static str {
    if r.summary.failed == 0 {
        "ACCEPTED: every object matches the hub's records"
    } else {
        "REJECTED: some objects do not match the hub's records"
    }
}

fn markdown(r: &AcceptanceReport, failures: &[ObjectCheck]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "# Migration acceptance report\n");
    let _ = writeln!(s, "**{}**\n", verdict(r));
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Hub | `{}` |", r.hub);
    let _ = writeln!(s, "| Store checked | `{}` |", r.target);
    let _ = writeln!(s, "| Checked at | {} |", r.created_at.to_rfc3339());
    let _ = writeln!(
        s,
        "| Depth | {} |",
        if r.deep {
            "deep: ciphertext and decrypted plaintext hashes"
        } else {
            "ciphertext hashes (BLAKE3) against the manifests"
        }
    );
    let _ = writeln!(
        s,
        "| Datasets / versions | {} / {} |",
        r.summary.datasets, r.summary.versions
    );
    let _ = writeln!(
        s,
        "| Objects (ok / failed) | {} ({} / {}) |",
        r.summary.objects, r.summary.ok, r.summary.failed
    );
    let _ = writeln!(s, "| Bytes read | {} |", r.summary.bytes);
    let _ = writeln!(
        s,
        "| Merkle root of `{}` | `{}` |",
        r.objects_file, r.merkle_root
    );
    let _ = writeln!(s, "| Signed by audit key | `{}` |", r.key);
    if let Some(c) = &r.capabilities {
        let _ = writeln!(
            s,
            "| Target | {} ; conditional create: {} ; max parts: {} |",
            c.kind,
            c.conditional_create
                .map(|b| if b { "yes" } else { "no" })
                .unwrap_or("not probed"),
            c.max_parts
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(s, "\n## Failures\n\n| Object | Error |\n|---|---|");
        for f in failures {
            let _ = writeln!(
                s,
                "| `{}` | {} |",
                f.path,
                f.error.as_deref().unwrap_or("mismatch").replace('|', "\\|")
            );
        }
        if (failures.len() as u64) < r.summary.failed {
            let _ = writeln!(
                s,
                "\n(first {} shown; all are in `{}`)",
                failures.len(),
                r.objects_file
            );
        }
    }
    let _ = writeln!(
        s,
        "\nCheck this report without the hub: `shh migrate check-report DIR --pubkey audit.pub`."
    );
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(r: &AcceptanceReport, failures: &[ObjectCheck]) -> String {
    let mut rows = String::new();
    for (k, v) in [
        ("Hub", r.hub.clone()),
        ("Store checked", r.target.clone()),
        ("Checked at", r.created_at.to_rfc3339()),
        ("Deep", r.deep.to_string()),
        (
            "Datasets / versions",
            format!("{} / {}", r.summary.datasets, r.summary.versions),
        ),
        (
            "Objects (ok / failed)",
            format!(
                "{} ({} / {})",
                r.summary.objects, r.summary.ok, r.summary.failed
            ),
        ),
        ("Bytes read", r.summary.bytes.to_string()),
        ("Merkle root", r.merkle_root.clone()),
        ("Signing key", r.key.clone()),
    ] {
        rows.push_str(&format!(
            "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
            esc(k),
            esc(&v)
        ));
    }
    let mut fails = String::new();
    for f in failures {
        fails.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td></tr>\n",
            esc(&f.path),
            esc(f.error.as_deref().unwrap_or("mismatch"))
        ));
    }
    let fails = if fails.is_empty() {
        String::new()
    } else {
        format!("<h2>Failures</h2><table><tr><th>Object</th><th>Error</th></tr>{fails}</table>")
    };
    let color = if r.summary.failed == 0 {
        "#1a7f37"
    } else {
        "#cf222e"
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Migration acceptance report</title>\
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}th{{text-align:left;padding-right:1em}}\
td,th{{border-bottom:1px solid #ddd;padding:.3em}}table{{border-collapse:collapse}}</style></head><body>\
<h1>Migration acceptance report</h1><p style=\"color:{color};font-weight:bold\">{}</p>\
<table>{rows}</table>{fails}<p>Check it without the hub: <code>shh migrate check-report DIR --pubkey audit.pub</code></p>\
</body></html>\n",
        esc(verdict(r))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, ok: bool) -> ObjectCheck {
        ObjectCheck {
            path: path.into(),
            kind: "data".into(),
            dataset: Some("d".into()),
            version: Some("v".into()),
            expected_size: Some(3),
            size: Some(3),
            expected_blake3: Some("aa".into()),
            blake3: Some(if ok { "aa" } else { "bb" }.into()),
            plaintext_ok: None,
            ok,
            error: (!ok).then(|| "ciphertext BLAKE3 differs".into()),
        }
    }

    #[tokio::test]
    async fn a_report_checks_with_the_public_key_and_any_edit_is_caught() {
        use shh_sink::Sink as _;
        let tmp = tempfile::tempdir().expect("tmp");
        let signer = Signer::from_seed(&[3; 32]).expect("key");
        let sink = shh_sink::DirSink::new(tmp.path());
        let mut w = ReportWriter::create(sink.stage("report").await.expect("stage"))
            .await
            .expect("create");
        for i in 0..5 {
            w.push(&check(&format!("o{i}"), i != 3))
                .await
                .expect("push");
        }
        let (r, location) = w
            .finish("hub", "s3://b", false, 1, 1, None, &signer)
            .await
            .expect("finish");
        let dir = tmp.path().join("report");
        assert_eq!(location, dir.display().to_string());
        assert_eq!(r.summary.failed, 1);
        assert!(r.first_failure.as_deref().unwrap_or("").starts_with("o3:"));
        let keys = [signer.public()];
        check_report(dir.as_path(), &keys).expect("valid report");
        assert!(
            std::fs::read_to_string(dir.as_path().join("report.md"))
                .expect("md")
                .contains("REJECTED")
        );

        // Flip a failure into a success: the Merkle root no longer matches.
        let op = dir.as_path().join(OBJECTS_FILE);
        let text = std::fs::read_to_string(&op).expect("objects");
        let forged = text.replacen("\"bb\"", "\"aa\"", 1);
        std::fs::write(&op, &forged).expect("forge");
        assert!(check_report(dir.as_path(), &keys).is_err());
        std::fs::write(&op, &text).expect("restore");

        // Edit the summary: the signature no longer matches.
        let rp = dir.as_path().join("report.json");
        let json = std::fs::read_to_string(&rp).expect("report");
        std::fs::write(&rp, json.replace("\"failed\": 1", "\"failed\": 0")).expect("edit");
        let err = check_report(dir.as_path(), &keys).expect_err("edited summary");
        assert!(err.to_string().contains("signature"), "{err}");

        // Another key is not trusted.
        std::fs::write(&rp, &json).expect("restore");
        let other = Signer::from_seed(&[4; 32]).expect("key");
        assert!(check_report(dir.as_path(), &[other.public()]).is_err());
    }
}
