//! Permits: asked for by a project member (a request, optional), granted in one signed step by a member of the access committee who does not work
//! in the project, to the project's researchers, for one dataset (pinned to a version, or
//! following the current one), its columns and a row predicate, in aggregate or extract mode,
//! from one instant until another. A permit expires by itself; a revocation ends it at once.
//!
//! The grant's statement (`shh_access::statement`) is signed with the granter's own key and
//! goes, with the signature and the key, into the `permit.grant` event: an auditor checks it
//! offline against the key the granter's `user.enroll` event shows.

use crate::core::Call;
use crate::ops::DatasetRef;
use crate::{Hub, Result, Session};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shh_access::statement::{DOMAIN, Statement, statement_bytes};
use shh_access::{
    Action, ApplicationDecision, ApplicationState, Permit, PermitApplication, PermitState,
    PermitTerms, Project, Revocation,
};
use shh_audit::Draft;

/// `shh permit grant`: the terms asked for. `version` may be a unique prefix; the permit
/// records the full id it resolves to.
pub type PermitGrantRequest = PermitTerms;

/// `shh permit revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitRevokeRequest {
    /// The permit.
    pub permit: String,
    /// Why.
    pub reason: String,
}

/// `shh permit request`: the terms a project member asks for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitApplyRequest {
    /// The terms.
    #[serde(flatten)]
    pub terms: PermitTerms,
    /// Why.
    pub reason: String,
}

/// `shh permit grant --request`, `shh permit refuse`: the committee's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitDecideRequest {
    /// The request (`prq-…`).
    pub request: String,
    /// Why (required for a refusal).
    #[serde(default)]
    pub note: String,
}

/// A permit request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationView {
    /// The request.
    #[serde(flatten)]
    pub application: PermitApplication,
    /// Its state.
    pub state: ApplicationState,
}

impl ApplicationView {
    fn of(application: PermitApplication) -> Self {
        let state = application.state();
        Self { application, state }
    }
}

/// What a refusal's signature covers.
#[derive(Debug, Serialize)]
struct Refuse<'a> {
    request: &'a str,
    terms: &'a PermitTerms,
    note: &'a str,
    refused_at: DateTime<Utc>,
}

/// A permit and where it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitView {
    /// The permit.
    #[serde(flatten)]
    pub permit: Permit,
    /// Its state when read.
    pub state: PermitState,
}

impl PermitView {
    fn now(permit: Permit) -> Self {
        let state = permit.state(Utc::now());
        Self { permit, state }
    }
}

/// What a grant's signature covers.
#[derive(Debug, Serialize)]
struct Grant<'a> {
    permit: &'a str,
    terms: &'a PermitTerms,
    granted_at: DateTime<Utc>,
    /// The request it grants, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'a str>,
}

/// What a revocation's signature covers.
#[derive(Debug, Serialize)]
struct Revoke<'a> {
    permit: &'a str,
    revocation: &'a Revocation,
}

/// A decision signed with the decider's own key.
pub(crate) struct Signature {
    /// The statement signed (JSON).
    pub(crate) statement: String,
    /// Base64.
    pub(crate) signature: String,
    /// Hex.
    pub(crate) public_key: String,
}

impl Signature {
    /// `event` carrying the three, so the audit verifier can check it offline.
    pub(crate) fn on(&self, event: Draft) -> Draft {
        event
            .detail("statement", self.statement.clone())
            .detail("signature", self.signature.clone())
            .detail("public_key", self.public_key.clone())
    }
}

impl Call<'_> {
    /// Signs `decision` of `kind` with the session's own key.
    pub(crate) fn sign<T: Serialize>(&self, kind: &str, decision: &T) -> Result<Signature> {
        let key = self.session.key()?;
        let statement = Statement {
            kind,
            hub: &self.config.hub_id,
            by: self.session.principal(),
            decision,
        };
        let bytes = statement_bytes(&statement).map_err(crate::HubError::Internal)?;
        let signature = key.signer().sign_document(DOMAIN, &bytes);
        let statement =
            String::from_utf8(bytes).map_err(|e| crate::HubError::Internal(e.to_string()))?;
        Ok(Signature {
            statement,
            signature,
            public_key: hex::encode(key.signer().public().bytes()),
        })
    }

    /// The terms as they will be kept: names and texts checked, the dataset and its columns
    /// there, the predicate parsed against the version's schema, a pinned version resolved
    /// to its full id.
    async fn checked_terms(&self, req: &PermitTerms) -> Result<PermitTerms> {
        let r = DatasetRef {
            name: req.dataset.clone(),
            version: req.version.clone(),
        };
        if let Some(p) = &req.predicate {
            crate::guard::check("the permit's row predicate", p)?;
        }
        shh_dataset::validate_name(&r.name)?;
        let view = self.show(&r).await?;
        if let Some(cols) = &req.columns {
            for c in cols {
                if !view.columns.iter().any(|(n, _)| n == c) {
                    return Err(shh_access::Invalid {
                        field: "columns",
                        reason: format!("{} has no column {c:?}", view.reference),
                    }
                    .into());
                }
            }
        }
        if let Some(p) = &req.predicate {
            // Parsed now, against the version's schema: a predicate that does not read, or
            // reads more than the row (a subquery), is refused at the grant, not at each use.
            let rec = self.catalog.version(&r.name, Some(&view.id)).await?;
            let manifest = shh_dataset::load_manifest(&self.store, &rec).await?;
            let sandbox = shh_query::Sandbox::new(shh_query::Limits::default())
                .map_err(|e| crate::HubError::Internal(e.to_string()))?;
            shh_query::view::check_predicate(&sandbox, &manifest.schema, p).map_err(|e| {
                shh_access::Invalid {
                    field: "predicate",
                    reason: match e {
                        shh_query::QueryError::Refused(r) => r.reason,
                        other => other.to_string(),
                    },
                }
            })?;
        }
        Ok(PermitTerms {
            version: r.version.as_ref().map(|_| view.id.clone()),
            ..req.clone()
        })
    }

    async fn grant(
        &self,
        req: &PermitGrantRequest,
        application: Option<&PermitApplication>,
    ) -> Result<PermitView> {
        self.allow(Action::GrantPermit).await?;
        self.ensure_writable()?;
        let r = DatasetRef {
            name: req.dataset.clone(),
            version: req.version.clone(),
        };
        let mut event = Draft::new("permit.grant")
            .project(req.project.clone())
            .dataset(r.shown());
        if let Some(a) = application {
            event = event.detail("request", a.id.clone());
        }
        // Signed decisions need a proven user before anything else is looked at.
        self.session.key()?;
        let project = self.catalog.project(&req.project).await?;
        let terms = self.checked_terms(req).await?;
        let mut recipients = Vec::new();
        for name in &terms.to {
            match self.catalog.principal(name).await {
                Ok(p) => recipients.push(p),
                Err(shh_catalog::CatalogError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let verdict = shh_access::check_grant(
            self.session.principal(),
            self.session.grants(),
            &project,
            &terms,
            &recipients,
        );
        self.enforce(&event, verdict).await?;
        if let Some(a) = application {
            self.enforce(&event, shh_access::check_decide(a)).await?;
        }
        let id = super::new_id("pmt");
        let granted_at = Utc::now();
        let signed = self.sign(
            "permit.grant",
            &Grant {
                permit: &id,
                terms: &terms,
                granted_at,
                request: application.map(|a| a.id.as_str()),
            },
        )?;
        let event = signed.on(event.permit(id.clone()).detail("mode", req.mode.as_str()));
        let permit = Permit {
            id,
            terms,
            granted_by: self.session.principal().to_owned(),
            granted_at,
            signature: signed.signature,
            public_key: signed.public_key,
            revoked: None,
        };
        let decided = application.map(|a| PermitApplication {
            decision: Some(ApplicationDecision {
                by: permit.granted_by.clone(),
                at: granted_at,
                permit: Some(permit.id.clone()),
                note: String::new(),
            }),
            ..a.clone()
        });
        self.recorded(event, async {
            // The request is decided first, and only if no one decided it meanwhile; should
            // the permit then fail to be stored, the request is pending again.
            if let (Some(a), Some(d)) = (application, &decided) {
                self.catalog.change_application(a, d).await?;
            }
            if let Err(e) = self.catalog.add_permit(&permit).await {
                if let (Some(a), Some(d)) = (application, &decided) {
                    let _ = self.catalog.change_application(d, a).await;
                }
                return Err(e.into());
            }
            Ok(())
        })
        .await?;
        Ok(PermitView::now(permit))
    }

    async fn apply(&self, req: &PermitApplyRequest) -> Result<ApplicationView> {
        self.allow(Action::RequestPermit).await?;
        self.ensure_writable()?;
        crate::guard::check("the request's reason", &req.reason)?;
        shh_access::model::validate_text("reason", &req.reason, true)?;
        let t = &req.terms;
        let event = Draft::new("permit.request")
            .project(t.project.clone())
            .dataset(
                DatasetRef {
                    name: t.dataset.clone(),
                    version: t.version.clone(),
                }
                .shown(),
            );
        // Another project is not found, as everywhere a researcher looks.
        let project = self.visible_project(&t.project).await?;
        let terms = self.checked_terms(t).await?;
        let verdict = shh_access::check_apply(
            self.session.principal(),
            self.session.grants(),
            &project,
            &terms,
        );
        self.enforce(&event, verdict).await?;
        let application = PermitApplication {
            id: super::new_id("prq"),
            terms,
            reason: req.reason.clone(),
            requested_by: self.session.principal().to_owned(),
            requested_at: Utc::now(),
            decision: None,
        };
        let event = event
            .detail("request", application.id.clone())
            .detail("mode", application.terms.mode.as_str());
        self.recorded(event, async {
            Ok(self.catalog.add_application(&application).await?)
        })
        .await?;
        Ok(ApplicationView::of(application))
    }

    async fn refuse(&self, req: &PermitDecideRequest) -> Result<ApplicationView> {
        self.allow(Action::GrantPermit).await?;
        self.ensure_writable()?;
        self.session.key()?;
        crate::guard::check("the refusal's note", &req.note)?;
        shh_access::model::validate_text("note", &req.note, true)?;
        let application = self.catalog.application(&req.request).await?;
        let project = self.catalog.project(&application.terms.project).await?;
        let event = Draft::new("permit.refuse")
            .project(project.id.clone())
            .detail("request", application.id.clone());
        let verdict = shh_access::check_refuse(
            self.session.principal(),
            self.session.grants(),
            &project,
            &application,
        );
        self.enforce(&event, verdict).await?;
        let refused_at = Utc::now();
        let signed = self.sign(
            "permit.refuse",
            &Refuse {
                request: &application.id,
                terms: &application.terms,
                note: &req.note,
                refused_at,
            },
        )?;
        let decided = PermitApplication {
            decision: Some(ApplicationDecision {
                by: self.session.principal().to_owned(),
                at: refused_at,
                permit: None,
                note: req.note.clone(),
            }),
            ..application.clone()
        };
        self.recorded(signed.on(event), async {
            Ok(self
                .catalog
                .change_application(&application, &decided)
                .await?)
        })
        .await?;
        Ok(ApplicationView::of(decided))
    }

    async fn revoke(&self, req: &PermitRevokeRequest) -> Result<PermitView> {
        self.allow(Action::RevokePermit).await?;
        self.ensure_writable()?;
        crate::guard::check("the revocation's reason", &req.reason)?;
        shh_access::model::validate_text("reason", &req.reason, true)?;
        let mut permit = self.catalog.permit(&req.permit).await?;
        let event = Draft::new("permit.revoke")
            .project(permit.terms.project.clone())
            .permit(permit.id.clone());
        self.enforce(&event, shh_access::check_revoke(&permit))
            .await?;
        let revocation = Revocation {
            by: self.session.principal().to_owned(),
            at: Utc::now(),
            reason: req.reason.clone(),
        };
        let mut event = event.detail("reason", req.reason.clone());
        // A committee member signs; an operator ending a permit in an emergency may not have
        // a key of their own, and the event says so by carrying none.
        if self.session.is_user() {
            let signed = self.sign(
                "permit.revoke",
                &Revoke {
                    permit: &permit.id,
                    revocation: &revocation,
                },
            )?;
            event = signed.on(event);
        }
        self.recorded(event, async {
            Ok(self.catalog.revoke_permit(&permit.id, &revocation).await?)
        })
        .await?;
        permit.revoked = Some(revocation);
        Ok(PermitView::now(permit))
    }

    /// The permit `id` and its project, if this session may work under it now; a refusal is
    /// recorded (`permit.use`, the rule named).
    pub(crate) async fn usable_permit(&self, id: &str) -> Result<(Permit, Project)> {
        self.allow(Action::Query).await?;
        let event = Draft::new("permit.use").permit(id.to_owned());
        let permit = match self.catalog.permit(id).await {
            Ok(p) => p,
            Err(e) => {
                self.record(event.failed(e.to_string())).await?;
                return Err(e.into());
            }
        };
        let project = self.catalog.project(&permit.terms.project).await?;
        let event = event.project(project.id.clone());
        let verdict = shh_access::check_use(
            &permit,
            &project,
            self.session.principal(),
            self.session.grants(),
            Utc::now(),
        );
        self.enforce(&event, verdict).await?;
        Ok((permit, project))
    }
}

/// The permit operations.
impl Hub {
    /// Grants a permit: one signed step by a committee member outside the project.
    pub async fn permit_grant(&self, s: &Session, req: &PermitGrantRequest) -> Result<PermitView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .grant(req, None)
            .await
    }

    /// A project member asks for a permit; the committee decides later.
    pub async fn permit_request(
        &self,
        s: &Session,
        req: &PermitApplyRequest,
    ) -> Result<ApplicationView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .apply(req)
            .await
    }

    /// Grants a request as asked: the one signed step, under every rule of a grant.
    pub async fn permit_grant_request(
        &self,
        s: &Session,
        req: &PermitDecideRequest,
    ) -> Result<PermitView> {
        let core = self.core.read().await;
        let task = shh_task::Task::silent();
        let call = Call::new(&core, s, &task);
        call.allow(Action::GrantPermit).await?;
        let application = core.catalog.application(&req.request).await?;
        call.grant(&application.terms, Some(&application)).await
    }

    /// Refuses a request (signed, with a note).
    pub async fn permit_refuse(
        &self,
        s: &Session,
        req: &PermitDecideRequest,
    ) -> Result<ApplicationView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .refuse(req)
            .await
    }

    /// The permit requests of a project this session may see (or of every such project).
    pub async fn permit_requests(
        &self,
        s: &Session,
        project: Option<&str>,
    ) -> Result<Vec<ApplicationView>> {
        let core = self.core.read().await;
        let task = shh_task::Task::silent();
        let call = Call::new(&core, s, &task);
        let mut out = Vec::new();
        for p in call.listed_projects(project).await? {
            out.extend(
                core.catalog
                    .applications(Some(&p))
                    .await?
                    .into_iter()
                    .map(ApplicationView::of),
            );
        }
        Ok(out)
    }

    /// Revokes a permit at once.
    pub async fn permit_revoke(
        &self,
        s: &Session,
        req: &PermitRevokeRequest,
    ) -> Result<PermitView> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .revoke(req)
            .await
    }

    /// The permits of a project this session may see (or of every such project).
    pub async fn permits(&self, s: &Session, project: Option<&str>) -> Result<Vec<PermitView>> {
        let core = self.core.read().await;
        let task = shh_task::Task::silent();
        let call = Call::new(&core, s, &task);
        let mut out = Vec::new();
        for p in call.listed_projects(project).await? {
            out.extend(
                core.catalog
                    .permits(Some(&p))
                    .await?
                    .into_iter()
                    .map(PermitView::now),
            );
        }
        Ok(out)
    }

    /// One permit, if this session may see its project.
    pub async fn permit(&self, s: &Session, id: &str) -> Result<PermitView> {
        let core = self.core.read().await;
        let task = shh_task::Task::silent();
        let call = Call::new(&core, s, &task);
        let p = core.catalog.permit(id).await?;
        call.visible_project(&p.terms.project).await?;
        Ok(PermitView::now(p))
    }

    /// Checks that this session may work under permit `id` now (a recipient, a member, the
    /// permit neither expired, revoked nor not yet valid); the refusal is recorded.
    pub async fn permit_check(&self, s: &Session, id: &str) -> Result<PermitView> {
        let core = self.core.read().await;
        let (p, _) = Call::new(&core, s, &shh_task::Task::silent())
            .usable_permit(id)
            .await?;
        Ok(PermitView::now(p))
    }
}
