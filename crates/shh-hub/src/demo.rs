//! `shh demo`: the first thing a newcomer runs. Creates a hub on the embedded default (local
//! disk + SQLite), synthesizes an SNDS-shaped population (the producer's files, with raw fake
//! NIRs), ingests it — pseudonymized, policies applied, foreign keys checked — verifies every
//! version, shows that the store holds only ciphertext and not one of the NIRs, prints the
//! re-identification risk, gives a researcher's project a permit granted and signed by the
//! access committee (and refuses what the rules forbid), and verifies the audit log that
//! recorded all of it, signatures included.

use crate::migrate::{RunRequest, VerifyRequest};
use crate::{
    Authenticator, Hub, HubError, InitOptions, KdfParams, LocalAuthenticator, LocalOperator,
    Result, Task, Unit,
};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;
use shh_pseudo::RiskReport;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A marker file that says a directory was made by `shh demo` (and may be replaced by it).
pub const DEMO_MARKER: &str = ".shh-demo";
/// Where the demo puts the producer's (synthetic) source files, inside its directory.
pub const PRODUCER_DIR: &str = "producer-files";

/// One ingested table.
#[derive(Debug, Clone, Serialize)]
pub struct DemoTable {
    /// `name@id`.
    pub version: String,
    /// Rows read from the producer's file.
    pub rows_read: u64,
    /// Rows stored.
    pub rows_written: u64,
    /// Rows excluded by the opt-out register.
    pub opted_out: u64,
    /// Pseudonymized columns.
    pub pseudonymized: Vec<String>,
    /// Dropped columns.
    pub dropped: Vec<String>,
    /// Foreign-key violations found.
    pub fk_violations: u64,
}

/// What the demo did.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Hub directory.
    pub hub: PathBuf,
    /// Primary store URL.
    pub store: String,
    /// The producer's synthetic files (raw fake NIRs: what a hospital or the claims base sends).
    pub producer_files: PathBuf,
    /// Patients synthesized.
    pub patients: u64,
    /// The tables ingested, in order.
    pub tables: Vec<DemoTable>,
    /// Data files verified (both hashes) across all versions.
    pub files_verified: usize,
    /// Objects in the raw store and their total size.
    pub raw_object_count: usize,
    /// Total stored bytes.
    pub raw_bytes: u64,
    /// A few raw objects: path, size, first bytes (hex).
    pub raw_objects: Vec<(String, u64, String)>,
    /// NIRs searched for in every raw object.
    pub nirs_searched: usize,
    /// Whether any of them was found (it must not be).
    pub nir_in_store: bool,
    /// Risk reports: dataset, report.
    pub risk: Vec<(String, RiskReport)>,
    /// The audit events the demo produced: seq, action, target.
    pub audit_events: Vec<(u64, String, String)>,
    /// The audit log's verification.
    pub audit: shh_audit::VerifyReport,
    /// The audit public key (PEM).
    pub audit_pubkey: String,
    /// The store copied to a second location, as a migration would.
    pub migration: DemoMigration,
    /// Research access: a project and its permit.
    pub access: DemoAccess,
}

/// The demo's research access.
#[derive(Debug, Clone, Serialize)]
pub struct DemoAccess {
    /// The researcher and the committee member (enrolled with their own passphrases).
    pub users: Vec<(String, String)>,
    /// The project.
    pub project: String,
    /// Its title.
    pub title: String,
    /// The project's request for the permit.
    pub request: String,
    /// The permit granted on it.
    pub permit: String,
    /// What it covers, as shown.
    pub terms: String,
    /// Fingerprint of the key that signed the grant.
    pub signed_by: String,
    /// Attempts the rules refused: what was tried, the rule.
    pub refused: Vec<(String, String)>,
    /// The aggregate query rita ran under the permit.
    pub query: String,
    /// Its answer, as a table (suppressed cells read `suppressed`).
    pub answer: String,
    /// What disclosure control did to it.
    pub disclosure: shh_query::disclosure::Report,
    /// All patients, then all but those of the first suppressed cell: whether the attack that
    /// would read that cell by difference got the same answer twice (`None`: nothing was
    /// suppressed to attack).
    pub differencing: Option<bool>,
    /// The airlock release of that table.
    pub release: DemoRelease,
}

/// An airlock release in the demo.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRelease {
    /// The request.
    pub id: String,
    /// The two checkers who approved it.
    pub reviewers: Vec<String>,
    /// The file's size.
    pub bytes: u64,
    /// Its BLAKE3.
    pub blake3: String,
}

/// The demo's migration to a second store.
#[derive(Debug, Clone, Serialize)]
pub struct DemoMigration {
    /// Destination store.
    pub to: String,
    /// Objects copied and verified by read-back.
    pub objects: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Objects the acceptance report checked against the manifests (plaintext too).
    pub checked: u64,
    /// Of which failed (must be 0).
    pub failed: u64,
    /// The report's signed Merkle root.
    pub merkle_root: String,
    /// The report directory.
    pub report: PathBuf,
}

/// A random passphrase for a throw-away demo hub (printed to the user, so never for real data).
pub fn random_passphrase() -> String {
    format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// Runs the demo in `dir` (replacing an earlier demo there, never anything else).
pub async fn run(
    dir: &Path,
    passphrase: &str,
    patients: u64,
    operator: &LocalOperator,
    task: &Task,
) -> Result<DemoReport> {
    // Each step is a phase of `task`; the steps inside run quietly, stopped by the same cancel.
    let step = |what: &str| -> Result<()> {
        task.check()
            .map_err(|_| HubError::Cancelled("the demo was stopped".into()))?;
        task.phase(what, None, Unit::Steps);
        Ok(())
    };
    let quiet = task.quiet();
    if dir.exists() {
        let is_demo = dir.join(DEMO_MARKER).exists();
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if is_demo {
            step(&format!(
                "removing the previous demo hub at {}",
                dir.display()
            ))?;
            std::fs::remove_dir_all(dir).map_err(|source| HubError::Io {
                path: dir.to_owned(),
                source,
            })?;
        } else if !empty {
            return Err(HubError::AlreadyExists(dir.to_owned()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| HubError::Io {
        path: dir.to_owned(),
        source,
    })?;
    // Absolute from here on: the migration step names its target by a file:// URL.
    let dir = &dir.canonicalize().map_err(|source| HubError::Io {
        path: dir.to_owned(),
        source,
    })?;
    std::fs::write(dir.join(DEMO_MARKER), b"created by shh demo\n").map_err(|source| {
        HubError::Io {
            path: dir.join(DEMO_MARKER),
            source,
        }
    })?;

    step("creating a hub: keystore (Argon2id), SQLite catalog, encrypted local store")?;
    let opts = InitOptions {
        kdf: KdfParams::DEFAULT,
        ..Default::default()
    };
    let hub = Hub::init(dir, passphrase, opts, operator).await?;
    let session = LocalAuthenticator.authenticate(&hub, operator).await?;
    let s = &session;

    let producer = dir.join(PRODUCER_DIR);
    step(&format!(
        "synthesizing {patients} patients in SNDS shape (the producer's files, raw fake NIRs) in {}",
        producer.display()
    ))?;
    let synth =
        shh_ingest::synth::generate(&producer, patients, 2026, &quiet).map_err(|source| {
            HubError::Io {
                path: producer.clone(),
                source,
            }
        })?;
    let nirs = read_nirs(&producer.join("IR_BEN_R.csv"))?;

    let mut tables = Vec::new();
    let mut risk = Vec::new();
    for t in shh_ingest::synth::TABLES {
        step(&format!(
            "ingesting {t}: Table Schema enforced, NIR pseudonymized (HMAC-SHA-256), policy applied, foreign keys checked"
        ))?;
        let req = crate::ingest::IngestRequest {
            dataset: t.to_owned(),
            files: vec![producer.join(format!("{t}.csv"))],
            schema: Some(producer.join(format!("{t}.json"))),
            policy: Some(producer.join(format!("{t}.policy.toml"))),
            ..Default::default()
        };
        let r = hub.ingest(s, &quiet, &req).await?;
        if !r.stats.risk.quasi_identifiers.is_empty() {
            risk.push((t.to_owned(), r.stats.risk.clone()));
        }
        tables.push(DemoTable {
            version: r.reference.clone(),
            rows_read: r.stats.rows_read,
            rows_written: r.stats.rows_written,
            opted_out: r.stats.opted_out,
            pseudonymized: r.identifiers.clone(),
            dropped: r.dropped.iter().map(|(n, _)| n.clone()).collect(),
            fk_violations: r.stats.foreign_keys.iter().map(|f| f.violations).sum(),
        });
    }

    step("verifying every file of every version (ciphertext and plaintext BLAKE3)")?;
    let mut files_verified = 0;
    for t in shh_ingest::synth::TABLES {
        let r = crate::ops::DatasetRef {
            name: t.to_owned(),
            version: None,
        };
        let report = hub.verify(s, &quiet, &r).await?;
        if let Some(bad) = report.first_bad() {
            return Err(HubError::Dataset(shh_dataset::DatasetError::FileMismatch {
                path: bad.path.clone(),
                what: bad.error.clone().unwrap_or_default(),
            }));
        }
        files_verified += report.files.len();
    }

    step(&format!(
        "reading the raw store as the cloud provider sees it, searching it for all {} NIRs",
        nirs.len()
    ))?;
    let raw_store = hub.core.read().await.raw.clone();
    let mut raw_objects = Vec::new();
    let mut nir_in_store = false;
    let mut raw_bytes = 0;
    let objs: Vec<_> = raw_store.list(None).try_collect().await?;
    let raw_object_count = objs.len();
    for m in objs {
        let bytes = raw_store.get(&m.location).await?.bytes().await?;
        nir_in_store |= bytes.windows(15).any(|w| nirs.contains(w));
        raw_bytes += m.size;
        let head = hex::encode(&bytes[..bytes.len().min(12)]);
        raw_objects.push((m.location.to_string(), m.size, head));
    }
    raw_objects.sort();
    // A sample is enough to show the header on every kind of object.
    let mut shown = Vec::new();
    for prefix in [
        "audit/heads",
        "audit/log",
        "datasets/IR_BEN_R/data",
        "datasets/IR_BEN_R/manifests",
    ] {
        if let Some(o) = raw_objects.iter().find(|o| o.0.starts_with(prefix)) {
            shown.push(o.clone());
        }
    }

    step(
        "migrating the store to a second location (stand-in for another cloud), verifying every object against the manifests",
    )?;
    let target = format!("file://{}", dir.join("other-cloud").display());
    let run = hub
        .migrate_run(
            s,
            &quiet,
            RunRequest {
                to: Some(target.clone()),
                options: shh_migrate::Options::default(),
                ..Default::default()
            },
            |_| {},
        )
        .await?;
    let report_dir = dir.join("migration-report");
    let accepted = hub
        .migrate_verify(
            s,
            &quiet,
            &VerifyRequest {
                to: Some(target.clone()),
                deep: true,
                concurrency: 8,
                report: "migration-report".into(),
            },
            &shh_sink::DirSink::new(dir),
        )
        .await?;
    let migration = DemoMigration {
        to: target,
        objects: run.stats.copied.objects,
        bytes: run.stats.bytes_sent,
        checked: accepted.summary.objects,
        failed: accepted.summary.failed + run.stats.failures.len() as u64,
        merkle_root: accepted.merkle_root,
        report: report_dir,
    };

    step(
        "research access: a researcher's project asks for a permit, the access committee grants and signs it, attacks refused",
    )?;
    let access = research_access(&hub, s).await?;

    step(
        "verifying the audit log: recomputing the Merkle tree, checking every signed head and decision",
    )?;
    let audit = hub
        .audit_verify(s, &crate::audit::AuditVerifyRequest::default())
        .await?;
    let audit_events = hub
        .audit_events(s, &shh_audit::EventFilter::default())
        .await?
        .into_iter()
        .map(|e| {
            let t = e.targets;
            let target = t.permit.or(t.project).or(t.dataset).or(t.object);
            let target = target
                .or_else(|| {
                    e.details
                        .get("user")
                        .and_then(|u| u.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            (e.seq, e.action, target)
        })
        .collect();
    Ok(DemoReport {
        migration,
        access,
        audit_events,
        audit,
        audit_pubkey: hub.audit_public_key().await?.to_pem(),
        hub: hub.dir().to_owned(),
        store: hub.config().await.store,
        producer_files: producer,
        patients: synth.patients,
        tables,
        files_verified,
        raw_object_count,
        raw_bytes,
        raw_objects: shown,
        nirs_searched: nirs.len(),
        nir_in_store,
        risk,
    })
}

/// Two users with their own credentials, a project of the researcher, its request for a permit
/// on the beneficiaries granted by the committee member (signed), and attempts the rules stop.
async fn research_access(hub: &Hub, s: &crate::Session) -> Result<DemoAccess> {
    use crate::access::permits::{PermitApplyRequest, PermitDecideRequest, PermitGrantRequest};
    use crate::access::projects::ProjectCreateRequest;
    use crate::access::users::{UserAddRequest, UserEnrollRequest};
    use shh_access::{Mode, Role};
    let mut sessions = Vec::new();
    for (name, role) in [
        ("rita", Role::Researcher),
        ("cora", Role::Committee),
        ("olga", Role::Checker),
        ("otto", Role::Checker),
    ] {
        hub.user_add(
            s,
            &UserAddRequest {
                name: name.into(),
                roles: vec![role],
            },
        )
        .await?;
        // Their own passphrases (random here), never the hub's.
        let passphrase = random_passphrase();
        hub.user_enroll(
            s,
            &UserEnrollRequest {
                name: name.into(),
                passphrase: passphrase.clone(),
            },
        )
        .await?;
        let login = crate::UserLogin {
            name: name.into(),
            passphrase,
        };
        sessions.push(crate::UserAuthenticator.authenticate(hub, &login).await?);
    }
    let (rita, cora, olga, otto) = (&sessions[0], &sessions[1], &sessions[2], &sessions[3]);
    let project = hub
        .project_create(
            rita,
            &ProjectCreateRequest {
                title: "Diabetes care pathways".into(),
                purpose: "Prevalence of treated diabetes by age band and département".into(),
                legal_basis: Some(
                    "GDPR art. 6(1)(e) and 9(2)(j); CNIL reference methodology MR-004".into(),
                ),
                controller: Some("Demo University Hospital".into()),
                members: vec![],
            },
        )
        .await?;
    let now = chrono::Utc::now();
    let grant = PermitGrantRequest {
        project: project.id.clone(),
        dataset: "IR_BEN_R".into(),
        version: None,
        columns: None,
        predicate: None,
        mode: Mode::Aggregate,
        from: now,
        until: now + chrono::Duration::days(180),
        to: ["rita".to_owned()].into(),
    };
    let mut refused = Vec::new();
    let mut attempt = |what: &str, r: Result<()>| {
        if let Err(HubError::Denied(d)) = r {
            refused.push((what.to_owned(), d.rule.to_owned()));
        }
    };
    let asked = hub
        .permit_request(
            rita,
            &PermitApplyRequest {
                terms: grant.clone(),
                reason: "Birth cohorts by sex, to size a follow-up study".into(),
            },
        )
        .await?
        .application
        .id;
    let decide = PermitDecideRequest {
        request: asked.clone(),
        note: String::new(),
    };
    attempt(
        "rita grants her own request",
        hub.permit_grant_request(rita, &decide).await.map(|_| ()),
    );
    attempt(
        "the operator (no committee role, no key of their own) grants it",
        hub.permit_grant_request(s, &decide).await.map(|_| ()),
    );
    let permit = hub.permit_grant_request(cora, &decide).await?;
    attempt(
        "cora (who granted it) works under it",
        hub.permit_check(cora, &permit.permit.id).await.map(|_| ()),
    );
    hub.permit_check(rita, &permit.permit.id).await?;
    // The oldest birth years hold few patients: their cells are suppressed.
    let sql = "SELECT BEN_NAI_ANN AS born, BEN_SEX_COD AS sex, count(DISTINCT BEN_NIR_PSA) AS patients \
               FROM IR_BEN_R WHERE BEN_NAI_ANN < 1932 GROUP BY BEN_NAI_ANN, BEN_SEX_COD ORDER BY born, sex";
    let ask = |sql: &str| crate::query::QueryRequest {
        permits: vec![permit.permit.id.clone()],
        sql: sql.into(),
    };
    let answer = hub.query(rita, &ask(sql)).await?;
    attempt(
        "rita lists the beneficiaries under an aggregate permit",
        hub.query(rita, &ask("SELECT * FROM IR_BEN_R"))
            .await
            .map(|_| ()),
    );
    attempt(
        "rita asks for the oldest birth year (one person's value)",
        hub.query(rita, &ask("SELECT min(BEN_NAI_ANN) FROM IR_BEN_R"))
            .await
            .map(|_| ()),
    );
    // All patients, then all but those of the first suppressed cell: the difference would be
    // that small cell.
    let all = "SELECT count(DISTINCT BEN_NIR_PSA) AS n FROM IR_BEN_R";
    let first = hub.query(rita, &ask(all)).await?;
    let differencing = match suppressed_cell(&answer) {
        Some((born, sex)) => {
            let but = hub
                .query(
                    rita,
                    &ask(&format!(
                        "{all} WHERE NOT (BEN_NAI_ANN = {born} AND BEN_SEX_COD = '{sex}')"
                    )),
                )
                .await?;
            Some(first.provenance.result_hash == but.provenance.result_hash)
        }
        None => None,
    };
    // The airlock: rita asks for her table to leave; olga and otto review it; she takes it.
    use crate::access::airlock::{ExportAskRequest, ExportReviewRequest};
    let request = hub
        .export_request(
            rita,
            &ExportAskRequest {
                permits: vec![permit.permit.id.clone()],
                query: sql.into(),
                reason: "Table 1 of the cohort description".into(),
                format: "csv".into(),
            },
        )
        .await?;
    let review = ExportReviewRequest {
        id: request.record.id.clone(),
        approve: true,
        note: "cells of 11 patients or more, rounded; no identifier".into(),
    };
    attempt(
        "rita reviews her own request",
        hub.export_review(rita, &review).await.map(|_| ()),
    );
    hub.export_review(olga, &review).await?;
    attempt(
        "rita takes the file after one review",
        hub.export_release(rita, &request.record.id)
            .await
            .map(|_| ()),
    );
    hub.export_review(otto, &review).await?;
    let released = hub.export_release(rita, &request.record.id).await?;
    let release = released
        .view
        .record
        .releases
        .last()
        .map(|r| (r.bytes, r.blake3.clone()))
        .unwrap_or_default();
    let t = &permit.permit.terms;
    Ok(DemoAccess {
        users: vec![
            ("rita".into(), "researcher".into()),
            ("cora".into(), "committee".into()),
            ("olga".into(), "checker".into()),
            ("otto".into(), "checker".into()),
        ],
        project: project.id,
        title: project.title,
        request: asked,
        permit: permit.permit.id.clone(),
        terms: format!(
            "{} (current version), {} mode, {} → {}, to rita",
            t.dataset,
            t.mode.as_str(),
            t.from.format("%Y-%m-%d"),
            t.until.format("%Y-%m-%d")
        ),
        signed_by: crate::access::users::fingerprint(&permit.permit.public_key).unwrap_or_default(),
        refused,
        query: sql.into(),
        answer: String::from_utf8_lossy(&answer.to_bytes(crate::query::Format::Table)?)
            .into_owned(),
        disclosure: answer.provenance.disclosure.clone().unwrap_or_default(),
        differencing,
        release: DemoRelease {
            id: request.record.id.clone(),
            reviewers: vec!["olga".into(), "otto".into()],
            bytes: release.0,
            blake3: release.1,
        },
    })
}

/// The birth year and sex of the answer's first suppressed cell.
fn suppressed_cell(r: &crate::query::QueryResult) -> Option<(i64, String)> {
    use arrow::array::{Array, AsArray};
    let b = r.batches.first()?;
    let born = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64).ok()?;
    let sex = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Utf8).ok()?;
    let (born, sex) = (
        born.as_primitive::<arrow::datatypes::Int64Type>(),
        sex.as_string::<i32>(),
    );
    let row = (0..b.num_rows()).find(|&i| b.column(2).is_null(i))?;
    // Sex codes are digits: nothing to escape.
    let s = sex.value(row);
    s.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| (born.value(row), s.to_owned()))
}

fn read_nirs(path: &Path) -> Result<HashSet<Vec<u8>>> {
    let text = std::fs::read_to_string(path).map_err(|source| HubError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(|n| n.as_bytes().to_vec())
        .collect())
}
