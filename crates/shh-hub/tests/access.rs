//! Research access under attack: who a session is, what the role table lets it do, who may
//! grant a permit and who may use one. Each attack is refused with the rule that stops it and
//! leaves an event naming that rule; a grant's signature verifies offline against the key the
//! log shows the granter enrolled.

mod common;

use chrono::{Duration, Utc};
use common::{Fixture, PASS, grant, rule};
use shh_hub::access::permits::{PermitApplyRequest, PermitDecideRequest, PermitRevokeRequest};
use shh_hub::access::projects::{AddMemberRequest, ProjectCreateRequest};
use shh_hub::access::users::{UserAddRequest, UserEnrollRequest};
use shh_hub::audit::{Event, EventFilter};
use shh_hub::ops::{DatasetRef, ExportRequest};
use shh_hub::{ErrorKind, MemorySink, PermitState, Role, Session, Task};

/// The events of `action`, in order.
async fn events(f: &Fixture, action: &str) -> Vec<Event> {
    f.hub
        .audit_events(
            &f.operator,
            &EventFilter {
                action: Some(action.into()),
                ..EventFilter::default()
            },
        )
        .await
        .expect("events")
}

/// A hub with beneficiaries, a project of rita and rob (researchers), and cora on the
/// committee.
struct World {
    f: Fixture,
    rita: Session,
    rob: Session,
    cora: Session,
    project: String,
}

async fn world() -> World {
    let f = Fixture::with_beneficiaries(300).await;
    let rita = f.user("rita", &[Role::Researcher]).await;
    let rob = f.user("rob", &[Role::Researcher]).await;
    let cora = f.user("cora", &[Role::Committee]).await;
    let project = f
        .hub
        .project_create(
            &rita,
            &ProjectCreateRequest {
                title: "Diabetes in Brittany".into(),
                purpose: "Prevalence by age band".into(),
                members: vec!["rob".into()],
                ..ProjectCreateRequest::default()
            },
        )
        .await
        .expect("project")
        .id;
    World {
        f,
        rita,
        rob,
        cora,
        project,
    }
}

#[tokio::test]
async fn a_user_is_proven_by_their_own_passphrase_never_by_a_bare_name() {
    let f = Fixture::new().await;
    // `admin` exists from init, without a credential: nobody can be them yet.
    let e = f
        .login("admin", "anything-at-all")
        .await
        .expect_err("no credential");
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    let enroll = |name: &str, pass: &str| UserEnrollRequest {
        name: name.into(),
        passphrase: pass.into(),
    };
    // The hub's passphrase opens everything: it is not a user's credential.
    let e = f
        .hub
        .user_enroll(&f.operator, &enroll("admin", PASS))
        .await
        .expect_err("hub passphrase");
    assert_eq!(rule(&e), Some("enroll.own-passphrase"), "{e}");
    let e = f
        .hub
        .user_enroll(&f.operator, &enroll("admin", "short"))
        .await
        .expect_err("short");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    f.hub
        .user_enroll(&f.operator, &enroll("admin", "admin-passphrase"))
        .await
        .expect("enroll");
    let admin = f.login("admin", "admin-passphrase").await.expect("login");
    assert!(admin.is_user() && admin.grants().contains(&Role::Operator));

    // Wrong passphrases and unknown names get the same answer, and leave an event.
    for (name, pass) in [
        ("admin", "admin-passphrasE"),
        ("nobody", "admin-passphrase"),
    ] {
        let e = f.login(name, pass).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert_eq!(
            e.public_message(),
            format!("not authenticated: unknown user or wrong passphrase for {name:?}")
        );
    }
    assert_eq!(events(&f, "user.authenticate").await.len(), 3);

    // An operator cannot re-enroll someone (that would make them able to act as that user);
    // only the user, proven with their old key, replaces it.
    let e = f
        .hub
        .user_enroll(&f.operator, &enroll("admin", "taken-over-key"))
        .await
        .expect_err("re-enroll");
    assert_eq!(rule(&e), Some("enroll.once"), "{e}");
    f.hub
        .user_enroll(&admin, &enroll("admin", "rotated-passphrase"))
        .await
        .expect("rotate own key");
    assert!(
        f.login("admin", "admin-passphrase").await.is_err(),
        "old key"
    );
    f.login("admin", "rotated-passphrase")
        .await
        .expect("new key");
    let enrolls = events(&f, "user.enroll").await;
    let last = enrolls.last().expect("event");
    assert_eq!(last.actor, "admin");
    assert_ne!(
        last.details["replaces"], "",
        "a rotation names the key it replaces"
    );
}

#[tokio::test]
async fn the_role_table_is_enforced_at_every_door() {
    let w = world().await;
    let sink = MemorySink::new();
    let export = ExportRequest {
        dataset: DatasetRef::parse("IR_BEN_R").expect("ref"),
    };
    // A researcher cannot take the clear data, list the ciphertext, read the log or migrate.
    let e =
        w.f.hub
            .export(&w.rita, &Task::silent(), &export, &sink)
            .await
            .expect_err("export");
    assert_eq!((e.kind(), rule(&e)), (ErrorKind::Forbidden, Some("role")));
    assert!(sink.names().is_empty(), "nothing exported");
    assert!(w.f.hub.raw_objects(&w.rita).await.is_err());
    assert!(
        w.f.hub
            .audit_events(&w.rita, &EventFilter::default())
            .await
            .is_err()
    );
    assert!(w.f.hub.keys(&w.cora).await.is_err());
    // What they may see: dataset names and schemas.
    assert_eq!(w.f.hub.datasets(&w.rita).await.expect("list").len(), 1);
    // An auditor reads the log and the ciphertext listing, never the clear data.
    let audrey = w.f.user("audrey", &[Role::Auditor]).await;
    assert!(
        w.f.hub
            .audit_events(&audrey, &EventFilter::default())
            .await
            .is_ok()
    );
    assert!(w.f.hub.raw_objects(&audrey).await.is_ok());
    assert!(
        w.f.hub
            .export(&audrey, &Task::silent(), &export, &sink)
            .await
            .is_err()
    );
    let denied = events(&w.f, "access.denied").await;
    assert_eq!(denied.len(), 5, "every refusal is recorded");
    assert!(denied.iter().all(|e| e.details["rule"] == "role"));
    assert_eq!(denied[0].actor, "rita");
}

#[tokio::test]
async fn a_grant_is_one_signed_step_by_a_committee_member_outside_the_project() {
    let w = world().await;
    let (f, project) = (&w.f, w.project.as_str());
    // Self-approval: a researcher of the project who also sits on the committee.
    let both = f.user("rhea", &[Role::Researcher, Role::Committee]).await;
    f.hub
        .project_add_member(
            &w.rita,
            &AddMemberRequest {
                project: project.into(),
                user: "rhea".into(),
            },
        )
        .await
        .expect("member");
    for to in [&["rhea"][..], &["rita"][..]] {
        let e = f
            .hub
            .permit_grant(&both, &grant(project, to))
            .await
            .expect_err("self-approval");
        assert_eq!(rule(&e), Some("grant.not-a-member"), "{e}");
    }
    // The operator holding the hub passphrase has no committee role and no key.
    let e = f
        .hub
        .permit_grant(&f.operator, &grant(project, &["rita"]))
        .await
        .expect_err("operator");
    assert_eq!(rule(&e), Some("role"));
    // A researcher cannot grant themselves anything.
    assert!(
        f.hub
            .permit_grant(&w.rita, &grant(project, &["rita"]))
            .await
            .is_err()
    );
    // Recipients are the project's researchers only.
    let eve = f.user("eve", &[Role::Researcher]).await;
    let e = f
        .hub
        .permit_grant(&w.cora, &grant(project, &["eve"]))
        .await
        .expect_err("outsider");
    assert_eq!(rule(&e), Some("grant.recipient-member"));
    // A column the dataset does not have.
    let mut cols = grant(project, &["rita"]);
    cols.columns = Some(vec!["NO_SUCH_COLUMN".into()]);
    let e = f
        .hub
        .permit_grant(&w.cora, &cols)
        .await
        .expect_err("column");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    // A pinned grant records the full version id.
    let current = f
        .hub
        .show(&w.rita, &DatasetRef::parse("IR_BEN_R").expect("ref"))
        .await
        .expect("show");
    let mut pinned = grant(project, &["rita"]);
    pinned.version = Some(current.id[..8].to_owned());
    let v = f.hub.permit_grant(&w.cora, &pinned).await.expect("grant");
    assert_eq!(v.permit.terms.version.as_deref(), Some(current.id.as_str()));
    assert_eq!(v.state, PermitState::Active);

    // The signature in the event verifies offline under the key cora's enrollment recorded,
    // and fails for a statement altered by one character.
    let grants = events(f, "permit.grant").await;
    let ok = grants
        .iter()
        .find(|e| matches!(e.outcome, shh_hub::audit::Outcome::Allowed))
        .expect("granted");
    let enrolled = events(f, "user.enroll").await;
    let cora_key = enrolled
        .iter()
        .find(|e| e.details["user"] == "cora")
        .and_then(|e| e.details["public_key"].as_str())
        .expect("cora's key");
    assert_eq!(ok.details["public_key"], cora_key);
    let key = shh_hub::audit::PublicKey::parse_all(cora_key).expect("key")[0];
    let statement = ok.details["statement"].as_str().expect("statement");
    let signature = ok.details["signature"].as_str().expect("signature");
    let domain = shh_access::statement::DOMAIN;
    assert!(key.verify_document(domain, statement.as_bytes(), signature));
    let forged = statement.replace("\"aggregate\"", "\"extract\"");
    assert_ne!(forged, statement);
    assert!(!key.verify_document(domain, forged.as_bytes(), signature));
    // Every refusal above is an event naming its rule.
    let refused: Vec<&str> = grants
        .iter()
        .filter_map(|e| e.details.get("rule").and_then(|r| r.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            "grant.not-a-member",
            "grant.not-a-member",
            "grant.recipient-member"
        ]
    );
    // The log's own verification checks the signature too, from the events alone.
    let report = f
        .hub
        .audit_verify(&f.operator, &shh_hub::audit::AuditVerifyRequest::default())
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (report.decisions, report.deciders),
        (1, vec!["cora".to_owned()])
    );
    drop(eve);
}

/// The request step: a member asks, the committee decides once, from outside the project;
/// what is granted is what was asked, and the log ties the two together.
#[tokio::test]
async fn a_request_is_asked_by_a_member_and_decided_once_from_outside() {
    let w = world().await;
    let (f, project) = (&w.f, w.project.as_str());
    let ask = |reason: &str| PermitApplyRequest {
        terms: grant(project, &["rita", "rob"]),
        reason: reason.into(),
    };
    // Not a member: the project is not even there for them.
    let eve = f.user("eve", &[Role::Researcher]).await;
    let e = f
        .hub
        .permit_request(&eve, &ask("curious"))
        .await
        .expect_err("outsider");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // Nor for the committee, who decides but does not ask.
    let e = f
        .hub
        .permit_request(&w.cora, &ask("why not"))
        .await
        .expect_err("committee");
    assert_eq!(rule(&e), Some("role"), "{e}");
    // A reason holding an identifier is refused without echoing it.
    let nir = "1 85 12 75 108 042 79";
    let e = f
        .hub
        .permit_request(&w.rita, &ask(&format!("for patient {nir}")))
        .await
        .expect_err("identifier");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!e.public_message().contains("108"), "{e}");

    let first = f
        .hub
        .permit_request(&w.rita, &ask("prevalence by age band"))
        .await
        .expect("request");
    assert_eq!(first.state, shh_hub::ApplicationState::Pending);
    let second = f
        .hub
        .permit_request(&w.rob, &ask("the same, by département"))
        .await
        .expect("request");
    let decide = |id: &str, note: &str| PermitDecideRequest {
        request: id.into(),
        note: note.into(),
    };
    // Granted by a researcher of the project, or the project's own committee member: no.
    let e = f
        .hub
        .permit_grant_request(&w.rita, &decide(&first.application.id, ""))
        .await
        .expect_err("self");
    assert_eq!(rule(&e), Some("role"));
    let rhea = f.user("rhea", &[Role::Researcher, Role::Committee]).await;
    f.hub
        .project_add_member(
            &w.rita,
            &AddMemberRequest {
                project: project.into(),
                user: "rhea".into(),
            },
        )
        .await
        .expect("member");
    for e in [
        f.hub
            .permit_grant_request(&rhea, &decide(&first.application.id, ""))
            .await
            .expect_err("self-approval"),
        f.hub
            .permit_refuse(&rhea, &decide(&first.application.id, "no"))
            .await
            .expect_err("self-refusal"),
    ] {
        assert_eq!(rule(&e), Some("grant.not-a-member"), "{e}");
    }
    // Cora grants the first as asked; then neither a second grant nor a refusal decides it.
    let permit = f
        .hub
        .permit_grant_request(&w.cora, &decide(&first.application.id, ""))
        .await
        .expect("grant");
    assert_eq!(permit.permit.terms, first.application.terms);
    for e in [
        f.hub
            .permit_grant_request(&w.cora, &decide(&first.application.id, ""))
            .await
            .expect_err("twice"),
        f.hub
            .permit_refuse(&w.cora, &decide(&first.application.id, "late"))
            .await
            .expect_err("after the grant"),
    ] {
        assert_eq!(rule(&e), Some("request.pending"), "{e}");
    }
    // A refusal needs a note, and is final too.
    let e = f
        .hub
        .permit_refuse(&w.cora, &decide(&second.application.id, " "))
        .await
        .expect_err("no note");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let refused = f
        .hub
        .permit_refuse(
            &w.cora,
            &decide(&second.application.id, "ask for one permit"),
        )
        .await
        .expect("refuse");
    assert_eq!(refused.state, shh_hub::ApplicationState::Refused);
    let e = f
        .hub
        .permit_grant_request(&w.cora, &decide(&second.application.id, ""))
        .await
        .expect_err("refused");
    assert_eq!(rule(&e), Some("request.pending"));
    // The project sees its requests and where they stand; an outsider sees none.
    let listed = f
        .hub
        .permit_requests(&w.rob, Some(project))
        .await
        .expect("list");
    let states: Vec<_> = listed
        .iter()
        .map(|v| (v.application.id.clone(), v.state))
        .collect();
    use shh_hub::ApplicationState::{Granted, Refused};
    assert_eq!(
        states,
        [
            (first.application.id.clone(), Granted),
            (second.application.id.clone(), Refused)
        ]
    );
    assert_eq!(
        listed[0]
            .application
            .decision
            .as_ref()
            .and_then(|d| d.permit.clone()),
        Some(permit.permit.id.clone())
    );
    assert!(
        f.hub
            .permit_requests(&eve, None)
            .await
            .expect("none")
            .is_empty()
    );
    // The log: the grant names its request; both decisions are signed and verify.
    let grants = events(f, "permit.grant").await;
    let allowed: Vec<_> = grants
        .iter()
        .filter(|e| matches!(e.outcome, shh_hub::audit::Outcome::Allowed))
        .collect();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0].details["request"], first.application.id.as_str());
    let asked = events(f, "permit.request").await;
    let asked: Vec<_> = asked
        .iter()
        .filter(|e| matches!(e.outcome, shh_hub::audit::Outcome::Allowed))
        .filter_map(|e| e.details.get("request").and_then(|r| r.as_str()))
        .collect();
    assert_eq!(
        asked,
        [
            first.application.id.as_str(),
            second.application.id.as_str()
        ]
    );
    let report = f
        .hub
        .audit_verify(&f.operator, &shh_hub::audit::AuditVerifyRequest::default())
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (report.decisions, report.deciders),
        (2, vec!["cora".to_owned()])
    );
}

#[tokio::test]
async fn a_permit_is_used_only_by_its_recipients_while_it_is_valid() {
    let w = world().await;
    let (f, project) = (&w.f, w.project.as_str());
    let id = f
        .hub
        .permit_grant(&w.cora, &grant(project, &["rita"]))
        .await
        .expect("grant")
        .permit
        .id;
    f.hub.permit_check(&w.rita, &id).await.expect("rita may");
    // A colleague the permit does not name, an outsider, the committee member who granted it.
    let e = f.hub.permit_check(&w.rob, &id).await.expect_err("rob");
    assert_eq!(rule(&e), Some("use.recipient"));
    let eve = f.user("eve", &[Role::Researcher]).await;
    assert_eq!(
        rule(&f.hub.permit_check(&eve, &id).await.expect_err("eve")),
        Some("use.recipient")
    );
    assert_eq!(
        rule(&f.hub.permit_check(&w.cora, &id).await.expect_err("cora")),
        Some("role")
    );
    // An outsider does not even see the project.
    assert!(f.hub.projects(&eve).await.expect("list").is_empty());
    assert_eq!(
        f.hub
            .project(&eve, project)
            .await
            .expect_err("hidden")
            .kind(),
        ErrorKind::NotFound
    );

    // Expired and not yet valid.
    let mut old = grant(project, &["rita"]);
    (old.from, old.until) = (
        Utc::now() - Duration::days(9),
        Utc::now() - Duration::days(1),
    );
    let old = f
        .hub
        .permit_grant(&w.cora, &old)
        .await
        .expect("grant")
        .permit
        .id;
    assert_eq!(
        rule(&f.hub.permit_check(&w.rita, &old).await.expect_err("old")),
        Some("use.expired")
    );
    let mut later = grant(project, &["rita"]);
    later.from = Utc::now() + Duration::days(1);
    let later = f
        .hub
        .permit_grant(&w.cora, &later)
        .await
        .expect("grant")
        .permit
        .id;
    assert_eq!(
        rule(
            &f.hub
                .permit_check(&w.rita, &later)
                .await
                .expect_err("later")
        ),
        Some("use.not-yet-valid")
    );

    // Revoked at once, and only once.
    let revoke = PermitRevokeRequest {
        permit: id.clone(),
        reason: "the protocol changed".into(),
    };
    let v = f.hub.permit_revoke(&w.cora, &revoke).await.expect("revoke");
    assert_eq!(v.state, PermitState::Revoked);
    assert_eq!(
        rule(&f.hub.permit_check(&w.rita, &id).await.expect_err("revoked")),
        Some("use.revoked")
    );
    assert_eq!(
        rule(
            &f.hub
                .permit_revoke(&w.cora, &revoke)
                .await
                .expect_err("twice")
        ),
        Some("revoke.once")
    );
    let uses = events(f, "permit.use").await;
    assert_eq!(uses.len(), 5, "every refused use is recorded");
}

#[tokio::test]
async fn no_identifier_gets_into_a_project_or_a_permit() {
    let w = world().await;
    let nir = "1 85 12 75 108 042 79";
    let e =
        w.f.hub
            .project_create(
                &w.rita,
                &ProjectCreateRequest {
                    title: format!("Follow-up of {nir}"),
                    purpose: "p".into(),
                    ..ProjectCreateRequest::default()
                },
            )
            .await
            .expect_err("identifier");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!e.public_message().contains("108"), "{e}");
    let mut g = grant(&w.project, &["rita"]);
    g.predicate = Some(format!("BEN_NIR_PSA = '{}'", nir.replace(' ', "")));
    let e =
        w.f.hub
            .permit_grant(&w.cora, &g)
            .await
            .expect_err("identifier");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(w.f.hub.projects(&w.rita).await.expect("list").len(), 1);
}

#[tokio::test]
async fn only_operators_add_users_and_names_are_narrow() {
    let w = world().await;
    let add = |name: &str| UserAddRequest {
        name: name.into(),
        roles: vec![Role::Operator],
    };
    assert_eq!(
        rule(
            &w.f.hub
                .user_add(&w.rita, &add("mallory"))
                .await
                .expect_err("researcher")
        ),
        Some("role")
    );
    // A NIR is only digits: a valid-looking name, refused by the identifier guard.
    for bad in ["Mallory", "a b", "../x", "", "185127510804279"] {
        let e =
            w.f.hub
                .user_add(&w.f.operator, &add(bad))
                .await
                .expect_err("name");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    let e =
        w.f.hub
            .user_add(&w.f.operator, &add("rita"))
            .await
            .expect_err("taken");
    assert_eq!(e.kind(), ErrorKind::Conflict);
}
