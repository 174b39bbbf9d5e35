//! Research access through the hub: users and their credentials ([`users`]), projects
//! ([`projects`]) and permits ([`permits`]). The rules are `shh_access`'s; this module loads
//! the records, asks, signs what a decider decides with their own key, stores the outcome and
//! records every decision, allowed or refused, in the audit log (the rule that refused named
//! in the event).
//!
//! [`Hub::allow`] is the one door of the command × role table: every operation of the hub
//! passes it first.

pub mod airlock;
pub mod permits;
pub mod projects;
pub mod register;
pub mod users;

use crate::core::Call;
use crate::{Hub, HubError, Result, Session};
use shh_access::{Action, Denied};
use shh_audit::Draft;

/// A new id: `prefix-` and 12 random hex digits.
pub(crate) fn new_id(prefix: &str) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &u[..12])
}

impl Call<'_> {
    /// Passes the command × role table, or records the refusal and returns it.
    pub(crate) async fn allow(&self, action: Action) -> Result<()> {
        if self.session.may(action) {
            return Ok(());
        }
        let roles: Vec<&str> = shh_access::role::allowed(action)
            .iter()
            .map(|r| r.as_str())
            .collect();
        let reason = format!(
            "{} may not {}: it takes one of the roles {}",
            self.session.principal(),
            action_name(action),
            roles.join(", ")
        );
        let e = Denied {
            rule: "role",
            reason,
        };
        self.record(
            Draft::new("access.denied")
                .detail("action", action_name(action))
                .detail("rule", e.rule)
                .refused(e.reason.clone()),
        )
        .await?;
        Err(e.into())
    }

    /// Passes a rule's verdict: a refusal is recorded as `event` refused (its rule named) and
    /// returned as [`HubError::Denied`].
    pub(crate) async fn enforce(&self, event: &Draft, verdict: Result<(), Denied>) -> Result<()> {
        let Err(denied) = verdict else {
            return Ok(());
        };
        self.record(
            event
                .clone()
                .detail("rule", denied.rule)
                .refused(denied.reason.clone()),
        )
        .await?;
        Err(HubError::Denied(denied))
    }
}

/// The command an action stands for, as the table names it.
pub(crate) fn action_name(action: Action) -> &'static str {
    shh_access::RULES
        .iter()
        .find(|(a, _, _)| *a == action)
        .map_or("do this", |(_, name, _)| name)
}

impl Hub {
    /// Passes the command × role table for `action`, or records the refusal (`access.denied`)
    /// and returns [`HubError::Denied`].
    pub async fn allow(&self, s: &Session, action: Action) -> Result<()> {
        let core = self.core.read().await;
        Call::new(&core, s, &shh_task::Task::silent())
            .allow(action)
            .await
    }
}
