//! The column plan: the schema and the policy resolved into what happens to each column, and
//! the schema of what is stored.

use crate::IngestError;
use crate::policy::{Class, ColumnPolicy, Rule, generalization_name};
use crate::schema::{Field, SchemaError, TableSchema};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use shh_pseudo::Generalization;
use shh_pseudo::guard::{Look, redact};
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
    /// A UCUM unit code (`format: "ucum"` on a string field): kept as text, and anything that
    /// is not a unit is refused like a direct identifier (never relaxed).
    Ucum,
    /// Anything else (`any`, `object`, `duration`...): kept as text, unchecked.
    Other,
}

/// What a column becomes.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name (same in source and output).
    pub name: String,
    /// Its index in [`Plan::columns`].
    pub index: usize,
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
    /// What the leak guard looks for in this column's values.
    pub look: Look,
    /// Values shorter than this (in bytes) cannot hold what the guard looks for: a NIR or a
    /// phone number takes 8 characters or more, an e-mail address 6 (`a@b.fr`), and a number
    /// column cannot hold an address (it would not read as a number).
    pub scan_from: usize,
    /// `minimum` / `exclusiveMinimum`, typed as the column.
    pub min: Option<Bound>,
    /// `maximum` / `exclusiveMaximum`, typed as the column.
    pub max: Option<Bound>,
}

/// A `minimum` or `maximum`, parsed with the column's type when the plan is made (a bound that
/// does not parse is a schema error, never an ignored constraint).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// The bound, as a number (dates: days since 1970; datetimes: microseconds; year-months:
    /// `year * 12 + month - 1`).
    pub value: f64,
    /// Whether the bound itself is excluded (`exclusiveMinimum`, `exclusiveMaximum`).
    pub exclusive: bool,
}

/// A column of a key (primary key or `unique`): kept, or dropped by the policy and read only
/// to be hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCol {
    /// Plan column index.
    Kept(usize),
    /// Index in [`Plan::hidden`].
    Hidden(usize),
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
    /// Primary key columns; empty if none.
    pub primary_key: Vec<KeyCol>,
    /// Single columns with `unique: true`.
    pub unique: Vec<KeyCol>,
    /// Dropped columns a key names. Readers read them only to hash them under
    /// [`Plan::hidden_key`] (a random key of this run) and pass on the hash: the value is
    /// never buffered, and the key is still checked.
    pub hidden: Vec<String>,
    /// The key hidden cells are hashed under.
    pub hidden_key: [u8; 32],
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
        "string" if fmt == "ucum" => Kind::Ucum,
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
        other => return Err(format!("unknown type {:?}", redact(other))),
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
        Kind::String | Kind::Time | Kind::YearMonth | Kind::Ucum | Kind::Other => DataType::Utf8,
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

/// Parses a `minimum`/`maximum` for a column of `kind` (numbers for numeric types, dates and
/// year-months in their ISO forms).
fn bound(kind: &Kind, v: &serde_json::Value, exclusive: bool) -> Result<Bound, String> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err("is neither a number nor a string".into()),
    };
    let number = || text.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    let value = match kind {
        Kind::Integer | Kind::Number | Kind::Year => number(),
        Kind::Date(_) => chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .ok()
            .map(|d| f64::from(crate::convert::days(d))),
        Kind::DateTime(_) => chrono::DateTime::parse_from_rfc3339(&text)
            .ok()
            .map(|t| t.timestamp_micros() as f64),
        Kind::YearMonth => crate::convert::parse_year_month(&text)
            .map(|(y, m)| f64::from(y) * 12.0 + f64::from(m) - 1.0),
        _ => return Err("does not apply to this type".into()),
    };
    value
        .map(|value| Bound { value, exclusive })
        .ok_or_else(|| "cannot be read as a value of the field's type".into())
}

fn bounds(f: &Field, kind: &Kind) -> Result<(Option<Bound>, Option<Bound>), String> {
    let c = &f.constraints;
    let one = |incl: &Option<serde_json::Value>,
               excl: &Option<serde_json::Value>,
               name: (&str, &str)|
     -> Result<Option<Bound>, String> {
        match (incl, excl) {
            (Some(_), Some(_)) => Err(format!("{} and {} are both given", name.0, name.1)),
            (Some(v), None) => bound(kind, v, false)
                .map(Some)
                .map_err(|e| format!("{} {e}", name.0)),
            (None, Some(v)) => bound(kind, v, true)
                .map(Some)
                .map_err(|e| format!("{} {e}", name.1)),
            (None, None) => Ok(None),
        }
    };
    Ok((
        one(
            &c.minimum,
            &c.exclusive_minimum,
            ("minimum", "exclusiveMinimum"),
        )?,
        one(
            &c.maximum,
            &c.exclusive_maximum,
            ("maximum", "exclusiveMaximum"),
        )?,
    ))
}

/// The hidden cell a reader passes on for a dropped key column's value: its hash under the
/// run's [`Plan::hidden_key`], in hex (the value itself is never buffered).
pub fn hide(key: &[u8; 32], value: &[u8]) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = blake3::keyed_hash(key, value);
    let mut out = [0u8; 32];
    for (o, b) in out.chunks_mut(2).zip(&h.as_bytes()[..16]) {
        o[0] = HEX[usize::from(b >> 4)];
        o[1] = HEX[usize::from(b & 15)];
    }
    out
}

impl Plan {
    /// Resolves a schema and a policy. Fails on a policy line naming no column, a
    /// generalization that does not fit a type, or a type, format, `pattern` or bound that
    /// cannot be read (naming the schema's file and field).
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
        let in_schema = |field: &str, reason: String| {
            IngestError::Schema(SchemaError {
                path: schema.source.clone(),
                reason: format!("field {}: {reason}", redact(field)),
            })
        };
        for n in policy.named() {
            if schema.field(n).is_none() {
                return Err(bad(format!(
                    "the policy ({}) names column {:?}, which the schema does not have",
                    policy.source,
                    redact(n)
                )));
            }
        }
        let keyed: HashSet<&str> = schema
            .primary_key
            .iter()
            .map(String::as_str)
            .chain(
                schema
                    .fields
                    .iter()
                    .filter(|f| f.constraints.unique)
                    .map(|f| f.name.as_str()),
            )
            .collect();
        let pk: HashSet<&str> = schema.primary_key.iter().map(String::as_str).collect();
        let mut columns = Vec::new();
        let mut dropped = Vec::new();
        let mut hidden = Vec::new();
        let mut fields = Vec::new();
        for f in &schema.fields {
            let kind = kind_of(f).map_err(|e| in_schema(&f.name, e))?;
            let pattern = f
                .constraints
                .pattern
                .as_deref()
                .map(|p| regex_lite::Regex::new(&format!("^(?:{p})$")))
                .transpose()
                .map_err(|e| in_schema(&f.name, format!("pattern: {e}")))?;
            let (min, max) = bounds(f, &kind).map_err(|e| in_schema(&f.name, e))?;
            let rule = policy.rule(&f.name);
            if matches!(rule.class, Class::Direct | Class::Drop) {
                dropped.push((f.name.clone(), rule.class));
                if keyed.contains(f.name.as_str()) {
                    hidden.push(f.name.clone());
                }
                continue;
            }
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
            // A value that reads as an ISO date, a date-time, a year or a boolean cannot hold a
            // NIR (13 digits in one run or in groups), a phone number or an address; one that
            // does not read is refused, or stored as null. The guard has nothing to see there.
            let look = match &kind {
                Kind::Date(DateFormat::Default | DateFormat::Any)
                | Kind::DateTime(DateFormat::Default | DateFormat::Any)
                | Kind::Year
                | Kind::YearMonth
                | Kind::Boolean { .. } => Look::NONE,
                _ => rule.look(),
            };
            let scan_from = match &kind {
                Kind::Integer | Kind::Number => 8,
                _ if look.contact => 6,
                _ => 8,
            };
            columns.push(Column {
                name: f.name.clone(),
                index: columns.len(),
                kind,
                field: f.clone(),
                look,
                scan_from,
                rule,
                out,
                pattern,
                allowed,
                required,
                min,
                max,
            });
        }
        if columns.is_empty() {
            return Err(bad("the policy drops every column".into()));
        }
        let index = |n: &str| columns.iter().position(|c| c.name == n);
        let key_col = |n: &str| match index(n) {
            Some(i) => KeyCol::Kept(i),
            None => KeyCol::Hidden(hidden.iter().position(|h| h == n).unwrap_or(0)),
        };
        let quasi = (0..columns.len())
            .filter(|&i| columns[i].rule.class == Class::Quasi)
            .collect();
        let primary_key = schema.primary_key.iter().map(|n| key_col(n)).collect();
        let unique = schema
            .fields
            .iter()
            .filter(|f| f.constraints.unique)
            .map(|f| key_col(&f.name))
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
            hidden,
            hidden_key: rand::random(),
            foreign_keys,
            unchecked_foreign_keys,
        })
    }

    /// The source columns readers read, in the order of a chunk's cells: the kept columns,
    /// then the hidden key columns.
    pub fn read_columns(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.hidden.iter().map(String::as_str))
    }

    /// Cells per row in a chunk.
    pub fn cells(&self) -> usize {
        self.columns.len() + self.hidden.len()
    }

    /// The name of a key column.
    pub fn key_name(&self, k: KeyCol) -> &str {
        match k {
            KeyCol::Kept(i) => &self.columns[i].name,
            KeyCol::Hidden(j) => &self.hidden[j],
        }
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
