//! Rule `disclosure.shape`: the subset of SQL an aggregate permit answers, the one for which
//! the hub can tell which patients stand behind every output cell.
//!
//! Accepted: one level of aggregation (`GROUP BY`, or none: one cell) over the permit's views,
//! filtered, projected, aliased (CTEs), inner-joined on the patient column; above it, only
//! what reads the released cells (`HAVING`, arithmetic, `ORDER BY`, `LIMIT`). Refused, with
//! the reason: row-level output, aggregates of aggregates, unions, window functions,
//! `DISTINCT` rows, subqueries in expressions, `VALUES`, joins not on the patient, outer and
//! cross joins, grouping by the patient, `GROUPING SETS`/`ROLLUP`/`CUBE`, and a patient
//! column made by anything but naming it.

use crate::gate::Refused;
use crate::pseudonyms::PATIENT;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ExprSchema};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Aggregate, BinaryExpr, Expr, JoinType, LogicalPlan, Operator};
use std::collections::BTreeSet;

/// The rule's name in refusals and audit events.
pub const RULE: &str = "disclosure.shape";
/// The rule refusing row-level output.
pub const ROWS: &str = "disclosure.aggregate-only";

fn refuse(reason: impl Into<String>) -> Refused {
    Refused {
        rule: RULE,
        reason: reason.into(),
    }
}

/// What the rule found: the one aggregate, and the patient column at its input.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The aggregate.
    pub aggregate: Aggregate,
    /// The patient column in the aggregate's input.
    pub patient: Column,
}

/// Checks `plan` (unoptimized, the views still its leaves) against the subset.
pub fn check(plan: &LogicalPlan, views: &BTreeSet<String>) -> Result<Shape, Refused> {
    let mut any = false;
    plan.apply(|p| {
        any |= matches!(p, LogicalPlan::Aggregate(_));
        Ok(if any {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })
    .map_err(|e| refuse(e.to_string()))?;
    let mut found = None;
    if any {
        walk(plan, false, views, &mut found)?;
    }
    let Some(aggregate) = found else {
        return Err(Refused {
            rule: ROWS,
            reason: "an aggregate permit answers aggregates only (count, count distinct, sum, \
                     avg, over all rows or by GROUP BY); row-level output is refused"
                .into(),
        });
    };
    let input = aggregate.input.schema();
    let patient = input
        .iter()
        .find(|(_, f)| is_patient(f))
        .map(|(q, f)| Column::new(q.cloned(), f.name()))
        .ok_or_else(|| {
            refuse(
                "the rows aggregated no longer carry the patient column: keep it (by name) in \
                 the subqueries and CTEs feeding the aggregate, so the patients behind each cell \
                 can be counted",
            )
        })?;
    for g in &aggregate.group_expr {
        if matches!(g, Expr::GroupingSet(_)) {
            return Err(refuse(
                "GROUPING SETS, ROLLUP and CUBE are not in the aggregate subset: one level of GROUP BY",
            ));
        }
        for c in g.column_refs() {
            if input
                .field_from_column(c)
                .map(|f| is_patient(f))
                .unwrap_or(false)
            {
                return Err(refuse(
                    "grouping by the patient column makes one patient per cell",
                ));
            }
        }
    }
    Ok(Shape { aggregate, patient })
}

fn is_patient(f: &arrow::datatypes::Field) -> bool {
    f.metadata().get(PATIENT).is_some_and(|v| v == "true")
}

fn exprs_traceable(plan: &LogicalPlan) -> Result<(), Refused> {
    let mut bad = None;
    for e in plan.expressions() {
        e.apply(|e| {
            let what = match e {
                Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_) => {
                    Some("a subquery in an expression")
                }
                Expr::OuterReferenceColumn(..) => Some("a correlated reference"),
                Expr::WindowFunction(_) => Some("a window function"),
                _ => None,
            };
            if let Some(w) = what {
                bad = Some(w);
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| refuse(e.to_string()))?;
    }
    match bad {
        Some(w) => Err(refuse(format!(
            "{w} is not in the aggregate subset: the patients behind its cells cannot be traced"
        ))),
        None => Ok(()),
    }
}

fn patient_column(e: &Expr, schemas: &[&DFSchema]) -> bool {
    let Expr::Column(c) = e else { return false };
    schemas.iter().any(|s| {
        s.field_from_column(c)
            .map(|f| is_patient(f))
            .unwrap_or(false)
    })
}

fn walk(
    plan: &LogicalPlan,
    under: bool,
    views: &BTreeSet<String>,
    found: &mut Option<Aggregate>,
) -> Result<(), Refused> {
    exprs_traceable(plan)?;
    match plan {
        LogicalPlan::Projection(p) => {
            if under {
                // A column passes as the patient only by being named: nothing computed (a
                // CASE, a COALESCE) may carry its mark.
                for (e, (_, f)) in p.expr.iter().zip(p.schema.iter()) {
                    if !is_patient(f) {
                        continue;
                    }
                    let inner = match e {
                        Expr::Alias(a) => a.expr.as_ref(),
                        other => other,
                    };
                    // The view's own projection makes it (DataFusion inlines views while
                    // planning); SQL cannot call that function, it has no name in the session.
                    let made_by_view = matches!(inner, Expr::ScalarFunction(f)
                        if f.func.name() == crate::pseudonyms::PROJECT_PSEUDONYM);
                    if !made_by_view && !patient_column(inner, &[p.input.schema()]) {
                        return Err(refuse(format!(
                            "{} is computed, yet carries the patient's mark",
                            f.name()
                        )));
                    }
                }
            }
            walk(&p.input, under, views, found)
        }
        LogicalPlan::Filter(f) => walk(&f.input, under, views, found),
        LogicalPlan::SubqueryAlias(a) => walk(&a.input, under, views, found),
        LogicalPlan::Sort(s) if !under => walk(&s.input, under, views, found),
        LogicalPlan::Limit(l) if !under => walk(&l.input, under, views, found),
        LogicalPlan::Aggregate(a) if !under => {
            if found.is_some() {
                return Err(refuse("one aggregate per query"));
            }
            *found = Some(a.clone());
            walk(&a.input, true, views, found)
        }
        LogicalPlan::Aggregate(_) => Err(refuse(
            "an aggregate of aggregates is not in the subset: one level of GROUP BY",
        )),
        LogicalPlan::Join(j) if under => {
            if j.join_type != JoinType::Inner {
                return Err(refuse(format!(
                    "{} joins are not in the aggregate subset: inner joins on the patient column",
                    j.join_type
                )));
            }
            let schemas = [j.left.schema().as_ref(), j.right.schema().as_ref()];
            let on_patient =
                j.on.iter()
                    .any(|(l, r)| patient_column(l, &schemas) && patient_column(r, &schemas))
                    || j.filter.as_ref().is_some_and(|f| {
                        split_conjunction(f).into_iter().any(|c| {
                        matches!(c, Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right })
                            if patient_column(left, &schemas) && patient_column(right, &schemas))
                    })
                    });
            if !on_patient {
                return Err(refuse(
                    "a join must match the patient columns of both sides (… ON a.BEN_NIR_PSA = \
                     b.BEN_NIR_PSA): any other join mixes patients in one row",
                ));
            }
            walk(&j.left, under, views, found)?;
            walk(&j.right, under, views, found)
        }
        LogicalPlan::TableScan(t) if under => {
            let name = t.table_name.table();
            let base = name.strip_suffix(crate::view::BASE_SUFFIX);
            let ours = views.contains(name) || base.is_some_and(|b| views.contains(b));
            if ours && t.table_name.schema().is_none() {
                Ok(())
            } else {
                Err(refuse(format!(
                    "{} is not a view of this permit",
                    t.table_name
                )))
            }
        }
        LogicalPlan::TableScan(_) => Err(refuse(
            "rows reach the output without passing the aggregate",
        )),
        other => Err(refuse(format!(
            "{} is not in the aggregate subset",
            node_name(other)
        ))),
    }
}

fn node_name(p: &LogicalPlan) -> &'static str {
    match p {
        LogicalPlan::Window(_) => "a window function",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::Distinct(_) => "SELECT DISTINCT over rows",
        LogicalPlan::Values(_) => "VALUES",
        LogicalPlan::EmptyRelation(_) => "a query without FROM",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::RecursiveQuery(_) => "a recursive query",
        LogicalPlan::Limit(_) => "a LIMIT beneath the aggregate",
        LogicalPlan::Sort(_) => "an ORDER BY beneath the aggregate",
        LogicalPlan::Join(_) => "a join above the aggregate",
        LogicalPlan::Subquery(_) => "a subquery",
        _ => "this construct",
    }
}
