//! Frictionless Table Schema, as the Health Data Hub publishes it for the SNDS.
//!
//! Only what ingest enforces is modelled: field types and formats, constraints (`required`,
//! `unique`, `minLength`, `maxLength`, `minimum`, `maximum`, `pattern`, `enum`, and the SNDS
//! `decimals`), `missingValues`, `primaryKey` and `foreignKeys`. The SNDS files write
//! `primaryKey` and a foreign key's `fields` either as a string or a list; both are accepted.
//! Unknown properties (`description`, `nomenclature`, ...) are ignored.

use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;

/// A table schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableSchema {
    /// Where it was read from (the file, or the built-in mapping), for messages.
    #[serde(skip)]
    pub source: String,
    /// Table name (optional in the standard).
    #[serde(default)]
    pub name: Option<String>,
    /// Fields, in the source's column order.
    pub fields: Vec<Field>,
    /// Strings that mean "no value"; default `[""]`.
    #[serde(default = "default_missing", rename = "missingValues")]
    pub missing_values: Vec<String>,
    /// Primary key columns.
    #[serde(default, rename = "primaryKey", deserialize_with = "one_or_many_opt")]
    pub primary_key: Vec<String>,
    /// Foreign keys.
    #[serde(default, rename = "foreignKeys")]
    pub foreign_keys: Vec<ForeignKey>,
}

fn default_missing() -> Vec<String> {
    vec![String::new()]
}

/// One field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Frictionless type (`string`, `integer`, `number`, `boolean`, `date`, `datetime`,
    /// `time`, `year`, `yearmonth`, or others kept as text).
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    /// Format (`default`, `any`, or a strftime pattern for dates).
    #[serde(default)]
    pub format: Option<String>,
    /// Constraints.
    #[serde(default)]
    pub constraints: Constraints,
    /// Booleans: the words for true.
    #[serde(default, rename = "trueValues")]
    pub true_values: Option<Vec<String>>,
    /// Booleans: the words for false.
    #[serde(default, rename = "falseValues")]
    pub false_values: Option<Vec<String>>,
}

fn default_type() -> String {
    "string".into()
}

/// Field constraints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Constraints {
    /// A value is required.
    #[serde(default)]
    pub required: bool,
    /// Values are unique in the table.
    #[serde(default)]
    pub unique: bool,
    /// Minimum length in characters.
    #[serde(default, rename = "minLength")]
    pub min_length: Option<usize>,
    /// Maximum length in characters.
    #[serde(default, rename = "maxLength")]
    pub max_length: Option<usize>,
    /// Minimum value (numbers, integers, years).
    #[serde(default)]
    pub minimum: Option<serde_json::Value>,
    /// Maximum value.
    #[serde(default)]
    pub maximum: Option<serde_json::Value>,
    /// Values must be above this (Table Schema v2).
    #[serde(default, rename = "exclusiveMinimum")]
    pub exclusive_minimum: Option<serde_json::Value>,
    /// Values must be below this (Table Schema v2).
    #[serde(default, rename = "exclusiveMaximum")]
    pub exclusive_maximum: Option<serde_json::Value>,
    /// Regular expression the whole value matches.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Allowed values (as text).
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<serde_json::Value>>,
    /// SNDS extension: at most this many digits after the decimal point.
    #[serde(default)]
    pub decimals: Option<u32>,
    /// Anything else: refused by [`TableSchema::check`] unless it is an annotation (a
    /// constraint the hub does not enforce must not look enforced).
    #[serde(flatten, skip_serializing)]
    pub other: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Keys found inside `constraints` that annotate rather than constrain (the SNDS schemas put
/// a `description` there).
const ANNOTATIONS: &[&str] = &["description", "title", "comment", "$comment"];

/// A foreign key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Columns of this table.
    #[serde(deserialize_with = "one_or_many")]
    pub fields: Vec<String>,
    /// What they reference.
    pub reference: Reference,
}

/// The referenced table and columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reference {
    /// Referenced table (a dataset of the same name in the hub).
    #[serde(default)]
    pub resource: String,
    /// Referenced columns.
    #[serde(deserialize_with = "one_or_many")]
    pub fields: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn one_or_many_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// A schema that cannot be read or used.
#[derive(Debug, thiserror::Error)]
#[error("table schema {path}: {reason}")]
pub struct SchemaError {
    /// The schema file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl TableSchema {
    /// Reads and checks a schema file.
    pub fn from_file(path: &Path) -> Result<Self, SchemaError> {
        let err = |reason: String| SchemaError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let mut s: TableSchema = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
        s.source = path.display().to_string();
        s.check().map_err(err)?;
        Ok(s)
    }

    /// Checks names and constraint keys: unique fields whose names hold no direct identifier
    /// (they become part of every stored file's schema), keys naming existing fields, no
    /// constraint the hub would not enforce. Types, formats, patterns and bounds are checked
    /// with the column policy, by [`crate::Plan`].
    pub fn check(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("no fields".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            if let Some(h) = shh_pseudo::guard::scan(&f.name, shh_pseudo::guard::Look::NAME) {
                return Err(format!(
                    "field #{}: its name holds {}; rename it",
                    i + 1,
                    h.found.describe()
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("field {:?} appears twice", f.name));
            }
            if let Some(k) = f
                .constraints
                .other
                .keys()
                .find(|k| !ANNOTATIONS.contains(&k.as_str()))
            {
                return Err(format!(
                    "field {}: unknown constraint {:?} (required, unique, minLength, maxLength, \
                     minimum, maximum, exclusiveMinimum, exclusiveMaximum, pattern, enum, decimals)",
                    f.name,
                    shh_pseudo::guard::redact(k)
                ));
            }
        }
        for k in &self.primary_key {
            if !seen.contains(k.as_str()) {
                return Err(format!(
                    "primaryKey names unknown field {:?}",
                    shh_pseudo::guard::redact(k)
                ));
            }
        }
        for fk in &self.foreign_keys {
            for k in &fk.fields {
                if !seen.contains(k.as_str()) {
                    return Err(format!(
                        "foreignKey names unknown field {:?}",
                        shh_pseudo::guard::redact(k)
                    ));
                }
            }
            let named = std::iter::once(&fk.reference.resource).chain(&fk.reference.fields);
            if let Some(h) = named
                .into_iter()
                .find_map(|n| shh_pseudo::guard::scan(n, shh_pseudo::guard::Look::NAME))
            {
                return Err(format!(
                    "a foreignKey reference holds {}; rename it",
                    h.found.describe()
                ));
            }
            if fk.fields.len() != fk.reference.fields.len() {
                return Err(format!(
                    "foreignKey {:?} has {} fields but references {}",
                    fk.fields,
                    fk.fields.len(),
                    fk.reference.fields.len()
                ));
            }
        }
        Ok(())
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snds_shapes_parse() {
        let s: TableSchema = serde_json::from_str(
            r#"{"fields":[{"name":"A","type":"integer","constraints":{"minimum":0,"maximum":99}},
                          {"name":"B"}],
                "primaryKey":"A",
                "foreignKeys":[{"fields":"B","reference":{"resource":"T","fields":"X"}}]}"#,
        )
        .expect("parse");
        assert_eq!(s.primary_key, vec!["A"]);
        assert_eq!(s.foreign_keys[0].reference.fields, vec!["X"]);
        assert_eq!(s.missing_values, vec![""]);
        assert_eq!(s.fields[1].kind, "string");
        assert!(s.check().is_ok());
    }
}
