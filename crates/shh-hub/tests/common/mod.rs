//! The in-process fixture: a hub in a temporary directory, opened once and shared as
//! `Arc<Hub>`, with sessions for whoever a test needs.

#![allow(dead_code)]

use shh_hub::{
    Authenticator, Hub, InitOptions, KdfParams, LocalAuthenticator, LocalOperator, Session,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const PASS: &str = "in-process hub tests";

/// A hub in a temporary directory (removed with the fixture).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub hub: Arc<Hub>,
    /// The operator who created it.
    pub operator: Session,
}

pub fn operator(name: &str, role: &str) -> LocalOperator {
    LocalOperator {
        name: name.into(),
        role: role.into(),
    }
}

impl Fixture {
    /// A fresh hub (fast key derivation), created by `alice`.
    pub async fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tmp");
        let who = operator("alice@test", "operator");
        let hub = Hub::init(
            &tmp.path().join("hub"),
            PASS,
            InitOptions {
                kdf: KdfParams::INSECURE_FAST,
                ..InitOptions::default()
            },
            &who,
        )
        .await
        .expect("init");
        let hub = Arc::new(hub);
        let operator = LocalAuthenticator
            .authenticate(&hub, &who)
            .await
            .expect("session");
        Fixture { tmp, hub, operator }
    }

    /// The hub directory.
    pub fn dir(&self) -> PathBuf {
        self.hub.dir().to_owned()
    }

    /// A session of `name` in `role`.
    pub async fn session(&self, name: &str, role: &str) -> Session {
        LocalAuthenticator
            .authenticate(&self.hub, &operator(name, role))
            .await
            .expect("session")
    }

    /// A file under the temporary directory with `text`.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Closes the hub and opens it again (a new process would).
    pub async fn reopen(&mut self) {
        let dir = self.dir();
        self.hub = Arc::new(Hub::open(&dir, PASS).await.expect("reopen"));
    }
}

/// Opens the hub in `dir` with a session of its operator.
pub async fn open(dir: &Path) -> (Hub, Session) {
    let hub = Hub::open(dir, PASS).await.expect("open");
    let s = LocalAuthenticator
        .authenticate(&hub, &operator("alice@test", "operator"))
        .await
        .expect("session");
    (hub, s)
}

impl Fixture {
    /// The synthetic SNDS tables of `patients` patients, written once per fixture.
    pub fn synth(&self, patients: u64) -> PathBuf {
        let out = self.tmp.path().join(format!("synth-{patients}"));
        if !out.exists() {
            shh_hub::synth::generate(&out, patients, 7, &shh_hub::Task::silent()).expect("synth");
        }
        out
    }

    /// `name`'s session, proven with `passphrase` (`--as name`).
    pub async fn login(&self, name: &str, passphrase: &str) -> shh_hub::Result<Session> {
        shh_hub::UserAuthenticator
            .authenticate(
                &self.hub,
                &shh_hub::UserLogin {
                    name: name.into(),
                    passphrase: passphrase.into(),
                },
            )
            .await
    }

    /// A user added by the operator with `roles`, enrolled with the passphrase
    /// `<name>-passphrase`, and their session.
    pub async fn user(&self, name: &str, roles: &[shh_hub::Role]) -> Session {
        use shh_hub::access::users::{UserAddRequest, UserEnrollRequest};
        self.hub
            .user_add(
                &self.operator,
                &UserAddRequest {
                    name: name.into(),
                    roles: roles.to_vec(),
                },
            )
            .await
            .expect("add user");
        let passphrase = format!("{name}-passphrase");
        self.hub
            .user_enroll(
                &self.operator,
                &UserEnrollRequest {
                    name: name.into(),
                    passphrase: passphrase.clone(),
                },
            )
            .await
            .expect("enroll");
        self.login(name, &passphrase).await.expect("login")
    }

    /// An ingest of synthetic table `table` into a dataset of the same name.
    pub fn ingest_request(&self, patients: u64, table: &str) -> shh_hub::ingest::IngestRequest {
        let data = self.synth(patients);
        shh_hub::ingest::IngestRequest {
            dataset: table.into(),
            files: vec![data.join(format!("{table}.csv"))],
            schema: Some(data.join(format!("{table}.json"))),
            policy: Some(data.join(format!("{table}.policy.toml"))),
            ..Default::default()
        }
    }
}

/// The rule an error names, if it is an access refusal.
#[allow(dead_code)]
pub fn rule(e: &shh_hub::HubError) -> Option<&'static str> {
    match e {
        shh_hub::HubError::Denied(d) => Some(d.rule),
        _ => None,
    }
}

impl Fixture {
    /// A hub holding the synthetic beneficiaries of `patients` patients, as `IR_BEN_R`.
    #[allow(dead_code)]
    pub async fn with_beneficiaries(patients: u64) -> Fixture {
        let f = Fixture::new().await;
        f.hub
            .ingest(
                &f.operator,
                &shh_hub::Task::silent(),
                &f.ingest_request(patients, "IR_BEN_R"),
            )
            .await
            .expect("ingest");
        f
    }
}

/// Aggregate terms on `IR_BEN_R` for `to`, valid from an hour ago for 30 days.
#[allow(dead_code)]
pub fn grant(project: &str, to: &[&str]) -> shh_hub::access::permits::PermitGrantRequest {
    shh_hub::access::permits::PermitGrantRequest {
        project: project.into(),
        dataset: "IR_BEN_R".into(),
        version: None,
        columns: None,
        predicate: None,
        mode: shh_hub::Mode::Aggregate,
        from: chrono::Utc::now() - chrono::Duration::hours(1),
        until: chrono::Utc::now() + chrono::Duration::days(30),
        to: to.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The hub's own pseudonyms in `IR_BEN_R` (the operator's clear export).
#[allow(dead_code)]
pub async fn hub_pseudonyms(f: &Fixture) -> std::collections::BTreeSet<String> {
    use arrow::array::AsArray;
    let sink = shh_hub::MemorySink::new();
    f.hub
        .export(
            &f.operator,
            &shh_hub::Task::silent(),
            &shh_hub::ops::ExportRequest {
                dataset: shh_hub::ops::DatasetRef::parse("IR_BEN_R").expect("ref"),
            },
            &sink,
        )
        .await
        .expect("export");
    let mut out = std::collections::BTreeSet::new();
    for name in sink.names() {
        for (file, bytes) in sink.result(&name).unwrap_or_default() {
            if !file.ends_with(".parquet") {
                continue;
            }
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .expect("parquet")
                    .build()
                    .expect("reader");
            for b in reader {
                let b = b.expect("batch");
                let c = b.column_by_name("BEN_NIR_PSA").expect("column");
                let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).expect("cast");
                out.extend(c.as_string::<i32>().iter().flatten().map(str::to_owned));
            }
        }
    }
    out
}
