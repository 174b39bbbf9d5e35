//! Rule `disclosure.function`: which aggregates an aggregate permit computes. `count(*)`,
//! `count(x)`, `count(DISTINCT x)`, `sum(x)` and `avg(x)` (with `FILTER (WHERE …)`); nothing
//! that returns one person's value (`min`, `max`, `median`, percentiles, `first_value`,
//! `array_agg`, `string_agg`…) and nothing else the rules cannot trace.

use crate::gate::Refused;
use crate::pseudonyms::PATIENT;
use datafusion::common::{DFSchema, ExprSchema};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr};
use std::collections::BTreeSet;

/// The rule's name in refusals and audit events.
pub const RULE: &str = "disclosure.function";

/// The signature of counts of patients, counts of rows and sums: one family.
pub const ADDITIVE: &str = "additive";

/// What a measure counts or adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Distinct patients (`count(DISTINCT patient)`).
    Patients,
    /// Rows (`count(*)`, `count(x)`).
    Rows,
    /// Distinct values of another column.
    Distinct,
    /// A sum.
    Sum,
    /// A mean.
    Avg,
}

/// One aggregate of the query, as the rules see it.
#[derive(Debug, Clone)]
pub struct MeasureSpec {
    /// What it computes.
    pub kind: Kind,
    /// Its argument (`None`: every row).
    pub arg: Option<Expr>,
    /// Its `FILTER (WHERE …)`.
    pub filter: Option<Expr>,
    /// What makes two measures comparable for the overlap rule: their family (counts of
    /// patients, counts of rows and sums are one; means; counts of distinct values of the
    /// same columns), never their filters or expressions (changing those is exactly how a
    /// differencing attack differs).
    pub signature: String,
    /// The measure as far as its value depends on more than the contributions (a count of
    /// distinct values of an expression): a near cell of the same signature gets the earlier
    /// answer if this is the same too; else it is suppressed.
    pub expression: String,
}

/// `e` with every column unqualified, as text: `t.x + 0` and `x + 0` are one expression.
fn unqualified(e: &Expr) -> String {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    e.clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => Transformed::yes(Expr::Column(
                    datafusion::common::Column::new_unqualified(c.name),
                )),
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data.to_string())
        .unwrap_or_else(|_| e.to_string())
}

fn refuse(reason: impl Into<String>) -> Refused {
    Refused {
        rule: RULE,
        reason: reason.into(),
    }
}

/// The measures of `aggregate`, in its order, or the refusal of the first that is not in the
/// subset.
pub fn measures(aggregate: &Aggregate) -> Result<Vec<MeasureSpec>, Refused> {
    let input = aggregate.input.schema();
    aggregate
        .aggr_expr
        .iter()
        .map(|e| {
            let f = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                other => other,
            };
            let Expr::AggregateFunction(f) = f else {
                return Err(refuse(format!("{e} is not an aggregate function call")));
            };
            spec(f, input)
        })
        .collect()
}

fn columns(e: &Expr) -> String {
    let set: BTreeSet<String> = e.column_refs().iter().map(|c| c.name.clone()).collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn spec(f: &AggregateFunction, input: &DFSchema) -> Result<MeasureSpec, Refused> {
    // Counts of patients, of rows and sums are one family (see `measure::Encoding`).
    let rows = ADDITIVE.to_owned();
    let name = f.func.name().to_ascii_lowercase();
    let p = &f.params;
    if !p.order_by.is_empty() {
        return Err(refuse(format!(
            "{name}(… ORDER BY …) is not in the aggregate subset"
        )));
    }
    let arg = p.args.first().cloned();
    let is_literal = matches!(arg, Some(Expr::Literal(..)));
    let filter = p.filter.as_deref().cloned();
    let one_arg = || {
        if p.args.len() == 1 {
            Ok(())
        } else {
            Err(refuse(format!("{name} takes one argument here")))
        }
    };
    let spec = |kind, arg: Option<Expr>, signature: String| MeasureSpec {
        kind,
        // Counts of rows, sums and means are functions of the patients' contributions, which
        // the sketch compares: the same contributions give the same value, whatever the
        // expression. A count of distinct values is not (the values are not in the sketch).
        expression: match (&arg, kind) {
            (Some(a), Kind::Distinct) => format!("{signature}({})", unqualified(a)),
            _ => signature.clone(),
        },
        arg,
        filter: filter.clone(),
        signature,
    };
    match name.as_str() {
        "count" => {
            one_arg()?;
            let Some(a) = arg else {
                return Ok(spec(Kind::Rows, None, rows));
            };
            if p.distinct {
                let patient = match &a {
                    Expr::Column(c) => input
                        .field_from_column(c)
                        .map(|f| f.metadata().get(PATIENT).is_some())
                        .unwrap_or(false),
                    _ => false,
                };
                if patient {
                    Ok(spec(Kind::Patients, None, ADDITIVE.into()))
                } else {
                    let sig = format!("distinct:{}", columns(&a));
                    Ok(spec(Kind::Distinct, Some(a), sig))
                }
            } else if is_literal {
                Ok(spec(Kind::Rows, None, rows))
            } else {
                Ok(spec(Kind::Rows, Some(a), rows))
            }
        }
        "sum" | "avg" | "mean" => {
            one_arg()?;
            if p.distinct {
                return Err(refuse(format!(
                    "{name}(DISTINCT …) is not in the aggregate subset"
                )));
            }
            let Some(a) = arg else {
                return Err(refuse(format!("{name} needs an argument")));
            };
            let kind = if name == "sum" { Kind::Sum } else { Kind::Avg };
            // The kind alone: two sums whose patients contribute the same but for a few are
            // one sum asked twice, whatever columns their expressions name (naming one more
            // column is how an attacker would make them look different).
            let sig = if kind == Kind::Sum { ADDITIVE } else { "mean" }.to_owned();
            Ok(spec(kind, Some(a), sig))
        }
        "min"
        | "max"
        | "median"
        | "first_value"
        | "last_value"
        | "nth_value"
        | "array_agg"
        | "string_agg"
        | "approx_median"
        | "approx_percentile_cont"
        | "approx_percentile_cont_with_weight"
        | "percentile_cont"
        | "percentile_disc"
        | "mode"
        | "any_value"
        | "bit_and"
        | "bit_or"
        | "bit_xor"
        | "bool_and"
        | "bool_or" => Err(refuse(format!(
            "{name} returns one person's value (or lets one person's value decide it): \
                 refused in aggregate mode"
        ))),
        other => Err(refuse(format!(
            "{other} is not in the aggregate subset (count, count distinct, sum, avg)"
        ))),
    }
}
