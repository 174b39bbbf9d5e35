//! Projects: created by a researcher (who becomes its first member) or an operator, with a
//! title, a purpose, and optionally a legal basis and a controller, each checked by the
//! identifier guard before it is stored (they are published in the register).

use crate::core::Call;
use crate::{Hub, Result, Session};
use serde::{Deserialize, Serialize};
use shh_access::{Action, Project, Role};
use shh_audit::Draft;
use std::collections::BTreeSet;

/// `shh project create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectCreateRequest {
    /// Title.
    pub title: String,
    /// Purpose.
    pub purpose: String,
    /// Legal basis.
    #[serde(default)]
    pub legal_basis: Option<String>,
    /// Data controller.
    #[serde(default)]
    pub controller: Option<String>,
    /// Members besides the creator (researchers).
    #[serde(default)]
    pub members: Vec<String>,
}

/// `shh project add-member`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMemberRequest {
    /// The project.
    pub project: String,
    /// The user.
    pub user: String,
}

impl Call<'_> {
    /// The project `id`, if this session may see it: members see their own projects, the
    /// roles that oversee (operator, committee, checker, auditor) see every one.
    pub(crate) async fn visible_project(&self, id: &str) -> Result<Project> {
        self.allow(Action::ShowProjects).await?;
        let p = self.catalog.project(id).await?;
        if self.oversees() || p.members.contains(self.session.principal()) {
            Ok(p)
        } else {
            // As if it did not exist: a project's existence is not a researcher's business.
            Err(shh_catalog::CatalogError::NotFound {
                what: "project",
                id: id.to_owned(),
            }
            .into())
        }
    }

    /// The projects this session may see, oldest first.
    pub(crate) async fn visible_projects(&self) -> Result<Vec<Project>> {
        self.allow(Action::ShowProjects).await?;
        let all = self.catalog.projects().await?;
        Ok(if self.oversees() {
            all
        } else {
            all.into_iter()
                .filter(|p| p.members.contains(self.session.principal()))
                .collect()
        })
    }

    /// The ids of the projects a listing covers: `project` if this session may see it (not
    /// found otherwise), else every project it may see.
    pub(crate) async fn listed_projects(&self, project: Option<&str>) -> Result<Vec<String>> {
        Ok(match project {
            Some(p) => vec![self.visible_project(p).await?.id],
            None => self
                .visible_projects()
                .await?
                .into_iter()
                .map(|p| p.id)
                .collect(),
        })
    }

    pub(crate) fn oversees(&self) -> bool {
        let g = self.session.grants();
        [
            Role::Operator,
            Role::Committee,
            Role::Checker,
            Role::Auditor,
        ]
        .iter()
        .any(|r| g.contains(r))
    }

    async fn create_project(&self, req: &ProjectCreateRequest) -> Result<Project> {
        self.allow(Action::CreateProject).await?;
        self.ensure_writable()?;
        for (what, text) in [
            ("the project's title", Some(&req.title)),
            ("the project's purpose", Some(&req.purpose)),
            ("the project's legal basis", req.legal_basis.as_ref()),
            ("the project's controller", req.controller.as_ref()),
        ] {
            if let Some(t) = text {
                crate::guard::check(what, t)?;
            }
        }
        let mut members: BTreeSet<String> = req.members.iter().cloned().collect();
        if self.session.is_user() && self.session.grants().contains(&Role::Researcher) {
            members.insert(self.session.principal().to_owned());
        }
        let p = Project {
            id: super::new_id("prj"),
            title: req.title.clone(),
            purpose: req.purpose.clone(),
            legal_basis: req.legal_basis.clone(),
            controller: req.controller.clone(),
            members,
            created_by: self.session.principal().to_owned(),
            created_at: chrono::Utc::now(),
        };
        p.validate()?;
        let event = Draft::new("project.create")
            .project(p.id.clone())
            .detail("title", p.title.clone())
            .detail(
                "members",
                p.members.iter().cloned().collect::<Vec<_>>().join(","),
            );
        for m in &p.members {
            let user = self.catalog.principal(m).await?;
            let verdict = shh_access::check_member(
                self.session.principal(),
                self.session.grants(),
                &p,
                &user,
            );
            self.enforce(&event, verdict).await?;
        }
        self.recorded(event, async { Ok(self.catalog.add_project(&p).await?) })
            .await?;
        Ok(p)
    }

    async fn add_member(&self, req: &AddMemberRequest) -> Result<Project> {
        self.allow(Action::CreateProject).await?;
        self.ensure_writable()?;
        let mut p = self.visible_project(&req.project).await?;
        let event = Draft::new("project.add-member")
            .project(p.id.clone())
            .detail("user", req.user.clone());
        let user = self.catalog.principal(&req.user).await?;
        let verdict =
            shh_access::check_member(self.session.principal(), self.session.grants(), &p, &user);
        self.enforce(&event, verdict).await?;
        self.recorded(event, async {
            Ok(self.catalog.add_member(&p.id, &req.user).await?)
        })
        .await?;
        p.members.insert(req.user.clone());
        Ok(p)
    }
}

/// The project operations.
impl Hub {
    /// Creates a project; its id is new.
    pub async fn project_create(&self, s: &Session, req: &ProjectCreateRequest) -> Result<Project> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .create_project(req)
            .await
    }

    /// Adds a member (a researcher) to a project.
    pub async fn project_add_member(&self, s: &Session, req: &AddMemberRequest) -> Result<Project> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .add_member(req)
            .await
    }

    /// The projects this session may see, oldest first.
    pub async fn projects(&self, s: &Session) -> Result<Vec<Project>> {
        let core = self.core.read().await;
        let task = shh_task::Task::silent();
        Call::new(&core, s, &task).visible_projects().await
    }

    /// One project, if this session may see it.
    pub async fn project(&self, s: &Session, id: &str) -> Result<Project> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .visible_project(id)
            .await
    }
}
