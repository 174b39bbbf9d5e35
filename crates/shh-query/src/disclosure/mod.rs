//! Disclosure control for aggregate permits, as rules over the query's plan (one rule per
//! file, each named in the audit event):
//!
//! - [`shape`] (`disclosure.shape`, `disclosure.aggregate-only`): the traceable subset;
//! - [`functions`] (`disclosure.function`): count, count distinct, sum, avg only;
//! - [`overlap`] (`disclosure.overlap`): differencing against the project's ledger;
//! - [`threshold`] (`disclosure.threshold`): at least 11 distinct patients per cell;
//! - [`dominance`] (`disclosure.dominance`): no patient makes up most of a cell;
//! - [`secondary`] (`disclosure.secondary`): margins do not reveal a suppressed cell;
//! - [`perturb`] (`disclosure.perturbation`): cell-key noise, then rounding.
//!
//! How a query runs: the plan's one aggregate is rewritten so that every measure is computed
//! by [`measure`] (per patient, from the record keys); the cells are decided in Rust, against
//! the ledger; the released cells replace the aggregate in the plan; and what the query does
//! above its aggregate (`HAVING`, arithmetic, `ORDER BY`) runs on released values only.

pub mod cell;
pub mod dominance;
pub mod functions;
pub mod iblt;
pub mod measure;
pub mod overlap;
pub mod perturb;
pub mod secondary;
pub mod shape;
pub mod threshold;

use crate::pseudonyms::Pseudonyms;
use crate::sandbox::{QueryError, Sandbox};
use arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use cell::Cell;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, cast, lit, when};
use functions::{Kind, MeasureSpec};
use measure::{Encoding, Measure, Summary};
use overlap::{Ledger, LedgerCell};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A hub's disclosure settings. Set by the operator in `shh.toml`; no query can change them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Fewest distinct patients behind a published cell.
    pub threshold: u64,
    /// Published counts are rounded to a multiple of this.
    pub rounding: u64,
    /// Count noise: uniform-triangular on ±this.
    pub count_noise: u64,
    /// Sum and mean noise, as a fraction of the cell's largest contribution.
    pub magnitude_noise: f64,
    /// Largest share of a sum one patient may make up.
    pub dominance_one: f64,
    /// Largest share two patients may make up.
    pub dominance_two: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            threshold: 11,
            rounding: 5,
            count_noise: 2,
            magnitude_noise: 0.5,
            dominance_one: 0.5,
            dominance_two: 0.8,
        }
    }
}

impl Settings {
    /// Refuses settings that would switch the protection off.
    pub fn check(&self) -> Result<(), String> {
        if self.threshold < 2 {
            return Err("disclosure.threshold must be at least 2".into());
        }
        if self.rounding < 1 {
            return Err("disclosure.rounding must be at least 1".into());
        }
        if !(self.magnitude_noise >= 0.0 && self.magnitude_noise <= 10.0) {
            return Err("disclosure.magnitude_noise must be between 0 and 10".into());
        }
        for (name, v) in [
            ("dominance_one", self.dominance_one),
            ("dominance_two", self.dominance_two),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("disclosure.{name} must be in (0, 1]"));
            }
        }
        Ok(())
    }
}

/// What disclosure control did to one result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Cells computed (output rows × measures).
    pub cells: u64,
    /// Cells published.
    pub published: u64,
    /// Cells each rule decided, by rule name.
    pub rules: BTreeMap<String, u64>,
}

fn plan_err(e: datafusion::error::DataFusionError) -> QueryError {
    QueryError::Plan(e.to_string())
}

/// Answers an aggregate query under disclosure control.
pub async fn answer(
    sandbox: &Sandbox,
    plan: LogicalPlan,
    views: &BTreeSet<String>,
    keys: &Arc<Pseudonyms>,
    settings: &Settings,
    ledger: &dyn Ledger,
) -> Result<(Vec<RecordBatch>, Report), QueryError> {
    let shape = shape::check(&plan, views)?;
    let specs = functions::measures(&shape.aggregate)?;
    let agg = &shape.aggregate;
    let groups = agg.group_expr.len();
    let rewritten = rewrite(agg, &shape.patient, &specs, keys)?;
    let batch = collect_one(sandbox, rewritten).await?;
    let rows = batch.num_rows();
    let distinct = distinct_counts(sandbox, agg, &specs, &batch).await?;

    // Decode every cell, column by column (a measure is a column).
    let mut columns: Vec<Vec<Cell>> = Vec::with_capacity(specs.len());
    for (i, _) in specs.iter().enumerate() {
        let m = batch.column(groups + i).as_binary::<i32>();
        let mut cells = Vec::with_capacity(rows);
        for r in 0..rows {
            let summary = Summary::from_bytes(m.value(r))
                .ok_or_else(|| QueryError::Execution("a measure's summary is torn".into()))?;
            cells.push(Cell {
                summary,
                distinct: distinct.get(&i).map(|d| d[r]),
                released: None,
                fired: None,
                earlier: false,
                source: None,
                entry: None,
            });
        }
        columns.push(cells);
    }

    let mut report = Report::default();
    let mut fresh: Vec<LedgerCell> = Vec::new();
    // The sketches of `fresh`, parsed (a result's cells are compared with each other too).
    let mut fresh_sketches: Vec<iblt::Iblt> = Vec::new();
    for (spec, cells) in specs.iter().zip(columns.iter_mut()) {
        let counts: Vec<u64> = cells.iter().map(|c| c.summary.patients).collect();
        let near = overlap::Nearby::read(ledger, &spec.signature, &counts, settings.threshold)
            .await
            .map_err(QueryError::Execution)?;
        for cell in cells.iter_mut() {
            let s = &cell.summary;
            let same_query = fresh.iter().zip(&fresh_sketches).position(|(c, k)| {
                c.signature == spec.signature && overlap::close(s, c, Some(k), settings.threshold)
            });
            if let Some(v) = near.earlier(s, &spec.expression, settings.threshold) {
                cell.released = v;
                cell.earlier = true;
                cell.fired = Some(overlap::RULE);
            } else if let Some(j) = same_query {
                // Resolved once the result's cells are final (below).
                cell.earlier = true;
                cell.fired = Some(overlap::RULE);
                cell.source = (fresh[j].expression == spec.expression).then_some(j);
            } else if !threshold::passes(spec.kind, s, settings) {
                cell.fired = Some(threshold::RULE);
            } else if dominance::dominated(spec.kind, s, settings) {
                cell.fired = Some(dominance::RULE);
            } else {
                cell.released = Some(perturb::release(
                    spec.kind,
                    s,
                    cell.distinct,
                    &spec.signature,
                    settings,
                ));
                cell.fired = Some(perturb::RULE);
            }
            if !cell.earlier {
                // Suppressed cells too: asking again from the other side finds them.
                cell.entry = Some(fresh.len());
                fresh_sketches.push(s.sketch.clone());
                fresh.push(LedgerCell {
                    signature: spec.signature.clone(),
                    expression: spec.expression.clone(),
                    patients: s.patients,
                    key: s.key,
                    sketch: s.sketch.to_bytes(),
                    released: cell.released,
                });
            }
        }
    }
    // Secondary suppression, and the cells that repeat a cell of this result, until nothing
    // changes: a cell repeating one that secondary suppression hid is hidden too, and may in
    // turn call for more suppression in its own column. Each pass only suppresses, so it ends.
    loop {
        let mut changed = 0;
        for cell in columns.iter_mut().flatten() {
            if let Some(j) = cell.source
                && cell.released != fresh[j].released
            {
                cell.released = fresh[j].released;
                changed += 1;
            }
        }
        for cells in columns.iter_mut() {
            let mut refs: Vec<&mut Cell> = cells.iter_mut().collect();
            changed += secondary::apply(&mut refs, settings);
            for cell in cells.iter() {
                if let Some(i) = cell.entry {
                    fresh[i].released = cell.released;
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for cell in columns.iter().flatten() {
        report.cells += 1;
        if cell.released.is_some() {
            report.published += 1;
        }
        if let Some(rule) = cell.fired {
            *report.rules.entry(rule.to_owned()).or_default() += 1;
        }
    }
    ledger.add(&fresh).await.map_err(QueryError::Execution)?;

    // The released cells, in the aggregate's own output schema.
    let out_schema = agg.schema.clone();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(out_schema.fields().len());
    for g in 0..groups {
        arrays.push(batch.column(g).clone());
    }
    for (cells, field) in columns.iter().zip(out_schema.fields().iter().skip(groups)) {
        let v: Float64Array = cells.iter().map(|c| c.released).collect();
        let a = arrow::compute::cast(&v, field.data_type())
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        arrays.push(a);
    }
    let fields: Vec<Field> = out_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
        .collect();
    let mem_schema = Arc::new(Schema::new(fields));
    let released = RecordBatch::try_new(mem_schema.clone(), arrays)
        .map_err(|e| QueryError::Execution(e.to_string()))?;
    let table = MemTable::try_new(mem_schema, vec![vec![released]]).map_err(plan_err)?;
    let exprs: Vec<Expr> = out_schema
        .iter()
        .enumerate()
        .map(|(i, (q, f))| {
            Expr::Column(Column::new(Some("__shh_released"), format!("c{i}")))
                .alias_qualified(q.cloned(), f.name())
        })
        .collect();
    let replacement =
        LogicalPlanBuilder::scan("__shh_released", provider_as_source(Arc::new(table)), None)
            .and_then(|b| b.project(exprs))
            .and_then(|b| b.build())
            .map_err(plan_err)?;
    let upper = plan
        .transform_down(|node| {
            if matches!(node, LogicalPlan::Aggregate(_)) {
                Ok(Transformed::new(
                    replacement.clone(),
                    true,
                    TreeNodeRecursion::Jump,
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map_err(plan_err)?
        .data
        .transform_up(|node| Ok(Transformed::yes(node.recompute_schema()?)))
        .map_err(plan_err)?
        .data;
    let out = sandbox.collect(upper).await?;
    Ok((out, report))
}

/// A plan's result as one batch (an aggregate over no rows: an empty batch of its schema).
async fn collect_one(sandbox: &Sandbox, plan: LogicalPlan) -> Result<RecordBatch, QueryError> {
    let logical = Arc::new(plan.schema().as_arrow().clone());
    let batches = sandbox.collect(plan).await?;
    let schema = batches.first().map_or(logical, |b| b.schema());
    arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| QueryError::Execution(e.to_string()))
}

/// What each measure counts, per row of the input: one where it counts a row (the argument
/// is there, the filter holds), else nothing; for a sum or mean, the value.
fn measured(spec: &MeasureSpec) -> Result<Expr, QueryError> {
    let null = || lit(ScalarValue::Float64(None));
    let mut value = match (spec.kind, &spec.arg) {
        (Kind::Sum | Kind::Avg, Some(a)) => cast(a.clone(), DataType::Float64),
        (_, None) => lit(1.0f64),
        (_, Some(a)) => when(a.clone().is_not_null(), lit(1.0f64))
            .otherwise(null())
            .map_err(plan_err)?,
    };
    if let Some(f) = &spec.filter {
        value = when(f.clone(), value).otherwise(null()).map_err(plan_err)?;
    }
    Ok(value)
}

/// The aggregate with every measure computed per patient, in two steps: DataFusion's own
/// grouped aggregate gives, per cell and patient, each measure's rows and exact sum (a
/// vectorized hash aggregate, the fastest part of the engine); then [`measure`] makes each
/// cell's summary from its patients, one row each, so it keeps no table of patients.
fn rewrite(
    agg: &Aggregate,
    patient: &Column,
    specs: &[MeasureSpec],
    keys: &Arc<Pseudonyms>,
) -> Result<LogicalPlan, QueryError> {
    use datafusion::functions_aggregate::expr_fn::{count, sum};
    let mut per_patient = Vec::with_capacity(specs.len() * 2);
    for (i, spec) in specs.iter().enumerate() {
        let value = measured(spec)?;
        per_patient.push(count(value.clone()).alias(format!("__n{i}")));
        if matches!(spec.kind, Kind::Sum | Kind::Avg) {
            // Millionths, exact: the cast rounds half away from zero and refuses what is not
            // a finite number or is beyond ±10²⁴.
            per_patient.push(sum(cast(value, measure::VALUE_MICROS)).alias(format!("__s{i}")));
        }
    }
    // By the patient's record key: a number, cheaper to group by than the pseudonym, and
    // looked up once per run of the patient's rows (they come together from the scan), not
    // once per (cell, patient) in the order a hash table gives them out.
    let mut groups = agg.group_expr.clone();
    groups.push(
        keys.record_key_udf()
            .call(vec![Expr::Column(patient.clone())])
            .alias("__shh_patient"),
    );
    let first = LogicalPlan::Aggregate(
        Aggregate::try_new(agg.input.clone(), groups, per_patient).map_err(plan_err)?,
    );
    let schema = first.schema().clone();
    let at = |name: &str| -> Result<Expr, QueryError> {
        let i = schema
            .index_of_column_by_name(None, name)
            .ok_or_else(|| QueryError::Plan(format!("no column {name} in the rewritten plan")))?;
        Ok(Expr::Column(Column::from(schema.qualified_field(i))))
    };
    let g = agg.group_expr.len();
    let cell: Vec<Expr> = (0..g)
        .map(|j| Expr::Column(Column::from(schema.qualified_field(j))))
        .collect();
    let rk = at("__shh_patient")?;
    let mut exprs = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let encoding = match spec.kind {
            Kind::Patients => Encoding::Patients,
            Kind::Rows | Kind::Sum => Encoding::Additive,
            Kind::Avg => Encoding::Mean,
            Kind::Distinct => Encoding::Distinct,
        };
        let mut args = vec![rk.clone(), at(&format!("__n{i}"))?];
        if matches!(spec.kind, Kind::Sum | Kind::Avg) {
            args.push(at(&format!("__s{i}"))?);
        }
        exprs.push(
            Expr::AggregateFunction(AggregateFunction::new_udf(
                Measure::udaf(encoding),
                args,
                false,
                None,
                vec![],
                None,
            ))
            .alias(format!("__m{i}")),
        );
    }
    let a = Aggregate::try_new(Arc::new(first), cell, exprs).map_err(plan_err)?;
    Ok(LogicalPlan::Aggregate(a))
}

/// The counts of distinct values (of columns other than the patient) of each such measure,
/// by its index, for every row of `cells` (the measures' result, whose first columns are the
/// groups): a plain `count(DISTINCT …)` over the same input and groups, matched by group.
async fn distinct_counts(
    sandbox: &Sandbox,
    agg: &Aggregate,
    specs: &[MeasureSpec],
    cells: &RecordBatch,
) -> Result<BTreeMap<usize, Vec<i64>>, QueryError> {
    let wanted: Vec<(usize, &Expr, &Option<Expr>)> = specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == Kind::Distinct)
        .filter_map(|(i, s)| s.arg.as_ref().map(|a| (i, a, &s.filter)))
        .collect();
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let exprs: Vec<Expr> = wanted
        .iter()
        .map(|(i, a, f)| {
            Expr::AggregateFunction(AggregateFunction::new_udf(
                datafusion::functions_aggregate::count::count_udaf(),
                vec![(*a).clone()],
                true,
                f.as_ref().map(|f| Box::new(f.clone())),
                vec![],
                None,
            ))
            .alias(format!("__d{i}"))
        })
        .collect();
    let plan = LogicalPlan::Aggregate(
        Aggregate::try_new(agg.input.clone(), agg.group_expr.clone(), exprs).map_err(plan_err)?,
    );
    let counts = collect_one(sandbox, plan).await?;
    let g = agg.group_expr.len();
    let exec = |e: arrow::error::ArrowError| QueryError::Execution(e.to_string());
    // Which row of `counts` holds each row's group.
    let order: Vec<usize> = if g == 0 {
        vec![0; cells.num_rows()]
    } else {
        let fields = (0..g)
            .map(|j| arrow::row::SortField::new(cells.schema().field(j).data_type().clone()))
            .collect();
        let conv = arrow::row::RowConverter::new(fields).map_err(exec)?;
        let theirs = conv.convert_columns(&counts.columns()[..g]).map_err(exec)?;
        let ours = conv.convert_columns(&cells.columns()[..g]).map_err(exec)?;
        let index: std::collections::HashMap<&[u8], usize> = (0..theirs.num_rows())
            .map(|r| (theirs.row(r).data(), r))
            .collect();
        (0..ours.num_rows())
            .map(|r| {
                index.get(ours.row(r).data()).copied().ok_or_else(|| {
                    QueryError::Execution("a cell without its distinct count".into())
                })
            })
            .collect::<Result<_, _>>()?
    };
    let mut out = BTreeMap::new();
    for (k, (i, _, _)) in wanted.iter().enumerate() {
        let a = arrow::compute::cast(counts.column(g + k), &DataType::Int64).map_err(exec)?;
        let a = a.as_primitive::<arrow::datatypes::Int64Type>();
        let v = order
            .iter()
            .map(|&r| if r < a.len() { a.value(r) } else { 0 })
            .collect();
        out.insert(*i, v);
    }
    Ok(out)
}
