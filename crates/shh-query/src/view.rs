//! A permit's view of one dataset version: only its columns, only the rows its predicate keeps,
//! identifiers under the project's pseudonyms. The predicate sits beneath every query (SQL
//! cannot reach past the view to the table under it: that table has no name in the session).

use crate::pseudonyms::Pseudonyms;
use crate::sandbox::{QueryError, Sandbox};
use crate::table::VersionTable;
use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::ViewTable;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col};
use std::sync::Arc;

/// The suffix of the name a view's table is scanned under (in plans only: the session's
/// catalog has no such table, so SQL cannot name it).
pub const BASE_SUFFIX: &str = "__base";

/// What a view is made of.
#[derive(Debug, Clone)]
pub struct ViewSpec {
    /// The name SQL uses (the dataset's).
    pub name: String,
    /// The columns it shows, in order; `None` shows every column.
    pub columns: Option<Vec<String>>,
    /// The row predicate (SQL over the dataset's columns).
    pub predicate: Option<String>,
    /// Identifier columns (shown under the project's pseudonyms).
    pub identifiers: Vec<String>,
    /// The identifier column that is the patient (disclosure control counts by it).
    pub patient: Option<String>,
}

impl ViewSpec {
    /// The view `name` of a table with `schema`: its identifier columns are those ingest
    /// marked so (`shh.class = identifier`), its patient the SNDS beneficiary key first, then
    /// the usual patient columns, then the first identifier.
    pub fn of(
        name: &str,
        schema: &arrow::datatypes::Schema,
        columns: Option<Vec<String>>,
        predicate: Option<String>,
    ) -> Self {
        const PREFERRED: [&str; 4] = ["BEN_NIR_PSA", "NIR_ANO_17", "patient", "patient_id"];
        let identifiers: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| {
                f.metadata()
                    .get("shh.class")
                    .is_some_and(|c| c == "identifier")
            })
            .map(|f| f.name().clone())
            .collect();
        let patient = PREFERRED
            .iter()
            .find(|p| identifiers.iter().any(|i| i == *p))
            .map(|p| (*p).to_owned())
            .or_else(|| identifiers.first().cloned());
        Self {
            name: name.to_owned(),
            columns,
            predicate,
            identifiers,
            patient,
        }
    }
}

/// Parses and checks a permit's row predicate against a table's schema: one expression over
/// its columns, no subquery, yielding a boolean.
pub fn check_predicate(
    sandbox: &Sandbox,
    schema: &arrow::datatypes::Schema,
    predicate: &str,
) -> Result<Expr, QueryError> {
    let refused = |reason: String| {
        QueryError::Refused(crate::Refused {
            rule: "permit.predicate",
            reason,
        })
    };
    if predicate.len() > 4096 {
        return Err(refused(
            "the row predicate is longer than 4096 bytes".into(),
        ));
    }
    let df = DFSchema::try_from(schema.clone()).map_err(|e| QueryError::Plan(e.to_string()))?;
    let expr = sandbox
        .state()
        .create_logical_expr(predicate, &df)
        .map_err(|e| refused(format!("the row predicate does not read: {e}")))?;
    let mut nested = false;
    expr.apply(|e| {
        if matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::InSubquery(_)
                | Expr::Exists(_)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_)
        ) {
            nested = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| QueryError::Plan(e.to_string()))?;
    if nested {
        return Err(refused(
            "a row predicate is a condition on the row's own columns: no subquery or aggregate"
                .into(),
        ));
    }
    let ty = datafusion::logical_expr::ExprSchemable::get_type(&expr, &df)
        .map_err(|e| refused(format!("the row predicate does not type: {e}")))?;
    if ty != arrow::datatypes::DataType::Boolean {
        return Err(refused(format!(
            "the row predicate must be a condition (true or false), not {ty}"
        )));
    }
    Ok(expr)
}

/// Builds the view of `table` that `spec` describes.
pub fn build(
    sandbox: &Sandbox,
    table: Arc<VersionTable>,
    spec: &ViewSpec,
    keys: &Arc<Pseudonyms>,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let plan_err = |e: datafusion::error::DataFusionError| QueryError::Plan(e.to_string());
    let schema = table.schema();
    // The base table's name is not in the session's catalog: only the view is.
    let mut b = LogicalPlanBuilder::scan(
        datafusion::common::TableReference::bare(format!("{}{BASE_SUFFIX}", spec.name)),
        provider_as_source(table),
        None,
    )
    .map_err(plan_err)?;
    if let Some(p) = &spec.predicate {
        let expr = check_predicate(sandbox, &schema, p)?;
        b = b.filter(expr).map_err(plan_err)?;
    }
    let shown: Vec<String> = match &spec.columns {
        Some(c) => c.clone(),
        None => schema.fields().iter().map(|f| f.name().clone()).collect(),
    };
    let plain = keys.udf(false);
    let patient = keys.udf(true);
    let mut exprs = Vec::with_capacity(shown.len());
    for name in &shown {
        if schema.field_with_name(name).is_err() {
            return Err(QueryError::Plan(format!(
                "{} has no column {name}",
                spec.name
            )));
        }
        let c = col(datafusion::common::Column::new_unqualified(name));
        let e = if spec.patient.as_deref() == Some(name.as_str()) {
            patient.call(vec![c]).alias(name)
        } else if spec.identifiers.iter().any(|i| i == name) {
            plain.call(vec![c]).alias(name)
        } else {
            c
        };
        exprs.push(e);
    }
    let plan = b
        .project(exprs)
        .map_err(plan_err)?
        .build()
        .map_err(plan_err)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}
