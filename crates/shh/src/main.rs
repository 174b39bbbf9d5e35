//! `shh`: the command-line interface. Parses arguments, asks for the passphrase, calls the hub
//! library and prints results (text for people, `--json` for machines). No logic lives here.

#![forbid(unsafe_code)]

#[macro_use]
mod out;
mod access;
mod airlock;
mod audit;
mod ingest;
mod migrate;
mod operator;
mod query;
mod task;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use shh_hub::ops::{DatasetRef, short_ref};
use shh_hub::{
    Authenticator, DirSink, ErrorKind, Hub, HubError, InitOptions, KdfParams, LocalAuthenticator,
    ResidencyRule, Session, StoreUrl, UserAuthenticator, UserLogin,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use task::Style;

#[derive(Parser)]
#[command(
    name = "shh",
    version,
    about = "Sovereign Health Hub: encrypted, versioned, auditable health data"
)]
struct Cli {
    /// Hub directory (configuration, keystore, embedded catalog).
    #[arg(long, global = true, env = "SHH_HUB", default_value = "./shh-hub")]
    hub: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Worker threads of the async runtime [default: one per core; `migrate run` and `sync`
    /// leave one core to the kernel's network stack and the rest of the machine].
    #[arg(long, global = true, env = "SHH_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Act as this enrolled user, proven with their own passphrase (`SHH_USER_PASSPHRASE` or
    /// a prompt); without it you act as the hub's operator, because you hold its passphrase.
    #[arg(long = "as", global = true, env = "SHH_AS")]
    as_user: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The runtime's worker threads for `cli`. A migration's own work (two hashes, HTTP) is light
/// beside what the kernel spends on its sockets: measured on 2 cores with both services local,
/// a second worker cost 10 % more CPU and gained nothing (ARCHITECTURE.md, "Data flow of a migration").
fn worker_threads(cli: &Cli) -> usize {
    let local = |to: Option<&str>| to.is_some_and(|t| t.starts_with("file:"));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    match (cli.threads, &cli.cmd) {
        (Some(n), _) => usize::from(n),
        // Not `verify`, `compare` or `cutover`: they decrypt and hash on these threads. Nor a
        // copy to local disk: there is no network stack to leave a core to (measured: 2.87 s
        // on 2 workers against 3.78 s on 1 for 2,000 × 16 KiB + 4 × 64 MiB).
        (None, Cmd::Migrate(migrate::MigrateCmd::Run { to, .. })) if !local(to.as_deref()) => {
            cores.saturating_sub(1).max(1)
        }
        (None, Cmd::Migrate(migrate::MigrateCmd::Sync { to, .. })) if !local(Some(to)) => {
            cores.saturating_sub(1).max(1)
        }
        (None, _) => cores,
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a hub: configuration, keystore and catalog.
    Init(InitArgs),
    /// Run the demonstration on a fresh local hub.
    Demo {
        /// Where to create the demo hub.
        #[arg(long, default_value = "./shh-demo")]
        dir: PathBuf,
        /// Patients in the synthetic population.
        #[arg(long, default_value_t = 20_000)]
        patients: u64,
    },
    /// Ingest CSV, Parquet or FHIR NDJSON into a new dataset version, pseudonymized.
    Ingest(ingest::IngestArgs),
    /// Generate synthetic data.
    #[command(subcommand)]
    Synth(ingest::SynthCmd),
    /// The opt-out register (patients who object to the use of their data).
    #[command(subcommand)]
    Optout(ingest::OptoutCmd),
    /// Key custody.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Dataset versions.
    #[command(subcommand)]
    Datasets(DatasetsCmd),
    /// The tamper-evident audit log: read, verify, export, prove.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// The raw store, as its provider sees it (ciphertext only).
    #[command(subcommand)]
    Store(StoreCmd),
    /// Move the hub to another cloud: plan, run, sync, verify, cut over, roll back.
    #[command(subcommand)]
    Migrate(migrate::MigrateCmd),
    /// Users, their roles and credentials.
    #[command(subcommand)]
    User(access::UserCmd),
    /// Research projects.
    #[command(subcommand)]
    Project(access::ProjectCmd),
    /// Time-bound permits to work on a dataset.
    #[command(subcommand)]
    Permit(access::PermitCmd),
    /// Run one SQL query under a permit (`--as` the researcher): its views only; aggregate
    /// permits answer under disclosure control.
    Query {
        /// The permit (repeat for a join: one per dataset, of one project).
        #[arg(long, required = true)]
        permit: Vec<String>,
        /// One SQL query (SNDS names as written: `SELECT BEN_SEX_COD, count(*) FROM IR_BEN_R
        /// GROUP BY BEN_SEX_COD`).
        sql: String,
        /// table, csv, json or parquet.
        #[arg(long, default_value = "table")]
        format: String,
        /// Write the result to this file (needed for parquet) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Disclosure control: the settings aggregate answers are protected by.
    #[command(subcommand)]
    Disclosure(query::DisclosureCmd),
    /// The airlock: a result leaves after two output checkers approve it.
    #[command(subcommand)]
    Export(airlock::ExportCmd),
    /// The public register of projects.
    #[command(subcommand)]
    Register(airlock::RegisterCmd),
}

#[derive(Args)]
struct InitArgs {
    /// Primary store URL (default: file://<hub>/store).
    #[arg(long)]
    store: Option<String>,
    /// Another destination data may go to (a store URL; its endpoint and region are allowed).
    #[arg(long = "allow")]
    allow: Vec<String>,
    /// The proxy every request to a remote store goes through (`http://host:port`); proxies
    /// in the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) are never used.
    #[arg(long)]
    proxy: Option<String>,
    /// Argon2id memory in MiB.
    #[arg(long, default_value_t = 64)]
    kdf_memory_mib: u32,
    /// Argon2id passes.
    #[arg(long, default_value_t = 3)]
    kdf_passes: u32,
    /// Weak key derivation, for tests only.
    #[arg(long, hide = true)]
    insecure_fast_kdf: bool,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// List master keys (never their secrets).
    List,
    /// Change the passphrase (re-wraps the master keys; no data object changes).
    Passwd,
}

#[derive(Subcommand)]
enum DatasetsCmd {
    /// List datasets and their current versions.
    List,
    /// Show a version: NAME[@VERSION].
    Show { reference: String },
    /// List every version of a dataset.
    Versions { name: String },
    /// Re-read every file of a version and check both hashes; non-zero exit names the first bad file.
    Verify { reference: String },
    /// The re-identification risk report of a version (Markdown, or JSON with --json).
    Risk { reference: String },
    /// Export a version as plain Parquet plus its manifest.
    Export {
        reference: String,
        /// Directory to export into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// List the objects in the backend with their stored sizes.
    Ls,
}

fn passphrase(prompt: &str, confirm: bool, var: &str) -> Result<String> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p);
    }
    let p = rpassword::prompt_password(prompt)
        .with_context(|| format!("cannot read a passphrase: set {var} or run in a terminal"))?;
    if confirm {
        let again = rpassword::prompt_password("Repeat: ")?;
        if again != p {
            bail!("the passphrases differ");
        }
    }
    Ok(p)
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    out::json(v)
}

/// A result given as the directory `--out DIR` names (an acceptance report, the auditor's
/// copy): its parent is the sink, its file name the result's.
pub(crate) fn result_sink(dir: &Path) -> Result<(DirSink, String)> {
    Ok(DirSink::for_path(dir).map_err(HubError::from)?)
}

/// `--as USER`, set once before the command runs.
static AS_USER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Opens the hub with its passphrase and authenticates the caller (the user `--as` names,
/// proven with their own passphrase, or else the local operator): the hub shared as one
/// `Arc<Hub>`, and the session every operation of this command runs in.
pub(crate) async fn open(hub: &Path) -> Result<(Arc<Hub>, Session)> {
    Hub::read_config(hub)?;
    let p = passphrase(
        &format!("Passphrase for hub {}: ", hub.display()),
        false,
        "SHH_PASSPHRASE",
    )?;
    let hub = Arc::new(Hub::open(hub, &p).await?);
    let session = match AS_USER.get().and_then(Option::as_ref) {
        Some(name) => {
            let p = passphrase(
                &format!("Passphrase of user {name}: "),
                false,
                "SHH_USER_PASSPHRASE",
            )?;
            let login = UserLogin {
                name: name.clone(),
                passphrase: p,
            };
            UserAuthenticator.authenticate(&hub, &login).await?
        }
        None => {
            LocalAuthenticator
                .authenticate(&hub, &operator::from_env())
                .await?
        }
    };
    Ok((hub, session))
}

pub(crate) fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.json;
    let _ = AS_USER.set(cli.as_user.clone());
    match cli.cmd {
        Cmd::Init(a) => {
            let mut allow = Vec::new();
            for u in &a.allow {
                allow.push(ResidencyRule::for_url(&StoreUrl::parse(u)?));
            }
            let kdf = if a.insecure_fast_kdf {
                KdfParams::INSECURE_FAST
            } else {
                KdfParams {
                    m_cost_kib: a.kdf_memory_mib * 1024,
                    t_cost: a.kdf_passes,
                    p_cost: 1,
                }
            };
            let store = a.store.as_deref().map(StoreUrl::parse).transpose()?;
            let p = passphrase("New passphrase: ", true, "SHH_PASSPHRASE")?;
            let proxy = a.proxy;
            let hub = Hub::init(
                &cli.hub,
                &p,
                InitOptions {
                    store,
                    allow,
                    kdf,
                    proxy,
                },
                &operator::from_env(),
            )
            .await?;
            let config = hub.config().await;
            if json {
                print_json(&config)?;
            } else {
                outln!("created hub {} in {}", config.hub_id, hub.dir().display());
                outln!("  store:   {}", config.store);
                outln!("  catalog: {}", config.catalog);
                for r in &config.residency.allow {
                    outln!("  allowed: {r}");
                }
                if let Some(p) = &config.residency.proxy {
                    outln!("  proxy:   {p} (every request to a remote store)");
                }
            }
        }
        Cmd::Demo { dir, patients } => {
            let (pass, generated) = match std::env::var("SHH_PASSPHRASE") {
                Ok(p) => (p, false),
                Err(_) => (shh_hub::demo::random_passphrase(), true),
            };
            let task = task::long(json, Style::Steps, "");
            let start = std::time::Instant::now();
            let r = shh_hub::demo::run(&dir, &pass, patients, &operator::from_env(), &task).await;
            task.finish();
            let r = r?;
            if json {
                print_json(&r)?;
            } else {
                print_demo(&r, start.elapsed())?;
                if generated {
                    outln!("\nthe demo hub's passphrase is {pass:?} (demo only); to explore:");
                    outln!("  export SHH_PASSPHRASE='{pass}' SHH_HUB={}", dir.display());
                } else {
                    outln!("\nto explore: export SHH_HUB={}", dir.display());
                }
                outln!(
                    "  shh datasets list && shh datasets show ER_PRS_F && shh datasets risk IR_BEN_R"
                );
                outln!("  shh audit log && shh audit verify && shh audit export --out audit-copy");
            }
            if r.nir_in_store || !r.audit.ok || r.migration.failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Keys(KeysCmd::List) => {
            let (hub, s) = open(&cli.hub).await?;
            let keys = hub.keys(&s).await?;
            if json {
                print_json(&keys)?;
            } else {
                for k in keys {
                    outln!(
                        "{:<14} v{:<3} {}  created {}",
                        k.purpose.to_string(),
                        k.version,
                        k.id,
                        k.created_at.format("%Y-%m-%d %H:%M:%S")
                    );
                }
            }
        }
        Cmd::Keys(KeysCmd::Passwd) => {
            let (hub, s) = open(&cli.hub).await?;
            let new = passphrase("New passphrase: ", true, "SHH_NEW_PASSPHRASE")?;
            hub.change_passphrase(&s, &new).await?;
            if !json {
                outln!("passphrase changed; master keys re-wrapped, no data object touched");
            }
        }
        Cmd::Datasets(DatasetsCmd::List) => {
            let (hub, s) = open(&cli.hub).await?;
            let ds = hub.datasets(&s).await?;
            if json {
                print_json(&ds)?;
            } else if ds.is_empty() {
                outln!("no datasets");
            } else {
                for d in ds {
                    let cur = d
                        .current
                        .as_deref()
                        .map(|c| short_ref(&d.name, c))
                        .unwrap_or_default();
                    outln!("{:<24} {:<40} {} version(s)", d.name, cur, d.versions);
                }
            }
        }
        Cmd::Datasets(DatasetsCmd::Versions { name }) => {
            let (hub, s) = open(&cli.hub).await?;
            let vs = hub
                .versions(&s, &shh_hub::ops::VersionsRequest { dataset: name })
                .await?;
            if json {
                print_json(&vs)?;
            } else {
                for v in vs {
                    outln!(
                        "{}  {}  {:>12} rows  {} file(s)",
                        short_ref(&v.dataset, &v.id),
                        v.created_at.format("%Y-%m-%d %H:%M:%S"),
                        v.rows,
                        v.files
                    );
                }
            }
        }
        Cmd::Datasets(DatasetsCmd::Show { reference }) => {
            let (hub, s) = open(&cli.hub).await?;
            let v = hub.show(&s, &DatasetRef::parse(&reference)?).await?;
            if json {
                print_json(&v)?;
            } else {
                outln!(
                    "{}{}",
                    v.reference,
                    if v.current { " (current)" } else { "" }
                );
                outln!("  id:      {}", v.id);
                outln!("  parent:  {}", v.parent.as_deref().unwrap_or("-"));
                outln!("  created: {}", v.created_at.to_rfc3339());
                outln!("  rows:    {}", v.rows);
                outln!("  columns:");
                for (n, t) in &v.columns {
                    outln!("    {n:<24} {t}");
                }
                outln!("  files:");
                for f in &v.files {
                    outln!(
                        "    {}  {} rows  {} plain / {} stored  blake3 {}",
                        f.path,
                        f.rows,
                        human_bytes(f.plain_size),
                        human_bytes(f.stored_size),
                        &f.plain_blake3[..16]
                    );
                }
            }
        }
        Cmd::Datasets(DatasetsCmd::Verify { reference }) => {
            let (hub, s) = open(&cli.hub).await?;
            let r = DatasetRef::parse(&reference)?;
            let task = task::long(json, Style::Spinner, &format!("verifying {reference}"));
            let report = hub.verify(&s, &task, &r).await;
            task.finish();
            let report = report?;
            if json {
                print_json(&report)?;
            }
            match report.first_bad() {
                Some(bad) => {
                    errln!(
                        "verification FAILED for {}: first bad file {}: {}",
                        short_ref(&report.dataset, &report.version),
                        bad.path,
                        bad.error.as_deref().unwrap_or("mismatch")
                    );
                    return Ok(ExitCode::FAILURE);
                }
                None if !json => outln!(
                    "{}: OK — {} file(s), {} rows, {} of ciphertext re-read; both hashes match the manifest",
                    short_ref(&report.dataset, &report.version),
                    report.files.len(),
                    report.rows,
                    human_bytes(report.stored_bytes)
                ),
                None => {}
            }
        }
        Cmd::Datasets(DatasetsCmd::Export { reference, out }) => {
            let (hub, s) = open(&cli.hub).await?;
            let task = task::long(json, Style::Spinner, &format!("exporting {reference}"));
            let req = shh_hub::ops::ExportRequest {
                dataset: DatasetRef::parse(&reference)?,
            };
            let r = hub.export(&s, &task, &req, &DirSink::new(&out)).await;
            task.finish();
            let r = r?;
            // On this machine the result is a directory: show its files by their paths.
            let dir = PathBuf::from(&r.location);
            let files: Vec<PathBuf> = r.files.iter().map(|f| dir.join(f)).collect();
            if json {
                print_json(&serde_json::json!({
                    "dir": dir,
                    "version": r.version,
                    "files": files,
                    "rows": r.rows,
                    "bytes": r.bytes,
                }))?;
            } else {
                outln!(
                    "exported {} rows ({}) to {}",
                    r.rows,
                    human_bytes(r.bytes),
                    dir.display()
                );
                for f in &files {
                    outln!("  {}", f.display());
                }
                outln!("  {}", dir.join(shh_hub::ops::EXPORT_MANIFEST).display());
            }
        }
        Cmd::Store(StoreCmd::Ls) => {
            let (hub, s) = open(&cli.hub).await?;
            let objs = hub.raw_objects(&s).await?;
            if json {
                print_json(&objs)?;
            } else {
                for (p, s) in objs {
                    outln!("{:>10}  {p}", human_bytes(s));
                }
            }
        }
        Cmd::Audit(a) => return audit::run(a, &cli.hub, json).await,
        Cmd::Migrate(c) => return migrate::migrate(c, &cli.hub, json).await,
        Cmd::User(c) => return access::user(c, &cli.hub, json).await,
        Cmd::Project(c) => return access::project(c, &cli.hub, json).await,
        Cmd::Permit(c) => return access::permit(c, &cli.hub, json).await,
        Cmd::Query {
            permit,
            sql,
            format,
            out,
        } => return query::query(&cli.hub, permit, sql, &format, out, json).await,
        Cmd::Disclosure(c) => return query::disclosure(c, &cli.hub, json).await,
        Cmd::Export(c) => return airlock::export(c, &cli.hub, json).await,
        Cmd::Register(c) => return airlock::register(c, &cli.hub, json).await,
        Cmd::Ingest(a) => return ingest::ingest(a, &cli.hub, json).await,
        Cmd::Synth(c) => return ingest::synth(c, json),
        Cmd::Optout(c) => return ingest::optout(c, &cli.hub, json).await,
        Cmd::Datasets(DatasetsCmd::Risk { reference }) => {
            return ingest::risk(&reference, &cli.hub, json).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_demo(r: &shh_hub::demo::DemoReport, took: Duration) -> Result<()> {
    outln!();
    outln!("hub:       {}", r.hub.display());
    outln!("store:     {}", r.store);
    outln!(
        "producer:  {} ({} synthetic patients; these source files hold raw fake NIRs, the hub never does)",
        r.producer_files.display(),
        r.patients
    );
    outln!("versions (immutable, content-addressed):");
    for t in &r.tables {
        outln!(
            "  {:<24} {:>9} rows  pseudonymized: {:<12} dropped: {:<24} fk violations: {}",
            t.version,
            t.rows_written,
            t.pseudonymized.join(","),
            if t.dropped.is_empty() {
                "-".to_owned()
            } else {
                t.dropped.join(",")
            },
            t.fk_violations
        );
    }
    outln!(
        "verified:  {} data files, both hashes match their manifests",
        r.files_verified
    );
    outln!(
        "raw store: {} objects, {} — what the provider holds; every object starts with the SHHENC header:",
        r.raw_object_count,
        human_bytes(r.raw_bytes)
    );
    for (p, size, head) in &r.raw_objects {
        outln!("  {:>10}  {head}…  {p}", human_bytes(*size));
    }
    outln!(
        "raw NIRs found in the store (searched for all {}): {}",
        r.nirs_searched,
        if r.nir_in_store {
            "YES — this is a bug"
        } else {
            "none"
        }
    );
    outln!("re-identification risk (quasi-identifiers after generalization):");
    for (t, risk) in &r.risk {
        outln!(
            "  {t:<9} k = {:<3} {:>6.2}% of records in classes < 5, {:>6.2}% < 10 over {}{}",
            risk.smallest_class,
            risk.share_below_k5 * 100.0,
            risk.share_below_k10 * 100.0,
            risk.quasi_identifiers.join(" × "),
            risk.drivers
                .first()
                .filter(|d| d.unique_removed > 0)
                .map(|d| format!("; most uniqueness from {}", d.column))
                .unwrap_or_default()
        );
    }
    outln!("audit log (every action above: leaves of an RFC 6962 Merkle tree, with signed heads):");
    for (seq, action, target) in &r.audit_events {
        outln!("  {seq:>4}  {action:<22} {target}");
    }
    let m = &r.migration;
    outln!(
        "\nmigration to {}: {} objects ({}) copied, every byte hashed (BLAKE3) as written, synced to disk;",
        m.to,
        m.objects,
        human_bytes(m.bytes)
    );
    outln!(
        "  acceptance report: {} objects checked against the manifests, decrypted too: {} failed",
        m.checked,
        m.failed
    );
    outln!(
        "  signed Merkle root {} in {}",
        &m.merkle_root[..16],
        m.report.display()
    );
    let a = &r.access;
    outln!(
        "research access: project {} \"{}\" of rita (researcher) asked for a permit ({}); cora (committee) granted it as {}:",
        a.project,
        a.title,
        a.request,
        a.permit
    );
    outln!("  {}, signed with cora's own key {}", a.terms, a.signed_by);
    for (what, rule) in &a.refused {
        outln!("  refused: {what} (rule {rule})");
    }
    outln!("  rita's aggregate query: {}", a.query);
    for line in a.answer.lines() {
        outln!("    {line}");
    }
    let rules: Vec<String> = a
        .disclosure
        .rules
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    outln!(
        "  disclosure control: {} of {} cells published ({})",
        a.disclosure.published,
        a.disclosure.cells,
        rules.join(", ")
    );
    outln!(
        "  airlock: request {} approved by {} (two signed reviews), released to rita: {} bytes, BLAKE3 {}",
        a.release.id,
        a.release.reviewers.join(" and "),
        a.release.bytes,
        &a.release.blake3[..16.min(a.release.blake3.len())]
    );
    if let Some(same) = a.differencing {
        outln!(
            "  differencing (all patients, then all but the first suppressed cell's): {}",
            if same {
                "the same answer twice, the difference reveals nothing"
            } else {
                "TWO DIFFERENT ANSWERS"
            }
        );
    }
    outln!(
        "audit verification: {}",
        if r.audit.ok {
            format!(
                "OK — {} events, {} signed heads, {} signed decision(s) verified under their deciders' enrolled keys",
                r.audit.events, r.audit.heads, r.audit.decisions
            )
        } else {
            format!("FAILED — {}", r.audit.problem.as_deref().unwrap_or(""))
        }
    );
    outln!("done in {:.1} s", took.as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(&cli))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        // The reader of our output stopped reading: not an error of ours.
        Err(e) if out::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The local detail (this is the user's own machine), through the last net: an inner
            // error quoting part of a file shows no direct identifier.
            errln!("error: {}", shh_hub::redact(&chain(&e)));
            ExitCode::from(kind_of(&e).exit_code())
        }
    };
    // A cancelled command may leave a spawned step (a part upload) behind: do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// The kind of a failed command: its hub error's, or invalid input for what the CLI itself
/// refused (a flag, a file it could not read).
fn kind_of(e: &anyhow::Error) -> ErrorKind {
    e.chain()
        .find_map(|c| c.downcast_ref::<HubError>())
        .map_or(ErrorKind::InvalidInput, HubError::kind)
}

fn chain(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for c in e.chain().skip(1) {
        let c = c.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}
