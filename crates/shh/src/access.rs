//! `shh user`, `shh project`, `shh permit`: research access. Each command fills the hub's
//! request from its flags and prints the response; every rule is the hub's. Commands that
//! create something print its id, and with `--json` the whole record.

use crate::{open, passphrase, print_json};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use shh_hub::access::permits::{
    ApplicationView, PermitApplyRequest, PermitDecideRequest, PermitGrantRequest,
    PermitRevokeRequest, PermitView,
};
use shh_hub::access::projects::{AddMemberRequest, ProjectCreateRequest};
use shh_hub::access::users::{UserAddRequest, UserEnrollRequest};
use shh_hub::ops::DatasetRef;
use shh_hub::{Mode, Project, Role};
use std::path::Path;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user with their roles (operators only); they enroll a credential next.
    Add {
        /// User name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// A role: operator, producer, custodian, researcher, committee, checker, auditor.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
    },
    /// Enroll a user's credential: a key pair sealed under their own passphrase
    /// (`SHH_USER_PASSPHRASE` or a prompt). An operator enrolls a user's first one; a user
    /// replaces their own with `--as` themselves.
    Enroll {
        /// User name.
        name: String,
    },
    /// List users, their roles and key fingerprints.
    List,
}

#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Create a research project (a researcher creating it becomes its first member).
    Create {
        /// Title.
        #[arg(long)]
        title: String,
        /// Purpose.
        #[arg(long)]
        purpose: String,
        /// Legal basis (GDPR article, authorization).
        #[arg(long)]
        legal_basis: Option<String>,
        /// Data controller.
        #[arg(long)]
        controller: Option<String>,
        /// Another member (a researcher).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Add a researcher to a project.
    AddMember {
        /// Project id.
        project: String,
        /// User name.
        user: String,
    },
    /// List the projects you may see.
    List,
    /// Show one project.
    Show {
        /// Project id.
        project: String,
    },
}

/// A permit's terms, as `permit request` and `permit grant` take them.
#[derive(Args)]
pub struct TermsArgs {
    /// Project id.
    #[arg(long)]
    project: Option<String>,
    /// NAME (follows the current version) or NAME@VERSION (pinned, reproducible).
    #[arg(long)]
    dataset: Option<String>,
    /// Columns it may see (default: all), comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Row predicate (SQL) applied beneath every query.
    #[arg(long = "where")]
    predicate: Option<String>,
    /// aggregate or extract.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Valid from (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Until (exclusive; RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    until: Option<String>,
    /// Recipients (researchers of the project).
    #[arg(long = "to", num_args = 1..)]
    to: Vec<String>,
}

impl TermsArgs {
    fn given(&self) -> bool {
        self.project.is_some()
            || self.dataset.is_some()
            || !self.columns.is_empty()
            || self.predicate.is_some()
            || self.mode.is_some()
            || self.from.is_some()
            || self.until.is_some()
            || !self.to.is_empty()
    }

    fn terms(self) -> Result<PermitGrantRequest> {
        fn needed<T>(flag: &str, v: Option<T>) -> Result<T> {
            v.with_context(|| format!("{flag} is required"))
        }
        if self.to.is_empty() {
            bail!("--to is required (the researchers of the project it is for)");
        }
        let d = DatasetRef::parse(&needed("--dataset", self.dataset)?)?;
        Ok(PermitGrantRequest {
            project: needed("--project", self.project)?,
            dataset: d.name,
            version: d.version,
            columns: (!self.columns.is_empty()).then_some(self.columns),
            predicate: self.predicate,
            mode: needed("--mode", self.mode)?,
            from: parse_time("from", &needed("--from", self.from)?)?,
            until: parse_time("until", &needed("--until", self.until)?)?,
            to: self.to.into_iter().collect(),
        })
    }
}

#[derive(Subcommand)]
pub enum PermitCmd {
    /// Ask for a permit, as a researcher of the project: the terms and why. The access
    /// committee grants it (`permit grant --request`) or refuses it.
    Request {
        #[command(flatten)]
        terms: TermsArgs,
        /// Why: the research question the terms serve.
        #[arg(long)]
        reason: String,
    },
    /// Grant a permit: one signed step by an access-committee member outside the project,
    /// on the terms given, or on those a request asked for (`--request`).
    Grant {
        #[command(flatten)]
        terms: TermsArgs,
        /// Grant this request (`prq-…`) as asked, instead of terms given here.
        #[arg(long)]
        request: Option<String>,
    },
    /// Refuse a permit request (signed), saying why.
    Refuse {
        /// Request id (`prq-…`).
        request: String,
        /// Why.
        #[arg(long)]
        note: String,
    },
    /// List the permit requests of a project (or of every project you may see).
    Requests {
        /// Project id.
        #[arg(long)]
        project: Option<String>,
    },
    /// End a permit at once.
    Revoke {
        /// Permit id.
        permit: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// List the permits of a project (or of every project you may see).
    List {
        /// Project id.
        #[arg(long)]
        project: Option<String>,
    },
    /// Show one permit.
    Show {
        /// Permit id.
        permit: String,
    },
    /// Check that you may work under a permit now.
    Check {
        /// Permit id.
        permit: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!(
            "unknown role {s:?} (one of: {})",
            Role::ALL.map(|r| r.as_str()).join(", ")
        )
    })
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("unknown mode {s:?} (aggregate or extract)"))
}

/// RFC 3339, or a date (midnight UTC).
pub(crate) fn parse_time(flag: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("--{flag} {s:?}: not RFC 3339 nor YYYY-MM-DD"))?;
    match d.and_hms_opt(0, 0, 0) {
        Some(t) => Ok(t.and_utc()),
        None => bail!("--{flag} {s:?}: not a time"),
    }
}

pub async fn user(cmd: UserCmd, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    match cmd {
        UserCmd::Add { name, roles } => {
            let u = hub.user_add(&s, &UserAddRequest { name, roles }).await?;
            if json {
                print_json(&u)?;
            } else {
                outln!("{}", u.name);
            }
        }
        UserCmd::Enroll { name } => {
            let p = passphrase(
                &format!("New passphrase for user {name}: "),
                true,
                "SHH_USER_PASSPHRASE",
            )?;
            let u = hub
                .user_enroll(
                    &s,
                    &UserEnrollRequest {
                        name,
                        passphrase: p,
                    },
                )
                .await?;
            if json {
                print_json(&u)?;
            } else {
                outln!(
                    "{} enrolled: key {}",
                    u.name,
                    u.fingerprint.unwrap_or_default()
                );
            }
        }
        UserCmd::List => {
            let users = hub.users(&s).await?;
            if json {
                print_json(&users)?;
            } else {
                for u in users {
                    let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                    outln!(
                        "{:<20} {:<40} {}",
                        u.name,
                        roles.join(","),
                        u.fingerprint.as_deref().unwrap_or("(not enrolled)")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_project(p: &Project) -> Result<()> {
    outln!("{}  {}", p.id, p.title);
    outln!("  purpose:     {}", p.purpose);
    if let Some(l) = &p.legal_basis {
        outln!("  legal basis: {l}");
    }
    if let Some(c) = &p.controller {
        outln!("  controller:  {c}");
    }
    outln!(
        "  members:     {}",
        p.members.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

pub async fn project(cmd: ProjectCmd, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    match cmd {
        ProjectCmd::Create {
            title,
            purpose,
            legal_basis,
            controller,
            members,
        } => {
            let p = hub
                .project_create(
                    &s,
                    &ProjectCreateRequest {
                        title,
                        purpose,
                        legal_basis,
                        controller,
                        members,
                    },
                )
                .await?;
            if json {
                print_json(&p)?;
            } else {
                outln!("{}", p.id);
            }
        }
        ProjectCmd::AddMember { project, user } => {
            let p = hub
                .project_add_member(&s, &AddMemberRequest { project, user })
                .await?;
            if json {
                print_json(&p)?;
            } else {
                print_project(&p)?;
            }
        }
        ProjectCmd::List => {
            let ps = hub.projects(&s).await?;
            if json {
                print_json(&ps)?;
            } else {
                for p in &ps {
                    outln!("{}  {}", p.id, p.title);
                }
            }
        }
        ProjectCmd::Show { project } => {
            let p = hub.project(&s, &project).await?;
            if json {
                print_json(&p)?;
            } else {
                print_project(&p)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A permit's terms, as a permit and a request show them.
fn print_terms(t: &PermitGrantRequest) -> Result<()> {
    outln!("  project:  {}", t.project);
    match &t.version {
        Some(ver) => outln!("  dataset:  {}@{ver} (pinned)", t.dataset),
        None => outln!("  dataset:  {} (current version)", t.dataset),
    }
    outln!("  mode:     {}", t.mode.as_str());
    if let Some(c) = &t.columns {
        outln!("  columns:  {}", c.join(", "));
    }
    if let Some(p) = &t.predicate {
        outln!("  where:    {p}");
    }
    outln!("  valid:    {} → {}", t.from, t.until);
    outln!(
        "  to:       {}",
        t.to.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn print_application(v: &ApplicationView) -> Result<()> {
    let a = &v.application;
    let t = &a.terms;
    outln!("{}  {}", a.id, v.state.as_str());
    print_terms(t)?;
    outln!("  reason:   {}", a.reason);
    outln!("  asked:    by {} at {}", a.requested_by, a.requested_at);
    if let Some(d) = &a.decision {
        match &d.permit {
            Some(p) => outln!("  granted:  by {} at {} as {p}", d.by, d.at),
            None => outln!("  refused:  by {} at {}: {}", d.by, d.at, d.note),
        }
    }
    Ok(())
}

fn print_permit(v: &PermitView) -> Result<()> {
    let t = &v.permit.terms;
    let state = serde_json::to_value(v.state)
        .ok()
        .and_then(|s| s.as_str().map(str::to_owned))
        .unwrap_or_default();
    outln!("{}  {state}", v.permit.id);
    print_terms(t)?;
    outln!(
        "  granted:  by {} at {}",
        v.permit.granted_by,
        v.permit.granted_at
    );
    if let Some(r) = &v.permit.revoked {
        outln!("  revoked:  by {} at {}: {}", r.by, r.at, r.reason);
    }
    Ok(())
}

pub async fn permit(cmd: PermitCmd, hub: &Path, json: bool) -> Result<ExitCode> {
    let (hub, s) = open(hub).await?;
    let (v, id_only) = match cmd {
        PermitCmd::Request { terms, reason } => {
            let req = PermitApplyRequest {
                terms: terms.terms()?,
                reason,
            };
            let v = hub.permit_request(&s, &req).await?;
            if json {
                print_json(&v)?;
            } else {
                outln!("{}", v.application.id);
            }
            return Ok(ExitCode::SUCCESS);
        }
        PermitCmd::Grant { terms, request } => match request {
            Some(request) => {
                if terms.given() {
                    bail!("--request grants the terms the request asked for: give no other terms");
                }
                let req = PermitDecideRequest {
                    request,
                    note: String::new(),
                };
                (hub.permit_grant_request(&s, &req).await?, true)
            }
            None => (hub.permit_grant(&s, &terms.terms()?).await?, true),
        },
        PermitCmd::Refuse { request, note } => {
            let v = hub
                .permit_refuse(&s, &PermitDecideRequest { request, note })
                .await?;
            if json {
                print_json(&v)?;
            } else {
                print_application(&v)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        PermitCmd::Requests { project } => {
            let all = hub.permit_requests(&s, project.as_deref()).await?;
            if json {
                print_json(&all)?;
            } else {
                for v in &all {
                    print_application(v)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        PermitCmd::Revoke { permit, reason } => (
            hub.permit_revoke(&s, &PermitRevokeRequest { permit, reason })
                .await?,
            false,
        ),
        PermitCmd::List { project } => {
            let all = hub.permits(&s, project.as_deref()).await?;
            if json {
                print_json(&all)?;
            } else {
                for v in &all {
                    print_permit(v)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        PermitCmd::Show { permit } => (hub.permit(&s, &permit).await?, false),
        PermitCmd::Check { permit } => (hub.permit_check(&s, &permit).await?, false),
    };
    if json {
        print_json(&v)?;
    } else if id_only {
        outln!("{}", v.permit.id);
    } else {
        print_permit(&v)?;
    }
    Ok(ExitCode::SUCCESS)
}
