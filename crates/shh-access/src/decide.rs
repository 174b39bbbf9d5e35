//! The rules of a permit request, of a grant, of a permit's use and of project membership. Each refusal names the
//! rule that fired (recorded in the audit event) and says why in words a user can act on.

use crate::model::{
    ApplicationState, Permit, PermitApplication, PermitState, PermitTerms, Principal, Project,
};
use crate::role::Role;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// A refusal: the rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (rule {rule})")]
pub struct Denied {
    /// The rule's stable name (`grant.not-a-member`…).
    pub rule: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn deny(rule: &'static str, reason: impl Into<String>) -> Result<(), Denied> {
    Err(Denied {
        rule,
        reason: reason.into(),
    })
}

/// Whether `granter` (holding `roles` in this session) may grant `terms` in `project` to
/// `recipients` (the principals `terms.to` names, as the catalog holds them).
///
/// A grant is the committee's: its member must not work in the project (no self-approval,
/// directly or through a colleague's permit), and may grant only to the project's members who
/// are researchers.
pub fn check_grant(
    granter: &str,
    roles: &BTreeSet<Role>,
    project: &Project,
    terms: &PermitTerms,
    recipients: &[Principal],
) -> Result<(), Denied> {
    if !roles.contains(&Role::Committee) {
        return deny(
            "grant.committee",
            "only a member of the access committee grants permits",
        );
    }
    if terms.project != project.id {
        return deny("grant.project", "the terms name another project");
    }
    if project.members.contains(granter) || terms.to.contains(granter) {
        return deny(
            "grant.not-a-member",
            format!(
                "{granter} works in project {}: a permit is granted by someone outside it",
                project.id
            ),
        );
    }
    if let Err(e) = terms.validate() {
        return deny("grant.terms", e.to_string());
    }
    for name in &terms.to {
        let Some(p) = recipients.iter().find(|p| &p.name == name) else {
            return deny("grant.recipient-known", format!("no user named {name}"));
        };
        if !project.members.contains(name) {
            return deny(
                "grant.recipient-member",
                format!("{name} is not a member of project {}", project.id),
            );
        }
        if !p.roles.contains(&Role::Researcher) {
            return deny(
                "grant.recipient-researcher",
                format!("{name} is not a researcher"),
            );
        }
    }
    Ok(())
}

/// Whether `user` (holding `roles`) may work under `permit` of `project` at `now`.
pub fn check_use(
    permit: &Permit,
    project: &Project,
    user: &str,
    roles: &BTreeSet<Role>,
    now: DateTime<Utc>,
) -> Result<(), Denied> {
    if !roles.contains(&Role::Researcher) {
        return deny("use.researcher", "only researchers work under permits");
    }
    if permit.terms.project != project.id {
        return deny("use.project", "the permit belongs to another project");
    }
    if !permit.terms.to.contains(user) {
        return deny(
            "use.recipient",
            format!("permit {} was not granted to {user}", permit.id),
        );
    }
    if !project.members.contains(user) {
        return deny(
            "use.member",
            format!("{user} is no longer a member of project {}", project.id),
        );
    }
    match permit.state(now) {
        PermitState::Active => Ok(()),
        PermitState::NotYetValid => deny(
            "use.not-yet-valid",
            format!("permit {} is valid from {}", permit.id, permit.terms.from),
        ),
        PermitState::Expired => deny(
            "use.expired",
            format!("permit {} expired at {}", permit.id, permit.terms.until),
        ),
        PermitState::Revoked => deny("use.revoked", format!("permit {} was revoked", permit.id)),
    }
}

/// Whether `adder` (holding `roles`) may add `new` to `project`: an operator, or a member of
/// the project who is a researcher; only researchers become members.
pub fn check_member(
    adder: &str,
    roles: &BTreeSet<Role>,
    project: &Project,
    new: &Principal,
) -> Result<(), Denied> {
    let member = project.members.contains(adder) && roles.contains(&Role::Researcher);
    if !member && !roles.contains(&Role::Operator) {
        return deny(
            "member.by-member",
            format!(
                "only a member of project {} or an operator adds members",
                project.id
            ),
        );
    }
    if !new.roles.contains(&Role::Researcher) {
        return deny(
            "member.researcher",
            format!("{} is not a researcher", new.name),
        );
    }
    Ok(())
}

/// Whether `requester` (holding `roles`) may ask for a permit on `terms` for `project`: a
/// researcher of the project, for terms that would pass as a grant's (recipients are checked
/// at the grant, against the users then).
pub fn check_apply(
    requester: &str,
    roles: &BTreeSet<Role>,
    project: &Project,
    terms: &PermitTerms,
) -> Result<(), Denied> {
    if !roles.contains(&Role::Researcher) {
        return deny(
            "request.researcher",
            "only a researcher of the project asks for its permits",
        );
    }
    if terms.project != project.id {
        return deny("request.project", "the terms name another project");
    }
    if !project.members.contains(requester) {
        return deny(
            "request.member",
            format!("{requester} is not a member of project {}", project.id),
        );
    }
    if let Err(e) = terms.validate() {
        return deny("request.terms", e.to_string());
    }
    Ok(())
}

/// Whether the committee may still decide on `application` (once: granted or refused).
pub fn check_decide(application: &PermitApplication) -> Result<(), Denied> {
    match application.state() {
        ApplicationState::Pending => Ok(()),
        done => deny(
            "request.pending",
            format!("request {} is already {}", application.id, done.as_str()),
        ),
    }
}

/// Whether `refuser` (holding `roles`) may refuse `application` of `project`: a committee
/// member outside the project (as for a grant), once.
pub fn check_refuse(
    refuser: &str,
    roles: &BTreeSet<Role>,
    project: &Project,
    application: &PermitApplication,
) -> Result<(), Denied> {
    if !roles.contains(&Role::Committee) {
        return deny(
            "grant.committee",
            "only a member of the access committee decides on permit requests",
        );
    }
    if project.members.contains(refuser) {
        return deny(
            "grant.not-a-member",
            format!(
                "{refuser} works in project {}: its requests are decided by someone outside it",
                project.id
            ),
        );
    }
    check_decide(application)
}

/// Whether `permit` may be revoked now (once).
pub fn check_revoke(permit: &Permit) -> Result<(), Denied> {
    if permit.revoked.is_some() {
        return deny(
            "revoke.once",
            format!("permit {} is already revoked", permit.id),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, Revocation};
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, day, 0, 0, 0)
            .single()
            .expect("date")
    }
    fn user(name: &str, roles: &[Role]) -> Principal {
        Principal {
            name: name.into(),
            roles: roles.iter().copied().collect(),
            credential: None,
            created_by: "admin".into(),
            created_at: at(1),
        }
    }
    fn project() -> Project {
        Project {
            id: "prj-1".into(),
            title: "Diabetes".into(),
            purpose: "Prevalence".into(),
            legal_basis: None,
            controller: None,
            members: ["rita".to_owned(), "rob".to_owned()].into(),
            created_by: "rita".into(),
            created_at: at(1),
        }
    }
    fn terms(to: &[&str]) -> PermitTerms {
        PermitTerms {
            project: "prj-1".into(),
            dataset: "claims".into(),
            version: None,
            columns: None,
            predicate: None,
            mode: Mode::Aggregate,
            from: at(2),
            until: at(20),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
    fn roles(r: &[Role]) -> BTreeSet<Role> {
        r.iter().copied().collect()
    }

    #[test]
    fn a_request_comes_from_a_researcher_of_the_project_and_is_decided_once() {
        let rule = |r: Result<(), Denied>| r.err().map(|d| d.rule);
        let r = roles(&[Role::Researcher]);
        assert_eq!(
            check_apply("rita", &r, &project(), &terms(&["rita"])),
            Ok(())
        );
        assert_eq!(
            rule(check_apply("sam", &r, &project(), &terms(&["rita"]))),
            Some("request.member")
        );
        assert_eq!(
            rule(check_apply(
                "rita",
                &roles(&[Role::Committee]),
                &project(),
                &terms(&["rita"])
            )),
            Some("request.researcher")
        );
        let mut other = terms(&["rita"]);
        other.project = "prj-2".into();
        assert_eq!(
            rule(check_apply("rita", &r, &project(), &other)),
            Some("request.project")
        );
        let mut backwards = terms(&["rita"]);
        backwards.until = at(1);
        assert_eq!(
            rule(check_apply("rita", &r, &project(), &backwards)),
            Some("request.terms")
        );
        let mut a = PermitApplication {
            id: "prq-1".into(),
            terms: terms(&["rita"]),
            reason: "why".into(),
            requested_by: "rita".into(),
            requested_at: at(1),
            decision: None,
        };
        assert_eq!(check_decide(&a), Ok(()));
        for permit in [Some("pmt-1".to_owned()), None] {
            a.decision = Some(crate::model::ApplicationDecision {
                by: "cora".into(),
                at: at(2),
                permit,
                note: String::new(),
            });
            assert_eq!(rule(check_decide(&a)), Some("request.pending"));
        }
        a.decision = None;
        let cm = roles(&[Role::Committee]);
        assert_eq!(check_refuse("cora", &cm, &project(), &a), Ok(()));
        assert_eq!(
            rule(check_refuse(
                "rita",
                &roles(&[Role::Committee, Role::Researcher]),
                &project(),
                &a
            )),
            Some("grant.not-a-member")
        );
        assert_eq!(
            rule(check_refuse("cora", &r, &project(), &a)),
            Some("grant.committee")
        );
    }

    #[test]
    fn a_grant_needs_an_outside_committee_member_and_researcher_members() {
        let rs = [
            user("rita", &[Role::Researcher]),
            user("rob", &[Role::Researcher]),
        ];
        let cm = roles(&[Role::Committee]);
        assert_eq!(
            check_grant("cora", &cm, &project(), &terms(&["rita"]), &rs),
            Ok(())
        );
        let rule = |r: Result<(), Denied>| r.err().map(|d| d.rule);
        // A researcher of the project who also sits on the committee cannot approve herself.
        let both = roles(&[Role::Committee, Role::Researcher]);
        assert_eq!(
            rule(check_grant(
                "rita",
                &both,
                &project(),
                &terms(&["rita"]),
                &rs
            )),
            Some("grant.not-a-member")
        );
        // Nor grant to her colleague.
        assert_eq!(
            rule(check_grant(
                "rita",
                &both,
                &project(),
                &terms(&["rob"]),
                &rs
            )),
            Some("grant.not-a-member")
        );
        assert_eq!(
            rule(check_grant(
                "op",
                &roles(&[Role::Operator]),
                &project(),
                &terms(&["rita"]),
                &rs
            )),
            Some("grant.committee")
        );
        let outsider = [user("eve", &[Role::Researcher])];
        assert_eq!(
            rule(check_grant(
                "cora",
                &cm,
                &project(),
                &terms(&["eve"]),
                &outsider
            )),
            Some("grant.recipient-member")
        );
        let checker = [user("rita", &[Role::Checker])];
        assert_eq!(
            rule(check_grant(
                "cora",
                &cm,
                &project(),
                &terms(&["rita"]),
                &checker
            )),
            Some("grant.recipient-researcher")
        );
        assert_eq!(
            rule(check_grant("cora", &cm, &project(), &terms(&["rita"]), &[])),
            Some("grant.recipient-known")
        );
        let mut backwards = terms(&["rita"]);
        backwards.until = backwards.from;
        assert_eq!(
            rule(check_grant("cora", &cm, &project(), &backwards, &rs)),
            Some("grant.terms")
        );
    }

    #[test]
    fn a_permit_is_used_by_its_recipients_only_while_valid() {
        let p = Permit {
            id: "pmt-1".into(),
            terms: terms(&["rita"]),
            granted_by: "cora".into(),
            granted_at: at(1),
            signature: String::new(),
            public_key: String::new(),
            revoked: None,
        };
        let r = roles(&[Role::Researcher]);
        let rule = |x: Result<(), Denied>| x.err().map(|d| d.rule);
        assert_eq!(check_use(&p, &project(), "rita", &r, at(5)), Ok(()));
        assert_eq!(
            rule(check_use(&p, &project(), "rob", &r, at(5))),
            Some("use.recipient")
        );
        assert_eq!(
            rule(check_use(&p, &project(), "rita", &r, at(1))),
            Some("use.not-yet-valid")
        );
        assert_eq!(
            rule(check_use(&p, &project(), "rita", &r, at(20))),
            Some("use.expired")
        );
        assert_eq!(
            rule(check_use(
                &p,
                &project(),
                "rita",
                &roles(&[Role::Operator]),
                at(5)
            )),
            Some("use.researcher")
        );
        let mut left = project();
        left.members.remove("rita");
        assert_eq!(
            rule(check_use(&p, &left, "rita", &r, at(5))),
            Some("use.member")
        );
        let mut revoked = p.clone();
        revoked.revoked = Some(Revocation {
            by: "cora".into(),
            at: at(4),
            reason: "x".into(),
        });
        assert_eq!(
            rule(check_use(&revoked, &project(), "rita", &r, at(5))),
            Some("use.revoked")
        );
        assert_eq!(
            check_revoke(&revoked).err().map(|d| d.rule),
            Some("revoke.once")
        );
    }

    #[test]
    fn members_are_added_by_members_or_operators_and_are_researchers() {
        let r = roles(&[Role::Researcher]);
        let new = user("nina", &[Role::Researcher]);
        assert_eq!(check_member("rita", &r, &project(), &new), Ok(()));
        assert!(check_member("eve", &r, &project(), &new).is_err());
        assert_eq!(
            check_member("op", &roles(&[Role::Operator]), &project(), &new),
            Ok(())
        );
        let checker = user("carl", &[Role::Checker]);
        assert_eq!(
            check_member("rita", &r, &project(), &checker)
                .err()
                .map(|d| d.rule),
            Some("member.researcher")
        );
    }
}
