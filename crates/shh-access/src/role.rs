//! Roles and the one table of who may run what. A session holds roles; an action is allowed
//! only if one of them is in the action's row. Nothing else grants anything: a local session
//! without `--as` is the hub's operator because it holds the hub passphrase, and its
//! `SHH_ROLE` only labels its events.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a principal may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the hub: stores, migrations, users, exports of whole datasets.
    Operator,
    /// Submits data (ingest).
    Producer,
    /// Holds the keys.
    Custodian,
    /// Works inside a permit.
    Researcher,
    /// Access committee: grants and revokes permits.
    Committee,
    /// Output checker: reviews releases.
    Checker,
    /// Verifies the audit log and reports.
    Auditor,
}

impl Role {
    /// Every role, in the order of the table.
    pub const ALL: [Role; 7] = [
        Role::Operator,
        Role::Producer,
        Role::Custodian,
        Role::Researcher,
        Role::Committee,
        Role::Checker,
        Role::Auditor,
    ];

    /// The name used on the command line and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Producer => "producer",
            Role::Custodian => "custodian",
            Role::Researcher => "researcher",
            Role::Committee => "committee",
            Role::Checker => "checker",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command, as the table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `shh user add`, `shh user list`.
    ManageUsers,
    /// `shh user enroll` of another user's first credential.
    EnrollUser,
    /// `shh ingest`, `shh optout`.
    Ingest,
    /// `shh datasets list/show/versions`: names, schemas, row counts (no data).
    DatasetsShow,
    /// `shh datasets risk`: the re-identification risk report of a version.
    DatasetsRisk,
    /// `shh datasets verify`.
    DatasetsVerify,
    /// `shh datasets export`: a whole version in clear Parquet (no disclosure control).
    Export,
    /// `shh store ls`: the ciphertext objects of the store.
    StoreLs,
    /// `shh audit log/verify/export/proof`.
    AuditRead,
    /// `shh keys`, `shh keys passwd`.
    Keys,
    /// `shh migrate ...`.
    Migrate,
    /// `shh project create`.
    CreateProject,
    /// `shh project list/show`, `shh permit list/show/requests`.
    ShowProjects,
    /// `shh permit request`: a project member asks for a permit.
    RequestPermit,
    /// `shh permit grant`, `shh permit refuse`.
    GrantPermit,
    /// `shh permit revoke`.
    RevokePermit,
    /// `shh query` under a permit.
    Query,
    /// `shh register export`: the public list of projects.
    Register,
    /// `shh export request/update/release`: ask for a result to leave, and take it.
    ExportRequest,
    /// `shh export review`: an output checker's signed review.
    ExportReview,
    /// `shh export list/show`.
    ExportShow,
}

use Role::{Auditor, Checker, Committee, Custodian, Operator, Producer, Researcher};

/// The table: for each action, the roles that may run it. `docs/access.md` prints it, and a
/// test checks that the page says what this says.
pub const RULES: &[(Action, &str, &[Role])] = &[
    (Action::ManageUsers, "user add, user list", &[Operator]),
    (
        Action::EnrollUser,
        "user enroll (someone else)",
        &[Operator],
    ),
    (Action::Ingest, "ingest, optout", &[Operator, Producer]),
    (
        Action::DatasetsShow,
        "datasets list, show, versions; disclosure show",
        &[
            Operator, Producer, Custodian, Researcher, Committee, Checker, Auditor,
        ],
    ),
    (
        Action::DatasetsRisk,
        "datasets risk",
        &[Operator, Producer, Committee, Auditor],
    ),
    (
        Action::DatasetsVerify,
        "datasets verify",
        &[Operator, Producer, Custodian, Auditor],
    ),
    (Action::Export, "datasets export", &[Operator]),
    (Action::StoreLs, "store ls", &[Operator, Auditor]),
    (
        Action::AuditRead,
        "audit log, verify, export, proof",
        &[Operator, Auditor],
    ),
    (Action::Keys, "keys, keys passwd", &[Operator, Custodian]),
    (Action::Migrate, "migrate", &[Operator]),
    (
        Action::CreateProject,
        "project create, add-member",
        &[Operator, Researcher],
    ),
    (
        Action::ShowProjects,
        "project list, show; permit list, show, requests",
        &[Operator, Researcher, Committee, Checker, Auditor],
    ),
    (Action::RequestPermit, "permit request", &[Researcher]),
    (Action::GrantPermit, "permit grant, refuse", &[Committee]),
    (
        Action::RevokePermit,
        "permit revoke",
        &[Committee, Operator],
    ),
    (Action::Query, "query", &[Researcher]),
    (
        Action::ExportRequest,
        "export request, update, release",
        &[Researcher],
    ),
    (Action::ExportReview, "export review", &[Checker]),
    (
        Action::ExportShow,
        "export list, show",
        &[Operator, Researcher, Committee, Checker, Auditor],
    ),
    (
        Action::Register,
        "register export",
        &[Operator, Committee, Auditor],
    ),
];

/// Whether a holder of `roles` may run `action`. Fails closed: an action missing from the
/// table is refused.
pub fn may(roles: &BTreeSet<Role>, action: Action) -> bool {
    RULES
        .iter()
        .find(|(a, _, _)| *a == action)
        .is_some_and(|(_, _, allowed)| allowed.iter().any(|r| roles.contains(r)))
}

/// The roles that may run `action` (for the refusal's message).
pub fn allowed(action: Action) -> &'static [Role] {
    RULES
        .iter()
        .find(|(a, _, _)| *a == action)
        .map_or(&[], |(_, _, r)| r)
}

/// The table as Markdown, as `docs/access.md` prints it.
pub fn rules_table() -> String {
    let mut t = String::from("| command |");
    for r in Role::ALL {
        t.push_str(&format!(" {r} |"));
    }
    t.push_str("\n| --- |");
    t.push_str(&" :-: |".repeat(Role::ALL.len()));
    t.push('\n');
    for (_, name, roles) in RULES {
        t.push_str(&format!("| `{name}` |"));
        for r in Role::ALL {
            t.push_str(if roles.contains(&r) { " ✓ |" } else { "  |" });
        }
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_page_prints_this_table() {
        let page = include_str!("../../../docs/access.md");
        assert!(
            page.contains(&rules_table()),
            "docs/access.md must hold this table:\n{}",
            rules_table()
        );
    }

    #[test]
    fn role_names_round_trip_and_unknown_names_are_no_role() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).expect("json"),
                serde_json::json!(r.as_str())
            );
        }
        assert_eq!(Role::parse("Operator"), None);
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn no_roles_may_nothing_and_only_operators_export() {
        let none = BTreeSet::new();
        for (a, _, _) in RULES {
            assert!(!may(&none, *a), "{a:?} with no role");
        }
        for r in Role::ALL {
            let one = BTreeSet::from([r]);
            assert_eq!(may(&one, Action::Export), r == Operator, "{r}");
            assert_eq!(may(&one, Action::GrantPermit), r == Committee, "{r}");
            assert_eq!(may(&one, Action::Query), r == Researcher, "{r}");
        }
    }
}
