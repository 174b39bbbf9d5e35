//! The session a query runs in, built from nothing: DataFusion's scalar, aggregate and window
//! functions and their planners, and the views registered for it. Not its defaults: no table
//! functions, no table factories or file formats (so no `CREATE EXTERNAL TABLE` could resolve
//! even past the gate), no URL tables, no `information_schema`.
//!
//! Every query gets a memory pool of its own ([`Limits::memory_bytes`]) and a wall-time limit
//! ([`Limits::wall`]) enforced by dropping its stream (DataFusion's operators yield
//! cooperatively; where one does not, the hub runs the query in a child process); its result is
//! capped at [`Limits::rows`] rows. Recursive CTEs are off (they generate rows without end).

use crate::gate::{Refused, check_statement};
use arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionStateDefaults;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use std::sync::Arc;
use std::time::Duration;

/// What one query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory of its operators (hash tables, sorts), in bytes.
    pub memory_bytes: usize,
    /// Wall time.
    pub wall: Duration,
    /// Rows of its result.
    pub rows: usize,
    /// Partitions (fixed, so results do not depend on the machine).
    pub partitions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            wall: Duration::from_secs(60),
            rows: 100_000,
            partitions: 2,
        }
    }
}

/// Why a query did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Refused before planning (the statement gate) or by the sandbox.
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    /// It names something the session does not have, or does not plan.
    #[error("{0}")]
    Plan(String),
    /// It ran out of its memory, time or result size.
    #[error("stopped: {0}")]
    Limit(String),
    /// It failed while running.
    #[error("the query failed: {0}")]
    Execution(String),
}

/// A session for one caller's queries.
pub struct Sandbox {
    ctx: SessionContext,
    limits: Limits,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sandbox({:?})", self.limits)
    }
}

impl Sandbox {
    /// An empty session under `limits`.
    pub fn new(limits: Limits) -> Result<Self, QueryError> {
        let mut config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(limits.partitions.max(1))
            .with_default_catalog_and_schema("shh", "permit")
            .with_create_default_catalog_and_schema(true);
        let options = config.options_mut();
        // SNDS names are upper case and written unquoted (`SELECT BEN_NIR_PSA FROM ER_PRS_F`).
        options.sql_parser.enable_ident_normalization = false;
        // A recursive CTE generates rows without end; aggregates never need one.
        options.execution.enable_recursive_ctes = false;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .build_arc()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
            .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
            .with_window_functions(SessionStateDefaults::default_window_functions())
            .with_expr_planners(SessionStateDefaults::default_expr_planners())
            .build();
        Ok(Self {
            ctx: SessionContext::new_with_state(state),
            limits,
        })
    }

    /// Makes `table` visible as `name` (a permit's view).
    pub fn register(&self, name: &str, table: Arc<dyn TableProvider>) -> Result<(), QueryError> {
        // Bare: the name as given, case kept (`TableReference::from` would lower-case it).
        self.ctx
            .register_table(datafusion::common::TableReference::bare(name), table)
            .map(|_| ())
            .map_err(|e| QueryError::Plan(e.to_string()))
    }

    /// The session's state (to plan expressions against it).
    pub fn state(&self) -> datafusion::execution::SessionState {
        self.ctx.state()
    }

    /// The limits queries run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Lets the views read `store` (the hub's encrypted store) at [`crate::table::STORE_URL`].
    /// Not a table: SQL cannot name a URL in this session.
    pub fn register_store(
        &self,
        store: Arc<dyn object_store::ObjectStore>,
    ) -> Result<(), QueryError> {
        let url =
            datafusion::execution::object_store::ObjectStoreUrl::parse(crate::table::STORE_URL)
                .map_err(|e| QueryError::Plan(e.to_string()))?;
        self.ctx.register_object_store(url.as_ref(), store);
        Ok(())
    }

    /// Runs `sql` (one query) and returns its result, within the limits.
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        let plan = self.plan(sql).await?;
        self.collect(plan).await
    }

    /// Gates and plans `sql` (one read-only query), unoptimized: the disclosure rules read
    /// this plan, where the permit's views are still the leaves.
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let statement = check_statement(sql)?;
        let state = self.ctx.state();
        let plan = state
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                statement,
            )))
            .await
            .map_err(|e| QueryError::Plan(e.to_string()))?;
        // The second line: whatever got past the gate, nothing but a read-only query plans.
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| {
                QueryError::Refused(Refused {
                    rule: "sql.query-only",
                    reason: e.to_string(),
                })
            })?;
        Ok(plan)
    }

    /// Runs a plan to its end, within the limits.
    pub async fn collect(&self, plan: LogicalPlan) -> Result<Vec<RecordBatch>, QueryError> {
        let frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| QueryError::Plan(e.to_string()))?;
        let rows = self.limits.rows;
        let collect = async move {
            use futures::StreamExt;
            let mut stream = frame
                .execute_stream()
                .await
                .map_err(|e| QueryError::Execution(e.to_string()))?;
            let mut out = Vec::new();
            let mut n = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(execution)?;
                n += batch.num_rows();
                if n > rows {
                    return Err(QueryError::Limit(format!(
                        "the result has more than {rows} rows"
                    )));
                }
                out.push(batch);
            }
            Ok(out)
        };
        match tokio::time::timeout(self.limits.wall, collect).await {
            Ok(r) => r,
            Err(_) => Err(QueryError::Limit(format!(
                "the query ran longer than {} s",
                self.limits.wall.as_secs()
            ))),
        }
    }
}

fn execution(e: datafusion::error::DataFusionError) -> QueryError {
    let text = e.to_string();
    if text.contains("Resources exhausted") {
        QueryError::Limit(format!(
            "the query needs more memory than it may use: {text}"
        ))
    } else {
        QueryError::Execution(text)
    }
}
