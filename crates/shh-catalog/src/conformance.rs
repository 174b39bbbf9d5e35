//! The behaviour every catalog backend must have, as one suite (like `shh_store::conformance`):
//! SQLite passes it today, PostgreSQL will pass it next. Call [`run`] on an empty catalog.
//!
//! What the hub relies on: the current pointer moves only by compare-and-swap on the parent
//! (of two writers on the same parent exactly one wins, however they race), versions resolve
//! by unique prefix and list in commit order, unknown names are `NoDataset`/`NoVersion`,
//! metadata is overwritten in place, opt-outs are a set (adding one twice counts once). Access
//! records: names and ids are unique (`Exists`), unknown ones are `NotFound`, and the two
//! changes deciders race on, a first enrollment and a revocation, succeed exactly once.

use crate::{Catalog, CatalogError, OptOutRecord, VersionRecord};
use chrono::Utc;
use shh_access::{
    Credential, Mode, Permit, PermitApplication, PermitTerms, Principal, Project, Revocation, Role,
};
use std::sync::Arc;

fn rec(dataset: &str, id: &str, parent: Option<&str>) -> VersionRecord {
    VersionRecord {
        dataset: dataset.into(),
        id: id.into(),
        parent: parent.map(str::to_owned),
        manifest_path: format!("datasets/{dataset}/manifests/{id}.json"),
        created_at: Utc::now(),
        rows: 10,
        files: 1,
        bytes: 100,
    }
}

/// Runs every check on `cat`, which must be empty; panics naming the first that fails.
pub async fn run(cat: Arc<dyn Catalog>) {
    metadata(cat.as_ref()).await;
    pointer_and_prefixes(cat.as_ref()).await;
    racing_writers(cat.clone()).await;
    optouts(cat.as_ref()).await;
    users(cat.clone()).await;
    projects_and_permits(cat.clone()).await;
}

async fn metadata(cat: &dyn Catalog) {
    assert_eq!(cat.get_meta("hub.id").await.expect("get"), None);
    cat.set_meta("hub.id", "a").await.expect("set");
    cat.set_meta("hub.id", "b").await.expect("overwrite");
    assert_eq!(
        cat.get_meta("hub.id").await.expect("get").as_deref(),
        Some("b")
    );
}

async fn pointer_and_prefixes(cat: &dyn Catalog) {
    assert!(cat.datasets().await.expect("list").is_empty(), "not empty");
    assert!(matches!(
        cat.dataset("claims").await,
        Err(CatalogError::NoDataset(_))
    ));
    assert!(matches!(
        cat.version("claims", None).await,
        Err(CatalogError::NoDataset(_) | CatalogError::NoVersion { .. })
    ));
    cat.commit_version(&rec("claims", "aaaa1111", None))
        .await
        .expect("first");
    // A second writer that also built on "no parent" loses, and changes nothing.
    let e = cat
        .commit_version(&rec("claims", "bbbb2222", None))
        .await
        .expect_err("conflict");
    assert!(matches!(e, CatalogError::Conflict { .. }), "{e}");
    assert!(matches!(
        cat.version("claims", Some("bbbb")).await,
        Err(CatalogError::NoVersion { .. })
    ));
    // Building on a version that is not the current one loses too.
    cat.commit_version(&rec("claims", "abcd0002", Some("aaaa1111")))
        .await
        .expect("second");
    let e = cat
        .commit_version(&rec("claims", "abcd0003", Some("aaaa1111")))
        .await
        .expect_err("stale parent");
    assert!(matches!(e, CatalogError::Conflict { .. }), "{e}");
    cat.commit_version(&rec("claims", "abcd0004", Some("abcd0002")))
        .await
        .expect("third");

    let d = cat.dataset("claims").await.expect("dataset");
    assert_eq!((d.current.as_deref(), d.versions), (Some("abcd0004"), 3));
    assert_eq!(
        cat.version("claims", None).await.expect("current").id,
        "abcd0004"
    );
    assert_eq!(
        cat.version("claims", Some("aaaa"))
            .await
            .expect("prefix")
            .id,
        "aaaa1111"
    );
    assert!(matches!(
        cat.version("claims", Some("abcd")).await,
        Err(CatalogError::Ambiguous { count: 2, .. })
    ));
    let full = cat
        .version("claims", Some("abcd0002"))
        .await
        .expect("full id");
    assert_eq!(full, {
        let mut r = rec("claims", "abcd0002", Some("aaaa1111"));
        r.created_at = full.created_at;
        r
    });
    let ids: Vec<_> = cat
        .versions("claims")
        .await
        .expect("versions")
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(ids, ["aaaa1111", "abcd0002", "abcd0004"], "commit order");

    // Datasets are independent and listed by name.
    cat.commit_version(&rec("beneficiaries", "ffff0001", None))
        .await
        .expect("other dataset");
    let names: Vec<_> = cat
        .datasets()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["beneficiaries", "claims"]);
}

async fn racing_writers(cat: Arc<dyn Catalog>) {
    cat.commit_version(&rec("race", "0000base", None))
        .await
        .expect("base");
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let cat = cat.clone();
            tokio::spawn(async move {
                cat.commit_version(&rec("race", &format!("{i:04}next"), Some("0000base")))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for w in writers {
        match w.await.expect("join") {
            Ok(()) => won += 1,
            Err(CatalogError::Conflict { .. }) => {}
            Err(e) => panic!("a racing writer failed otherwise: {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one writer on the same parent wins");
    assert_eq!(cat.dataset("race").await.expect("race").versions, 2);
}

async fn optouts(cat: &dyn Catalog) {
    let o = |p: &str| OptOutRecord {
        pseudonym: p.into(),
        key_version: 1,
        added_at: Utc::now(),
    };
    assert!(cat.optouts().await.expect("list").is_empty());
    assert_eq!(cat.add_optouts(&[o("b"), o("a")]).await.expect("add"), 2);
    assert_eq!(cat.add_optouts(&[o("a"), o("c")]).await.expect("again"), 1);
    let l: Vec<_> = cat
        .optouts()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.pseudonym)
        .collect();
    assert_eq!(l, ["a", "b", "c"]);
}

fn principal(name: &str) -> Principal {
    Principal {
        name: name.into(),
        roles: [Role::Researcher].into(),
        credential: None,
        created_by: "admin".into(),
        created_at: Utc::now(),
    }
}

fn credential(key: &str) -> Credential {
    Credential {
        public_key: key.into(),
        sealed: "{}".into(),
        enrolled_at: Utc::now(),
    }
}

/// Spawns `n` copies of `f` at once; returns how many succeeded, and panics on any error
/// other than `Changed`.
async fn race<F, Fut>(n: usize, f: F) -> usize
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = crate::Result<()>> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut won = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(()) => won += 1,
            Err(CatalogError::Changed { .. }) => {}
            Err(e) => panic!("a racing change failed otherwise: {e}"),
        }
    }
    won
}

async fn users(cat: Arc<dyn Catalog>) {
    assert!(matches!(
        cat.principal("nobody").await,
        Err(CatalogError::NotFound { what: "user", .. })
    ));
    cat.add_principal(&principal("rita")).await.expect("add");
    assert!(matches!(
        cat.add_principal(&principal("rita")).await,
        Err(CatalogError::Exists { what: "user", .. })
    ));
    cat.add_principal(&principal("ada")).await.expect("add");
    let names: Vec<String> = cat
        .principals()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["ada", "rita"]);
    // Eight first enrollments race: one wins, the others find the user enrolled.
    let won = race(8, |i| {
        let cat = cat.clone();
        async move {
            cat.set_credential("rita", None, &credential(&format!("k{i}")))
                .await
        }
    })
    .await;
    assert_eq!(won, 1, "exactly one first enrollment wins");
    let key = cat
        .principal("rita")
        .await
        .expect("rita")
        .public_key()
        .map(str::to_owned);
    let key = key.expect("enrolled");
    assert!(matches!(
        cat.set_credential("rita", Some("not-the-key"), &credential("x"))
            .await,
        Err(CatalogError::Changed { .. })
    ));
    cat.set_credential("rita", Some(&key), &credential("rotated"))
        .await
        .expect("rotate");
    assert_eq!(
        cat.principal("rita").await.expect("rita").public_key(),
        Some("rotated")
    );
    assert!(matches!(
        cat.set_credential("nobody", None, &credential("x")).await,
        Err(CatalogError::NotFound { .. })
    ));
}

async fn projects_and_permits(cat: Arc<dyn Catalog>) {
    let project = |id: &str| Project {
        id: id.into(),
        title: "t".into(),
        purpose: "p".into(),
        legal_basis: None,
        controller: None,
        members: ["rita".to_owned()].into(),
        created_by: "rita".into(),
        created_at: Utc::now(),
    };
    for id in ["prj-b", "prj-a"] {
        cat.add_project(&project(id)).await.expect("add");
    }
    assert!(matches!(
        cat.add_project(&project("prj-a")).await,
        Err(CatalogError::Exists { .. })
    ));
    let ids: Vec<String> = cat
        .projects()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["prj-b", "prj-a"], "oldest first");
    assert!(cat.add_member("prj-a", "ada").await.expect("add"));
    assert!(!cat.add_member("prj-a", "ada").await.expect("again"));
    assert!(
        cat.project("prj-a")
            .await
            .expect("p")
            .members
            .contains("ada")
    );
    assert!(matches!(
        cat.project("prj-z").await,
        Err(CatalogError::NotFound { .. })
    ));

    let permit = |id: &str, project: &str| Permit {
        id: id.into(),
        terms: PermitTerms {
            project: project.into(),
            dataset: "claims".into(),
            version: None,
            columns: Some(vec!["a".into()]),
            predicate: None,
            mode: Mode::Aggregate,
            from: Utc::now(),
            until: Utc::now() + chrono::Duration::days(1),
            to: ["rita".to_owned()].into(),
        },
        granted_by: "cora".into(),
        granted_at: Utc::now(),
        signature: "sig".into(),
        public_key: "key".into(),
        revoked: None,
    };
    assert!(matches!(
        cat.add_permit(&permit("pmt-0", "prj-z")).await,
        Err(CatalogError::NotFound {
            what: "project",
            ..
        })
    ));
    let mut kept = Vec::new();
    for (id, p) in [("pmt-2", "prj-a"), ("pmt-1", "prj-b"), ("pmt-3", "prj-a")] {
        let rec = permit(id, p);
        cat.add_permit(&rec).await.expect("add");
        kept.push(rec);
    }
    assert!(matches!(
        cat.add_permit(&permit("pmt-1", "prj-a")).await,
        Err(CatalogError::Exists { .. })
    ));
    let of = |v: Vec<Permit>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        of(cat.permits(Some("prj-a")).await.expect("a")),
        ["pmt-2", "pmt-3"]
    );
    assert_eq!(
        of(cat.permits(None).await.expect("all")),
        ["pmt-2", "pmt-1", "pmt-3"]
    );
    assert_eq!(
        cat.permit("pmt-1").await.expect("p"),
        kept[1],
        "stored as given"
    );
    // Eight revocations race: one wins.
    let won = race(8, |i| {
        let cat = cat.clone();
        async move {
            let r = Revocation {
                by: format!("c{i}"),
                at: Utc::now(),
                reason: "r".into(),
            };
            cat.revoke_permit("pmt-2", &r).await
        }
    })
    .await;
    assert_eq!(won, 1, "a permit is revoked once");
    assert!(cat.permit("pmt-2").await.expect("p").revoked.is_some());
    assert!(cat.permit("pmt-3").await.expect("p").revoked.is_none());

    // Permit requests: stored as given, listed oldest first, decided once.
    let application = |id: &str, project: &str| PermitApplication {
        id: id.into(),
        terms: permit("x", project).terms,
        reason: "why".into(),
        requested_by: "rita".into(),
        requested_at: Utc::now(),
        decision: None,
    };
    assert!(matches!(
        cat.add_application(&application("prq-0", "prj-z")).await,
        Err(CatalogError::NotFound { .. })
    ));
    for (id, p) in [("prq-2", "prj-a"), ("prq-1", "prj-b"), ("prq-3", "prj-a")] {
        cat.add_application(&application(id, p)).await.expect("add");
    }
    assert!(matches!(
        cat.add_application(&application("prq-1", "prj-a")).await,
        Err(CatalogError::Exists { .. })
    ));
    let ids = |v: Vec<PermitApplication>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(cat.applications(Some("prj-a")).await.expect("a")),
        ["prq-2", "prq-3"]
    );
    assert_eq!(
        ids(cat.applications(None).await.expect("all")),
        ["prq-2", "prq-1", "prq-3"]
    );
    let pending = cat.application("prq-2").await.expect("p");
    assert_eq!(pending.reason, "why", "stored as given");
    // A grant and seven refusals race: one decides.
    let won = race(8, |i| {
        let (cat, expected) = (cat.clone(), pending.clone());
        async move {
            let mut decided = expected.clone();
            decided.decision = Some(shh_access::ApplicationDecision {
                by: format!("c{i}"),
                at: Utc::now(),
                permit: (i == 0).then(|| "pmt-9".to_owned()),
                note: "n".into(),
            });
            cat.change_application(&expected, &decided).await
        }
    })
    .await;
    assert_eq!(won, 1, "a request is decided once");
    assert!(
        cat.application("prq-2")
            .await
            .expect("p")
            .decision
            .is_some()
    );
    assert!(matches!(
        cat.application("prq-9").await,
        Err(CatalogError::NotFound { .. })
    ));
}
