//! The sandbox under attack: what SQL can reach. Each escape is refused with its rule, or
//! finds nothing to reach.

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use shh_query::{Limits, QueryError, Sandbox};
use std::sync::Arc;

/// A sandbox holding `ER_PRS_F` with `n` rows of `patients` patients.
fn sandbox_of(limits: Limits, n: usize, patients: usize) -> Sandbox {
    let schema = Arc::new(Schema::new(vec![
        Field::new("BEN_NIR_PSA", DataType::Utf8, false),
        Field::new("PRS_ACT_QTE", DataType::Int64, false),
    ]));
    let ids: Vec<String> = (0..n)
        .map(|i| format!("p{}", i % patients.max(1)))
        .collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
        ],
    )
    .expect("batch");
    let s = Sandbox::new(limits).expect("sandbox");
    let t = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
    s.register("ER_PRS_F", Arc::new(t)).expect("register");
    s
}

fn sandbox(limits: Limits) -> Sandbox {
    sandbox_of(limits, 3, 2)
}

fn rows(b: &[RecordBatch]) -> usize {
    b.iter().map(RecordBatch::num_rows).sum()
}

#[tokio::test]
async fn snds_names_work_as_snds_users_write_them() {
    let s = sandbox(Limits::default());
    let r = s
        .run("SELECT BEN_NIR_PSA, SUM(PRS_ACT_QTE) AS n FROM ER_PRS_F GROUP BY BEN_NIR_PSA")
        .await
        .expect("query");
    assert_eq!(rows(&r), 2);
    // Quoted as well.
    let r = s
        .run(r#"SELECT "BEN_NIR_PSA" FROM "ER_PRS_F""#)
        .await
        .expect("quoted");
    assert_eq!(rows(&r), 3);
}

#[tokio::test]
async fn files_urls_table_functions_and_the_schema_are_out_of_reach() {
    let s = sandbox(Limits::default());
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'file:///etc/passwd'",
        "SELECT * FROM 'https://example.invalid/x.parquet'",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM information_schema.df_settings",
        "SELECT * FROM generate_series(1, 1000000000000)",
        "SELECT * FROM range(1000000000000)",
        "SELECT * FROM datafusion.public.t",
        "SELECT * FROM read_parquet('/etc/passwd')",
    ] {
        match s.run(sql).await {
            Err(QueryError::Plan(_)) => {}
            other => panic!("{sql}: {other:?}"),
        }
    }
    for sql in [
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
        "COPY ER_PRS_F TO '/tmp/out.parquet'",
        "CREATE VIEW v AS SELECT * FROM ER_PRS_F",
        "SET datafusion.execution.target_partitions = 64",
        "EXPLAIN SELECT * FROM ER_PRS_F",
        "INSERT INTO ER_PRS_F VALUES ('p9', 1)",
        "SHOW ALL",
    ] {
        match s.run(sql).await {
            Err(QueryError::Refused(r)) => assert_eq!(r.rule, "sql.query-only", "{sql}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn resource_exhaustion_stops_at_the_limits() {
    let s = sandbox(Limits {
        rows: 5,
        ..Limits::default()
    });
    // A cartesian product past the result limit.
    let cross = "SELECT a.BEN_NIR_PSA FROM ER_PRS_F a, ER_PRS_F b, ER_PRS_F c";
    assert!(matches!(s.run(cross).await, Err(QueryError::Limit(_))));
    // A recursive CTE would generate rows without end: it does not plan.
    let endless =
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
    assert!(matches!(s.run(endless).await, Err(QueryError::Plan(_))));
}

/// A query that would run for hours (a three-way product of 2,000 rows, 8·10⁹ combinations)
/// is stopped at its wall-time limit, within the limit plus 2 s, and the session answers the
/// next query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_stopped_at_its_wall_time_limit() {
    let wall = std::time::Duration::from_secs(1);
    let s = sandbox_of(
        Limits {
            wall,
            ..Limits::default()
        },
        2_000,
        100,
    );
    let started = std::time::Instant::now();
    let r = s
        .run("SELECT count(*) FROM ER_PRS_F a, ER_PRS_F b, ER_PRS_F c WHERE a.PRS_ACT_QTE + b.PRS_ACT_QTE > c.PRS_ACT_QTE")
        .await;
    assert!(matches!(r, Err(QueryError::Limit(_))), "{r:?}");
    assert!(
        started.elapsed() < wall + std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let ok = s
        .run("SELECT count(*) FROM ER_PRS_F")
        .await
        .expect("next query");
    assert_eq!(rows(&ok), 1);
}

/// A hash aggregation bigger than the memory pool fails as a limit, not as an abort.
#[tokio::test]
async fn a_query_past_its_memory_pool_fails_cleanly() {
    let s = sandbox_of(
        Limits {
            memory_bytes: 256 << 10,
            ..Limits::default()
        },
        200_000,
        200_000,
    );
    let r = s
        .run("SELECT BEN_NIR_PSA, count(*) FROM ER_PRS_F GROUP BY BEN_NIR_PSA ORDER BY BEN_NIR_PSA")
        .await;
    assert!(matches!(r, Err(QueryError::Limit(_))), "{r:?}");
}
