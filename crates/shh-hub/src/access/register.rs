//! The public register of projects (`shh register export`): what a health-data hub publishes
//! about the research it hosts (HDH's "répertoire public des projets"): each project's title,
//! purpose, controller and legal basis, the datasets it works on, its permits' modes and
//! dates, and whether it is active. Never who the researchers are, never a predicate (a
//! predicate can describe a cohort narrowly), never a query.

use crate::core::Call;
use crate::{Hub, Result, Session};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shh_access::{Action, PermitState};

/// One permit, as the register shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterPermit {
    /// The dataset.
    pub dataset: String,
    /// Aggregate or extract.
    pub mode: String,
    /// From.
    pub from: DateTime<Utc>,
    /// Until.
    pub until: DateTime<Utc>,
    /// Where it stands.
    pub status: PermitState,
}

/// One project, as the register shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterEntry {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Purpose.
    pub purpose: String,
    /// Data controller.
    pub controller: Option<String>,
    /// Legal basis.
    pub legal_basis: Option<String>,
    /// Datasets it has permits on.
    pub datasets: Vec<String>,
    /// Its permits.
    pub permits: Vec<RegisterPermit>,
    /// `active` (a permit in force), `approved` (a permit not yet in force) or `closed`.
    pub status: String,
}

/// The register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// When it was written.
    pub generated_at: DateTime<Utc>,
    /// The hub.
    pub hub: String,
    /// Every project.
    pub projects: Vec<RegisterEntry>,
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Register {
    /// The register as Markdown, for people.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "# Public register of projects\n\nHub {} · {}\n\n| project | title | purpose | controller | legal basis | datasets | permits | status |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
            self.hub,
            self.generated_at.format("%Y-%m-%d %H:%M UTC")
        );
        for p in &self.projects {
            let permits: Vec<String> = p
                .permits
                .iter()
                .map(|q| {
                    format!(
                        "{} {} {} → {}",
                        q.dataset,
                        q.mode,
                        q.from.format("%Y-%m-%d"),
                        q.until.format("%Y-%m-%d")
                    )
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                p.id,
                cell(&p.title),
                cell(&p.purpose),
                cell(p.controller.as_deref().unwrap_or("")),
                cell(p.legal_basis.as_deref().unwrap_or("")),
                p.datasets.join(", "),
                permits.join("; "),
                p.status
            ));
        }
        out
    }
}

impl Call<'_> {
    async fn register(&self) -> Result<Register> {
        self.allow(Action::Register).await?;
        let now = Utc::now();
        let mut projects = Vec::new();
        for p in self.catalog.projects().await? {
            let permits: Vec<RegisterPermit> = self
                .catalog
                .permits(Some(&p.id))
                .await?
                .into_iter()
                .map(|q| RegisterPermit {
                    status: q.state(now),
                    dataset: q.terms.dataset,
                    mode: q.terms.mode.as_str().to_owned(),
                    from: q.terms.from,
                    until: q.terms.until,
                })
                .collect();
            let mut datasets: Vec<String> = permits.iter().map(|q| q.dataset.clone()).collect();
            datasets.sort();
            datasets.dedup();
            let status = if permits.iter().any(|q| q.status == PermitState::Active) {
                "active"
            } else if permits.iter().any(|q| q.status == PermitState::NotYetValid) {
                "approved"
            } else if permits.is_empty() {
                "submitted"
            } else {
                "closed"
            };
            projects.push(RegisterEntry {
                id: p.id,
                title: p.title,
                purpose: p.purpose,
                controller: p.controller,
                legal_basis: p.legal_basis,
                datasets,
                permits,
                status: status.into(),
            });
        }
        Ok(Register {
            generated_at: now,
            hub: self.config.hub_id.clone(),
            projects,
        })
    }
}

impl Hub {
    /// The public register of projects.
    pub async fn register(&self, s: &Session) -> Result<Register> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .register()
            .await
    }
}
