//! The behaviour every catalog backend must have, as one suite (like `shh_store::conformance`):
//! SQLite passes it today, PostgreSQL will pass it next. Call [`run`] on an empty catalog.
//!
//! What the hub relies on: the current pointer moves only by compare-and-swap on the parent
//! (of two writers on the same parent exactly one wins, however they race), versions resolve
//! by unique prefix and list in commit order, unknown names are `NoDataset`/`NoVersion`,
//! metadata is overwritten in place, opt-outs are a set (adding one twice counts once).

use crate::{Catalog, CatalogError, OptOutRecord, VersionRecord};
use chrono::Utc;
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
