//! Queries under permits, under attack: a permit's view is all SQL can reach; an aggregate
//! permit answers only traceable aggregates, suppresses small cells, perturbs consistently,
//! and does not give a patient away to differencing, averaging or the 0/1-mean trick.

mod common;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use chrono::{Duration, Utc};
use common::{Fixture, rule};
use shh_hub::access::permits::PermitGrantRequest;
use shh_hub::access::projects::ProjectCreateRequest;
use shh_hub::query::{QueryRequest, QueryResult};
use shh_hub::{Mode, Role, Session};

struct World {
    f: Fixture,
    rita: Session,
    cora: Session,
    project: String,
}

async fn world(patients: u64) -> World {
    let f = Fixture::with_beneficiaries(patients).await;
    let rita = f.user("rita", &[Role::Researcher]).await;
    let cora = f.user("cora", &[Role::Committee]).await;
    let project = new_project(&f, &rita, "Births").await;
    World {
        f,
        rita,
        cora,
        project,
    }
}

async fn new_project(f: &Fixture, by: &Session, title: &str) -> String {
    f.hub
        .project_create(
            by,
            &ProjectCreateRequest {
                title: title.into(),
                purpose: "Counts by birth year".into(),
                ..ProjectCreateRequest::default()
            },
        )
        .await
        .expect("project")
        .id
}

impl World {
    async fn permit(
        &self,
        project: &str,
        mode: Mode,
        columns: Option<&[&str]>,
        predicate: Option<&str>,
    ) -> String {
        self.f
            .hub
            .permit_grant(
                &self.cora,
                &PermitGrantRequest {
                    project: project.into(),
                    dataset: "IR_BEN_R".into(),
                    version: None,
                    columns: columns.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
                    predicate: predicate.map(str::to_owned),
                    mode,
                    from: Utc::now() - Duration::hours(1),
                    until: Utc::now() + Duration::days(30),
                    to: ["rita".to_owned()].into(),
                },
            )
            .await
            .expect("grant")
            .permit
            .id
    }

    async fn query(&self, permit: &str, sql: &str) -> shh_hub::Result<QueryResult> {
        self.f
            .hub
            .query(
                &self.rita,
                &QueryRequest {
                    permits: vec![permit.into()],
                    sql: sql.into(),
                },
            )
            .await
    }
}

fn batch(r: &QueryResult) -> &RecordBatch {
    r.batches.first().expect("one batch")
}

fn strings(r: &QueryResult, col: usize) -> Vec<String> {
    let a = arrow::compute::cast(batch(r).column(col), &arrow::datatypes::DataType::Utf8)
        .expect("cast");
    a.as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or("NULL").to_owned())
        .collect()
}

fn ints(r: &QueryResult, col: usize) -> Vec<Option<i64>> {
    let a = arrow::compute::cast(batch(r).column(col), &arrow::datatypes::DataType::Int64)
        .expect("cast");
    let a = a.as_primitive::<Int64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

#[tokio::test]
async fn an_extract_permit_sees_its_columns_its_rows_and_its_own_pseudonyms() {
    let w = world(120).await;
    let permit = w
        .permit(
            &w.project,
            Mode::Extract,
            Some(&["BEN_NIR_PSA", "BEN_SEX_COD", "BEN_NAI_ANN"]),
            Some("BEN_SEX_COD = 2"),
        )
        .await;
    let r = w
        .query(&permit, "SELECT BEN_NIR_PSA, BEN_SEX_COD FROM IR_BEN_R")
        .await
        .expect("query");
    assert!(batch(&r).num_rows() > 10);
    assert!(
        strings(&r, 1).iter().all(|s| s == "2"),
        "the predicate holds beneath the SQL"
    );
    let ours = strings(&r, 0);
    // Not the hub's stored pseudonyms: those are in the clear export.
    let hub_pseudonyms = common::hub_pseudonyms(&w.f).await;
    assert!(hub_pseudonyms.len() >= 120, "{}", hub_pseudonyms.len());
    for p in &ours {
        assert_eq!(p.len(), 22);
        assert!(
            !hub_pseudonyms.contains(p),
            "a project pseudonym is never a hub pseudonym"
        );
    }
    // Another project gets other pseudonyms for the same patients.
    let other = new_project(&w.f, &w.rita, "Other").await;
    let p2 = w
        .permit(
            &other,
            Mode::Extract,
            Some(&["BEN_NIR_PSA", "BEN_SEX_COD"]),
            Some("BEN_SEX_COD = 2"),
        )
        .await;
    let r2 = w
        .query(&p2, "SELECT BEN_NIR_PSA FROM IR_BEN_R")
        .await
        .expect("query");
    let theirs = strings(&r2, 0);
    assert_eq!(theirs.len(), ours.len());
    assert!(
        theirs.iter().all(|p| !ours.contains(p)),
        "projects do not join"
    );

    // Outside the view: other columns, the base table, other names.
    for sql in [
        "SELECT BEN_RES_COM FROM IR_BEN_R",
        "SELECT * FROM IR_BEN_R__base",
        "SELECT * FROM ER_PRS_F",
        "SELECT * FROM shh.permit.IR_BEN_R__base",
    ] {
        let e = w.query(&permit, sql).await.expect_err(sql);
        assert_eq!(e.kind(), shh_hub::ErrorKind::InvalidInput, "{sql}: {e}");
    }
    // A predicate that does not read, or reads more than the row, is refused at the grant.
    for bad in [
        "BEN_SEX_COD =",
        "NO_SUCH_COLUMN = 1",
        "BEN_SEX_COD IN (SELECT BEN_SEX_COD FROM IR_BEN_R)",
        "BEN_NAI_ANN + 1",
    ] {
        let e =
            w.f.hub
                .permit_grant(
                    &w.cora,
                    &PermitGrantRequest {
                        project: w.project.clone(),
                        dataset: "IR_BEN_R".into(),
                        version: None,
                        columns: None,
                        predicate: Some(bad.into()),
                        mode: Mode::Extract,
                        from: Utc::now(),
                        until: Utc::now() + Duration::days(1),
                        to: ["rita".to_owned()].into(),
                    },
                )
                .await
                .expect_err(bad);
        assert_eq!(e.kind(), shh_hub::ErrorKind::InvalidInput, "{bad}: {e}");
    }
    // The same query at the same version: the same bytes.
    let again = w
        .query(&permit, "SELECT BEN_NIR_PSA, BEN_SEX_COD FROM IR_BEN_R")
        .await
        .expect("query");
    assert_eq!(again.provenance.result_hash, r.provenance.result_hash);
    assert!(r.provenance.versions[0].starts_with("IR_BEN_R@"));
}

#[tokio::test]
async fn an_aggregate_permit_publishes_only_protected_cells() {
    let w = world(300).await;
    let permit = w.permit(&w.project, Mode::Aggregate, None, None).await;
    let r = w
        .query(
            &permit,
            "SELECT BEN_SEX_COD, count(*) AS n, count(DISTINCT BEN_NIR_PSA) AS p \
             FROM IR_BEN_R GROUP BY BEN_SEX_COD",
        )
        .await
        .expect("query");
    let n = ints(&r, 1);
    assert_eq!(n.len(), 2);
    for v in n.iter().chain(ints(&r, 2).iter()) {
        let v = v.expect("published");
        assert_eq!(v % 5, 0, "rounded to 5");
        assert!((120..=180).contains(&v), "{v}");
    }
    let report = r.provenance.disclosure.as_ref().expect("report");
    assert_eq!(report.cells, 4);
    // Small cells (a birth year holds a few patients) are suppressed, with their margin.
    let r = w
        .query(
            &permit,
            "SELECT BEN_NAI_ANN, count(*) AS n FROM IR_BEN_R GROUP BY BEN_NAI_ANN ORDER BY BEN_NAI_ANN",
        )
        .await
        .expect("query");
    let n = ints(&r, 1);
    assert!(n.iter().all(Option::is_none) || n.iter().any(Option::is_none));
    assert!(
        n.iter().any(Option::is_none),
        "a year holds fewer than 11 patients"
    );
    let report = r.provenance.disclosure.as_ref().expect("report");
    assert!(
        report.rules.contains_key("disclosure.threshold"),
        "{report:?}"
    );

    // Row-level output and one person's value are refused, with the rule.
    for (sql, expected) in [
        ("SELECT * FROM IR_BEN_R", "disclosure.aggregate-only"),
        (
            "SELECT BEN_NIR_PSA FROM IR_BEN_R",
            "disclosure.aggregate-only",
        ),
        (
            "SELECT max(BEN_NAI_ANN) FROM IR_BEN_R",
            "disclosure.function",
        ),
        (
            "SELECT min(BEN_NAI_ANN) FROM IR_BEN_R",
            "disclosure.function",
        ),
        (
            "SELECT median(BEN_NAI_ANN) FROM IR_BEN_R",
            "disclosure.function",
        ),
        (
            "SELECT BEN_NIR_PSA, count(*) FROM IR_BEN_R GROUP BY BEN_NIR_PSA",
            "disclosure.shape",
        ),
        (
            "SELECT count(*) FROM (SELECT BEN_SEX_COD, count(*) c FROM IR_BEN_R GROUP BY BEN_SEX_COD) t",
            "disclosure.shape",
        ),
        (
            "SELECT count(*) FROM IR_BEN_R a, IR_BEN_R b",
            "disclosure.shape",
        ),
        (
            "SELECT count(*) FROM IR_BEN_R WHERE BEN_NAI_ANN = (SELECT max(BEN_NAI_ANN) FROM IR_BEN_R)",
            "disclosure.shape",
        ),
        (
            "SELECT count(*) OVER () FROM IR_BEN_R",
            "disclosure.aggregate-only",
        ),
        (
            "SELECT BEN_SEX_COD, count(*), rank() OVER (ORDER BY count(*)) FROM IR_BEN_R GROUP BY BEN_SEX_COD",
            "disclosure.shape",
        ),
        (
            "SELECT count(*) FROM IR_BEN_R GROUP BY BEN_SEX_COD UNION ALL SELECT count(*) FROM IR_BEN_R",
            "disclosure.shape",
        ),
    ] {
        let e = w.query(&permit, sql).await.expect_err(sql);
        assert_eq!(rule(&e), Some(expected), "{sql}: {e}");
    }
}

/// Differencing over many targets: an attacker who knows a patient's (project) pseudonym asks
/// for a count with and without them. From the two answers they guess whether the target has
/// the attribute. They must do no better than a guess from the published margin.
#[tokio::test]
async fn differencing_guesses_no_better_than_the_margin() {
    let w = world(320).await;
    let agg = w.permit(&w.project, Mode::Aggregate, None, None).await;
    // The truth, and the pseudonyms the attacker is assumed to know, through an extract permit
    // of the same project (so the pseudonyms are the ones the aggregate permit sees).
    let ext = w
        .permit(
            &w.project,
            Mode::Extract,
            Some(&["BEN_NIR_PSA", "BEN_SEX_COD"]),
            None,
        )
        .await;
    let truth = w
        .query(&ext, "SELECT BEN_NIR_PSA, BEN_SEX_COD FROM IR_BEN_R")
        .await
        .expect("truth");
    let ids = strings(&truth, 0);
    let sex = strings(&truth, 1);
    let female: Vec<bool> = sex.iter().map(|s| s == "2").collect();
    let targets = 220.min(ids.len());
    assert!(targets >= 200, "{} patients", ids.len());
    let all = "SELECT count(*) AS n FROM IR_BEN_R WHERE BEN_SEX_COD = 2";
    let margin = ints(&w.query(&agg, all).await.expect("margin"), 0)[0].expect("published");
    // The margin's guess: the majority class.
    let p_female = margin as f64 / ids.len() as f64;
    let baseline_guess = p_female >= 0.5;
    let (mut attack_right, mut baseline_right, mut joined_right, mut summed_right) = (0, 0, 0, 0);
    for i in 0..targets {
        let without = format!(
            "SELECT count(*) AS n FROM IR_BEN_R WHERE BEN_SEX_COD = 2 AND BEN_NIR_PSA <> '{}'",
            ids[i]
        );
        let n = ints(&w.query(&agg, &without).await.expect("without"), 0)[0];
        // The attacker's rule: a smaller answer without the target means the target counted.
        let guess = n.is_none_or(|n| n < margin);
        attack_right += usize::from(guess == female[i]);
        baseline_right += usize::from(baseline_guess == female[i]);
        if i % 4 == 0 {
            // The same by a join: the target's rows meet nothing.
            let joined = format!(
                "SELECT count(*) AS n FROM IR_BEN_R a JOIN IR_BEN_R b ON a.BEN_NIR_PSA = b.BEN_NIR_PSA \
                 WHERE a.BEN_SEX_COD = 2 AND b.BEN_NIR_PSA <> '{}'",
                ids[i]
            );
            let n = ints(&w.query(&agg, &joined).await.expect("joined"), 0)[0];
            let guess = n.is_none_or(|n| n < margin);
            joined_right += usize::from(guess == female[i]);
            // By the same number asked two ways: a count and the sum of an indicator, both
            // without a decoy group of 11 other patients (so that neither is near any earlier
            // answer of its kind), the sum also without the target.
            let decoys: Vec<String> = (1..=11)
                .map(|k| format!("'{}'", ids[(i + 7 * k) % ids.len()]))
                .collect();
            let without = format!("BEN_NIR_PSA NOT IN ({})", decoys.join(", "));
            let count =
                format!("SELECT count(*) AS n FROM IR_BEN_R WHERE BEN_SEX_COD = 2 AND {without}");
            let summed = format!(
                "SELECT sum(CASE WHEN BEN_SEX_COD = 2 AND {without} AND BEN_NIR_PSA <> '{}' \
                 THEN 1 ELSE 0 END) AS n FROM IR_BEN_R",
                ids[i]
            );
            let a = ints(&w.query(&agg, &count).await.expect("count"), 0)[0];
            let b = ints(&w.query(&agg, &summed).await.expect("summed"), 0)[0];
            // The attacker's rule: the sum (exact but for its noise) below the count's
            // rounded value by more than the rounding explains means the target counted.
            let guess = match (a, b) {
                (Some(a), Some(b)) => b < a,
                _ => false,
            };
            summed_right += usize::from(guess == female[i]);
        }
    }
    let rate = |k: usize, n: usize| k as f64 / n as f64;
    let attack = rate(attack_right, targets);
    let baseline = rate(baseline_right, targets);
    let joined = rate(joined_right, targets.div_ceil(4));
    let summed = rate(summed_right, targets.div_ceil(4));
    // The best constant guess on the quarter of targets the join and the sum were tried on
    // (on a subset, the minority class of the whole may be the majority).
    let females = (0..targets).step_by(4).filter(|&i| female[i]).count();
    let quarter = rate(
        females.max(targets.div_ceil(4) - females),
        targets.div_ceil(4),
    );
    assert!(
        attack <= baseline + 0.10 && joined <= quarter + 0.10 && summed <= quarter + 0.10,
        "differencing: {attack:.2} (by join {joined:.2}, by a sum {summed:.2}) against the \
         margin's {baseline:.2} ({quarter:.2} on the quarter)"
    );
}

/// Averaging: a thousand repeats, or rewrites that select the same patients, all give one
/// answer; so their mean is that answer, noise included.
#[tokio::test]
async fn repeats_and_rewrites_give_one_answer() {
    let w = world(200).await;
    let agg = w.permit(&w.project, Mode::Aggregate, None, None).await;
    let base = "SELECT count(*) AS n, avg(BEN_NAI_ANN) AS y FROM IR_BEN_R WHERE BEN_SEX_COD = 1";
    let first = w.query(&agg, base).await.expect("first");
    let rewrites = [
        base.to_owned(),
        format!("{base} AND 1 = 1"),
        format!("{base} AND BEN_NAI_ANN = BEN_NAI_ANN"),
        "SELECT count(*) AS n, avg(BEN_NAI_ANN) AS y FROM (SELECT * FROM IR_BEN_R WHERE BEN_SEX_COD = 1) t".to_owned(),
        "SELECT count(1) AS n, avg(BEN_NAI_ANN) AS y FROM IR_BEN_R WHERE NOT BEN_SEX_COD <> 1".to_owned(),
    ];
    for sql in rewrites.iter().cycle().take(40) {
        let r = w.query(&agg, sql).await.expect(sql);
        assert_eq!(ints(&r, 0), ints(&first, 0), "{sql}");
        let y = arrow::compute::cast(batch(&r).column(1), &arrow::datatypes::DataType::Float64)
            .expect("f");
        let y0 = arrow::compute::cast(
            batch(&first).column(1),
            &arrow::datatypes::DataType::Float64,
        )
        .expect("f");
        assert_eq!(y.as_ref(), y0.as_ref(), "{sql}");
    }
    // Another expression giving the same contributions is the same measure: the same answer,
    // not a fresh noise draw, so no number of rewrites averages the noise away.
    for sql in [
        "SELECT avg(BEN_NAI_ANN + 0) AS y FROM IR_BEN_R WHERE BEN_SEX_COD = 1",
        "SELECT avg(BEN_NAI_ANN * 1) AS y FROM IR_BEN_R WHERE BEN_SEX_COD = 1",
    ] {
        let r = w.query(&agg, sql).await.expect(sql);
        let y = arrow::compute::cast(batch(&r).column(0), &arrow::datatypes::DataType::Float64)
            .expect("f");
        let y0 = arrow::compute::cast(
            batch(&first).column(1),
            &arrow::datatypes::DataType::Float64,
        )
        .expect("f");
        assert_eq!(y.as_ref(), y0.as_ref(), "{sql}");
        let rules = &r.provenance.disclosure.as_ref().expect("report").rules;
        assert_eq!(rules.get("disclosure.overlap"), Some(&1), "{sql}");
    }
}

/// A differencing pair sent at once, N and N − 1 patients: were both read against the
/// project's ledger before either was added to it, each would get its own noise and their
/// difference would tell the left-out patient. The project's answers are taken one at a time:
/// the second of the pair repeats the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_differencing_pair_sent_at_once_gets_one_answer() {
    let w = world(150).await;
    let agg = w.permit(&w.project, Mode::Aggregate, None, None).await;
    let ext = w
        .permit(&w.project, Mode::Extract, Some(&["BEN_NIR_PSA"]), None)
        .await;
    let ids = strings(
        &w.query(&ext, "SELECT BEN_NIR_PSA FROM IR_BEN_R")
            .await
            .expect("ids"),
        0,
    );
    // Eight pairs, all sixteen queries at once; each pair's cell of its own (birth years of
    // one residue, ~19 patients, far from every other pair's), its target in it.
    let pairs: Vec<(String, String)> = ids
        .iter()
        .take(8)
        .enumerate()
        .map(|(round, id)| {
            let cell = format!("BEN_NAI_ANN % 8 = {round} OR BEN_NIR_PSA = '{id}'");
            let all = format!("SELECT count(*) AS n FROM IR_BEN_R WHERE {cell}");
            let but_one = format!(
                "SELECT count(*) AS n FROM IR_BEN_R WHERE ({cell}) AND BEN_NIR_PSA <> '{id}'"
            );
            (all, but_one)
        })
        .collect();
    let answers = futures::future::join_all(
        pairs
            .iter()
            .flat_map(|(a, b)| [a, b])
            .map(|sql| w.query(&agg, sql)),
    )
    .await;
    let repeated = |r: &QueryResult| {
        let d = r.provenance.disclosure.as_ref().expect("report");
        d.rules.get("disclosure.overlap").copied().unwrap_or(0)
    };
    for (round, ab) in answers.chunks(2).enumerate() {
        let [Ok(a), Ok(b)] = ab else {
            panic!("round {round}: {ab:?}");
        };
        assert_eq!(ints(a, 0), ints(b, 0), "round {round}: {:?}", pairs[round]);
        // Not by the luck of rounding: one of the two was answered from the other.
        assert_eq!(repeated(a) + repeated(b), 1, "round {round}");
    }
}

/// DataSHIELD's open issue #250: the mean of a 0/1 vector that is 1 for one patient reveals
/// them. Here the mean has one patient adding something: it is suppressed, whether the target
/// has the attribute or not, and so is the sum.
#[tokio::test]
async fn the_mean_of_a_one_patient_indicator_is_suppressed() {
    let w = world(150).await;
    let agg = w.permit(&w.project, Mode::Aggregate, None, None).await;
    let ext = w
        .permit(&w.project, Mode::Extract, Some(&["BEN_NIR_PSA"]), None)
        .await;
    let ids = strings(
        &w.query(&ext, "SELECT BEN_NIR_PSA FROM IR_BEN_R")
            .await
            .expect("ids"),
        0,
    );
    for id in ids.iter().take(5) {
        for sql in [
            format!(
                "SELECT avg(CASE WHEN BEN_NIR_PSA = '{id}' AND BEN_SEX_COD = 2 THEN 1 ELSE 0 END) FROM IR_BEN_R"
            ),
            format!(
                "SELECT sum(CASE WHEN BEN_NIR_PSA = '{id}' AND BEN_SEX_COD = 2 THEN 1 ELSE 0 END) FROM IR_BEN_R"
            ),
            format!(
                "SELECT count(CASE WHEN BEN_NIR_PSA = '{id}' AND BEN_SEX_COD = 2 THEN 1 END) FROM IR_BEN_R"
            ),
            format!(
                "SELECT count(*) FILTER (WHERE BEN_NIR_PSA = '{id}' AND BEN_SEX_COD = 2) FROM IR_BEN_R"
            ),
        ] {
            let r = w.query(&agg, &sql).await.expect(&sql);
            assert_eq!(ints(&r, 0), vec![None], "{sql}");
        }
    }
}

/// The airlock under attack: a result leaves only as an allowed file type, after two
/// distinct output checkers (neither the requester) approved the revision it is, computed
/// again on the versions reviewed; each review is signed, and the log proves two people
/// approved.
#[tokio::test]
async fn a_result_leaves_only_after_two_distinct_checkers_approve_it() {
    use shh_hub::access::airlock::{ExportAskRequest, ExportReviewRequest, ExportUpdateRequest};
    use shh_hub::access::projects::AddMemberRequest;
    let w = world(200).await;
    // rex researches and checks outputs: he may not check his own.
    let rex = w.f.user("rex", &[Role::Researcher, Role::Checker]).await;
    let olga = w.f.user("olga", &[Role::Checker]).await;
    let otto = w.f.user("otto", &[Role::Checker]).await;
    w.f.hub
        .project_add_member(
            &w.rita,
            &AddMemberRequest {
                project: w.project.clone(),
                user: "rex".into(),
            },
        )
        .await
        .expect("member");
    let permit =
        w.f.hub
            .permit_grant(&w.cora, &common::grant(&w.project, &["rex"]))
            .await
            .expect("grant")
            .permit
            .id;
    let ask = |format: &str| ExportAskRequest {
        permits: vec![permit.clone()],
        query: "SELECT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY BEN_SEX_COD".into(),
        reason: "Table 1 of the paper".into(),
        format: format.into(),
    };
    let e =
        w.f.hub
            .export_request(&rex, &ask("exe"))
            .await
            .expect_err("format");
    assert_eq!(rule(&e), Some("airlock.format"));
    let id =
        w.f.hub
            .export_request(&rex, &ask("csv"))
            .await
            .expect("request")
            .record
            .id;
    let review = |approve: bool| ExportReviewRequest {
        id: id.clone(),
        approve,
        note: "counts ≥ 11, no identifier".into(),
    };
    // A researcher of another project sees neither the request nor that it exists.
    let ruth = w.f.user("ruth", &[Role::Researcher]).await;
    let e = w.f.hub.export_show(&ruth, &id).await.expect_err("outsider");
    assert_eq!(e.kind(), shh_hub::ErrorKind::NotFound, "{e}");
    assert!(w.f.hub.exports(&ruth, None).await.expect("list").is_empty());
    assert_eq!(w.f.hub.exports(&rex, None).await.expect("list").len(), 1);
    assert_eq!(w.f.hub.exports(&olga, None).await.expect("list").len(), 1);
    let e =
        w.f.hub
            .export_review(&rex, &review(true))
            .await
            .expect_err("self");
    assert_eq!(rule(&e), Some("review.not-requester"));
    let e =
        w.f.hub
            .export_review(&w.rita, &review(true))
            .await
            .expect_err("not a checker");
    assert_eq!(rule(&e), Some("role"));
    w.f.hub
        .export_review(&olga, &review(true))
        .await
        .expect("olga");
    let e =
        w.f.hub
            .export_review(&olga, &review(true))
            .await
            .expect_err("twice");
    assert_eq!(rule(&e), Some("review.once"));
    let e =
        w.f.hub
            .export_release(&rex, &id)
            .await
            .expect_err("one approval");
    assert_eq!(rule(&e), Some("release.approved"));
    w.f.hub
        .export_review(&otto, &review(true))
        .await
        .expect("otto");
    let e =
        w.f.hub
            .export_release(&w.rita, &id)
            .await
            .expect_err("not the requester");
    assert_eq!(rule(&e), Some("release.requester"));
    let out = w.f.hub.export_release(&rex, &id).await.expect("release");
    let text = String::from_utf8(out.bytes.clone()).expect("csv");
    assert!(text.starts_with("BEN_SEX_COD,n\n"), "{text}");
    let released = out.view.record.releases.last().expect("release");
    assert_eq!(
        released.blake3,
        blake3::hash(&out.bytes).to_hex().to_string()
    );

    // An update is a new revision: its reviews start again.
    let v =
        w.f.hub
            .export_update(
                &rex,
                &ExportUpdateRequest {
                    id: id.clone(),
                    query: Some("SELECT count(*) AS n FROM IR_BEN_R".into()),
                    reason: None,
                },
            )
            .await
            .expect("update");
    assert_eq!(v.record.revision, 1);
    let e = w.f.hub.export_release(&rex, &id).await.expect_err("reset");
    assert_eq!(rule(&e), Some("release.approved"));

    // The log proves two distinct checkers signed the reviews of the release.
    let report =
        w.f.hub
            .audit_verify(
                &w.f.operator,
                &shh_hub::audit::AuditVerifyRequest::default(),
            )
            .await
            .expect("verify");
    assert!(report.ok, "{report:?}");
    for who in ["olga", "otto"] {
        assert!(report.deciders.iter().any(|d| d == who), "{report:?}");
    }
}

/// An extract leaves with the project's pseudonyms only: a hub pseudonym written into the
/// query (known from elsewhere) is caught at the request.
#[tokio::test]
async fn an_extract_cannot_carry_a_hub_pseudonym_out() {
    use shh_hub::access::airlock::ExportAskRequest;
    let w = world(60).await;
    let ext = w
        .permit(
            &w.project,
            Mode::Extract,
            Some(&["BEN_NIR_PSA", "BEN_SEX_COD"]),
            None,
        )
        .await;
    let hub_pseudonym = common::hub_pseudonyms(&w.f).await.pop_first().expect("one");
    let ask = |query: String| ExportAskRequest {
        permits: vec![ext.clone()],
        query,
        reason: "linkage".into(),
        format: "parquet".into(),
    };
    let e =
        w.f.hub
            .export_request(
                &w.rita,
                &ask(format!(
                    "SELECT BEN_NIR_PSA, '{hub_pseudonym}' AS k FROM IR_BEN_R"
                )),
            )
            .await
            .expect_err("hub pseudonym");
    assert_eq!(rule(&e), Some("airlock.hub-pseudonym"));
    w.f.hub
        .export_request(
            &w.rita,
            &ask("SELECT BEN_NIR_PSA, BEN_SEX_COD FROM IR_BEN_R".into()),
        )
        .await
        .expect("the project's pseudonyms leave");
}

/// Claims joined to beneficiaries on the patient: a permit on each dataset, of one project and
/// one mode; the join works as SNDS users write it, and its cells are protected like any.
#[tokio::test]
async fn a_join_of_two_datasets_takes_a_permit_on_each() {
    let w = world(150).await;
    w.f.hub
        .ingest(
            &w.f.operator,
            &shh_hub::Task::silent(),
            &w.f.ingest_request(150, "ER_PRS_F"),
        )
        .await
        .expect("ingest claims");
    let ben = w.permit(&w.project, Mode::Aggregate, None, None).await;
    let mut claims = common::grant(&w.project, &["rita"]);
    claims.dataset = "ER_PRS_F".into();
    let prs =
        w.f.hub
            .permit_grant(&w.cora, &claims)
            .await
            .expect("grant")
            .permit
            .id;
    let sql = "SELECT b.BEN_SEX_COD, count(DISTINCT p.BEN_NIR_PSA) AS patients, count(*) AS claims \
               FROM ER_PRS_F p JOIN IR_BEN_R b ON p.BEN_NIR_PSA = b.BEN_NIR_PSA \
               GROUP BY b.BEN_SEX_COD ORDER BY b.BEN_SEX_COD";
    let ask = |permits: Vec<String>| QueryRequest {
        permits,
        sql: sql.into(),
    };
    let r =
        w.f.hub
            .query(&w.rita, &ask(vec![prs.clone(), ben.clone()]))
            .await
            .expect("join");
    assert_eq!(batch(&r).num_rows(), 2);
    assert!(
        ints(&r, 1)
            .iter()
            .all(|v| v.is_some_and(|v| v % 5 == 0 && v > 0))
    );
    assert!(ints(&r, 2).iter().all(|v| v.is_some_and(|v| v > 100)));
    assert_eq!(r.provenance.versions.len(), 2);
    // Without the claims permit the claims table does not exist.
    let e =
        w.f.hub
            .query(&w.rita, &ask(vec![ben.clone()]))
            .await
            .expect_err("no claims permit");
    assert_eq!(e.kind(), shh_hub::ErrorKind::InvalidInput, "{e}");
    // Permits of one mode, one project, one per dataset.
    let ext = w.permit(&w.project, Mode::Extract, None, None).await;
    let e =
        w.f.hub
            .query(&w.rita, &ask(vec![prs.clone(), ext]))
            .await
            .expect_err("modes");
    assert_eq!(rule(&e), Some("query.one-mode"));
    let other = new_project(&w.f, &w.rita, "Other").await;
    let elsewhere = w.permit(&other, Mode::Aggregate, None, None).await;
    let e =
        w.f.hub
            .query(&w.rita, &ask(vec![prs.clone(), elsewhere]))
            .await
            .expect_err("projects");
    assert_eq!(rule(&e), Some("query.one-project"));
    let again = w.permit(&w.project, Mode::Aggregate, None, None).await;
    let e =
        w.f.hub
            .query(&w.rita, &ask(vec![ben, again]))
            .await
            .expect_err("datasets");
    assert_eq!(rule(&e), Some("query.one-dataset"));
}
