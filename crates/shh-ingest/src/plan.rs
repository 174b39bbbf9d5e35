//! The column plan: the schema and the policy resolved into what happens to each column, and
//! the schema of what is stored.

use crate::IngestError;
use crate::policy::{Class, ColumnPolicy, Rule, generalization_name};
use crate::schema::{Field, TableSchema};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use shh_pseudo::Generalization;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How a date or datetime is written in the source.
#[derive(Debug, Clone)]
pub enum DateFormat {
    /// ISO 8601 (`2024-03-09`, `2024-03-09T10:00:00Z`).
    Default,
    /// Any common form (ISO date, RFC 3339, naive date-time, date only).
    Any,
    /// A strftime pattern.
    Pattern(String),
    /// A pattern without a year (`%m`): validated, kept as text.
    PartialPattern(String),
}

/// The value type of a source column.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Text.
    String,
    /// 64-bit integer.
    Integer,
    /// 64-bit float.
    Number,
    /// Boolean with its words.
    Boolean {
        /// Words for true.
        yes: Vec<String>,
        /// Words for false.
        no: Vec<String>,
    },
    /// A calendar date.
    Date(DateFormat),
    /// A date and time (stored in UTC).
    DateTime(DateFormat),
    /// A time of day (kept as text).
    Time,
    /// A year.
    Year,
    /// A year and month (stored as `YYYY-MM`).
    YearMonth,
    /// Anything else (`any`, `object`, `duration`...): kept as text, unchecked.
    Other,
}

/// What a column becomes.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name (same in source and output).
    pub name: String,
    /// Source type.
    pub kind: Kind,
    /// The schema field (constraints).
    pub field: Field,
    /// The policy rule.
    pub rule: Rule,
    /// Output Arrow type.
    pub out: DataType,
    /// Compiled `pattern`.
    pub pattern: Option<regex_lite::Regex>,
    /// `enum`, as text.
    pub allowed: Option<HashSet<String>>,
    /// Whether a value is required (constraint or primary key).
    pub required: bool,
    /// Whether the NIR leak guard looks at this column.
    pub guard: bool,
}

/// A foreign key, resolved to plan columns.
#[derive(Debug, Clone)]
pub struct ForeignKeyPlan {
    /// Plan column indexes.
    pub columns: Vec<usize>,
    /// Column names.
    pub names: Vec<String>,
    /// Referenced table.
    pub resource: String,
    /// Referenced columns.
    pub ref_fields: Vec<String>,
}

/// The resolved plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Kept columns, in schema order.
    pub columns: Vec<Column>,
    /// Columns dropped at read time, with their class.
    pub dropped: Vec<(String, Class)>,
    /// The stored schema.
    pub output: SchemaRef,
    /// Missing-value words.
    pub missing: Vec<String>,
    /// Quasi-identifier columns (plan indexes).
    pub quasi: Vec<usize>,
    /// Primary key (plan indexes); empty if none or if a key column is dropped.
    pub primary_key: Vec<usize>,
    /// Single columns with `unique: true`.
    pub unique: Vec<usize>,
    /// Foreign keys whose columns are all kept.
    pub foreign_keys: Vec<ForeignKeyPlan>,
    /// Foreign keys not checkable (a column dropped), for the report.
    pub unchecked_foreign_keys: Vec<String>,
}

fn kind_of(f: &Field) -> Result<Kind, String> {
    let fmt = f.format.as_deref().unwrap_or("default");
    let date_fmt = |fmt: &str| -> DateFormat {
        match fmt {
            "default" | "" => DateFormat::Default,
            "any" => DateFormat::Any,
            p => {
                let p = p.strip_prefix("fmt:").unwrap_or(p);
                if p.contains("%Y") || p.contains("%y") || p.contains("%G") {
                    DateFormat::Pattern(p.to_owned())
                } else {
                    DateFormat::PartialPattern(p.to_owned())
                }
            }
        }
    };
    Ok(match f.kind.as_str() {
        "string" => Kind::String,
        "integer" => Kind::Integer,
        "number" => Kind::Number,
        "boolean" => Kind::Boolean {
            yes: f
                .true_values
                .clone()
                .unwrap_or_else(|| ["true", "True", "TRUE", "1"].map(String::from).to_vec()),
            no: f
                .false_values
                .clone()
                .unwrap_or_else(|| ["false", "False", "FALSE", "0"].map(String::from).to_vec()),
        },
        "date" => Kind::Date(date_fmt(fmt)),
        "datetime" => Kind::DateTime(date_fmt(fmt)),
        "time" => Kind::Time,
        "year" => Kind::Year,
        "yearmonth" => Kind::YearMonth,
        "any" | "object" | "array" | "duration" | "geopoint" | "geojson" => Kind::Other,
        other => return Err(format!("field {}: unknown type {other:?}", f.name)),
    })
}

fn native_type(kind: &Kind) -> DataType {
    match kind {
        Kind::Integer => DataType::Int64,
        Kind::Number => DataType::Float64,
        Kind::Boolean { .. } => DataType::Boolean,
        Kind::Date(DateFormat::PartialPattern(_))
        | Kind::DateTime(DateFormat::PartialPattern(_)) => DataType::Utf8,
        Kind::Date(_) => DataType::Date32,
        Kind::DateTime(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::Year => DataType::Int32,
        Kind::String | Kind::Time | Kind::YearMonth | Kind::Other => DataType::Utf8,
    }
}

fn check_generalization(name: &str, kind: &Kind, g: Generalization) -> Result<(), String> {
    let ok = match g {
        Generalization::Month | Generalization::Year => {
            matches!(
                kind,
                Kind::Date(DateFormat::Default | DateFormat::Any | DateFormat::Pattern(_))
                    | Kind::DateTime(
                        DateFormat::Default | DateFormat::Any | DateFormat::Pattern(_)
                    )
                    | Kind::YearMonth
            ) || (g == Generalization::Year && matches!(kind, Kind::Year))
        }
        Generalization::Departement => matches!(kind, Kind::String | Kind::Other),
        Generalization::AgeBand { .. } => matches!(kind, Kind::Integer),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "column {name}: generalization {} does not apply to its type",
            generalization_name(g)
        ))
    }
}

impl Plan {
    /// Resolves a schema and a policy. Fails on a policy line naming no column, a
    /// generalization that does not fit a type, or an invalid `pattern`.
    pub fn new(schema: &TableSchema, policy: &ColumnPolicy) -> Result<Plan, IngestError> {
        Self::with_mode(schema, policy, false)
    }

    /// Like [`Self::new`]; `lenient` makes every stored column nullable (a value that does not
    /// have its type is stored as null and reported).
    pub fn with_mode(
        schema: &TableSchema,
        policy: &ColumnPolicy,
        lenient: bool,
    ) -> Result<Plan, IngestError> {
        let bad = |reason: String| IngestError::Plan { reason };
        for n in policy.named() {
            if schema.field(n).is_none() {
                return Err(bad(format!(
                    "the policy ({}) names column {n:?}, which the schema does not have",
                    policy.source
                )));
            }
        }
        let pk: HashSet<&str> = schema.primary_key.iter().map(String::as_str).collect();
        let mut columns = Vec::new();
        let mut dropped = Vec::new();
        let mut fields = Vec::new();
        for f in &schema.fields {
            let rule = policy.rule(&f.name);
            if matches!(rule.class, Class::Direct | Class::Drop) {
                dropped.push((f.name.clone(), rule.class));
                continue;
            }
            let kind = kind_of(f).map_err(bad)?;
            let out = match (rule.class, rule.generalize) {
                (Class::Identifier, _) => DataType::Utf8,
                (_, Some(g)) => {
                    check_generalization(&f.name, &kind, g).map_err(bad)?;
                    if g.yields_int() {
                        DataType::Int64
                    } else {
                        DataType::Utf8
                    }
                }
                _ => native_type(&kind),
            };
            let pattern = f
                .constraints
                .pattern
                .as_deref()
                .map(|p| regex_lite::Regex::new(&format!("^(?:{p})$")))
                .transpose()
                .map_err(|e| bad(format!("field {}: pattern: {e}", f.name)))?;
            let allowed = f.constraints.allowed.as_ref().map(|v| {
                v.iter()
                    .map(|x| match x {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            });
            let required = f.constraints.required || pk.contains(f.name.as_str());
            let mut md = HashMap::new();
            md.insert("shh.class".to_owned(), rule.class.as_str().to_owned());
            if let Some(g) = rule.generalize {
                md.insert("shh.generalized".to_owned(), generalization_name(g));
            }
            fields.push(
                ArrowField::new(&f.name, out.clone(), lenient || !required).with_metadata(md),
            );
            let guard = rule.class != Class::Identifier && !rule.allow_nir_like;
            columns.push(Column {
                name: f.name.clone(),
                kind,
                field: f.clone(),
                rule,
                out,
                pattern,
                allowed,
                required,
                guard,
            });
        }
        if columns.is_empty() {
            return Err(bad("the policy drops every column".into()));
        }
        let index = |n: &str| columns.iter().position(|c| c.name == n);
        let quasi = (0..columns.len())
            .filter(|&i| columns[i].rule.class == Class::Quasi)
            .collect();
        let primary_key: Vec<usize> = schema
            .primary_key
            .iter()
            .map(|n| index(n))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        let unique = (0..columns.len())
            .filter(|&i| columns[i].field.constraints.unique)
            .collect();
        let mut foreign_keys = Vec::new();
        let mut unchecked_foreign_keys = Vec::new();
        for fk in &schema.foreign_keys {
            match fk
                .fields
                .iter()
                .map(|n| index(n))
                .collect::<Option<Vec<_>>>()
            {
                Some(cols) => foreign_keys.push(ForeignKeyPlan {
                    columns: cols,
                    names: fk.fields.clone(),
                    resource: fk.reference.resource.clone(),
                    ref_fields: fk.reference.fields.clone(),
                }),
                None => unchecked_foreign_keys.push(format!(
                    "{:?} → {}{:?} (a column is dropped by the policy)",
                    fk.fields, fk.reference.resource, fk.reference.fields
                )),
            }
        }
        Ok(Plan {
            output: Arc::new(Schema::new(fields)),
            missing: schema.missing_values.clone(),
            columns,
            dropped,
            quasi,
            primary_key,
            unique,
            foreign_keys,
            unchecked_foreign_keys,
        })
    }

    /// Whether `text` is one of the schema's missing-value words (usually only `""`: a
    /// linear scan of a few short strings beats hashing every cell).
    pub fn is_missing(&self, text: &str) -> bool {
        self.missing.iter().any(|m| m == text)
    }

    /// Plan index of a column.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Names of the identifier columns.
    pub fn identifiers(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.rule.class == Class::Identifier)
            .map(|c| c.name.as_str())
            .collect()
    }
}
