//! Column policies: what happens to each column before anything is buffered.
//!
//! ```toml
//! default = "keep"                 # columns not listed (the default default)
//! [columns]
//! BEN_NIR_PSA = "identifier"       # pseudonymized (HMAC under the hub's key)
//! NOM = "direct"                   # dropped at read time, never buffered
//! BEN_SEX_COD = "quasi"            # kept, counted in the risk report
//! BEN_NAI_MOI = "drop"             # dropped (not an identifier, just not wanted)
//! BEN_RES_COM = { class = "quasi", generalize = "departement" }
//! AGE = { class = "quasi", generalize = "age_band:5" }
//! CODE_15 = { class = "keep", allow_nir_like = true }   # silences the NIR leak guard
//! FINESS_MAIL = { class = "keep", allow_contact_like = true }  # silences the e-mail/phone guard
//! ```
//!
//! Without a policy file, [`ColumnPolicy::defaults`] classes the SNDS identifier columns as
//! identifiers and names, addresses, phones and free text as direct; everything else is kept.
//! Whatever the policy says, the leak guard ([`shh_pseudo::guard`]) refuses a kept value that
//! holds a social-security number, an e-mail address or a phone number, unless the column is
//! an identifier (pseudonymized) or the operator waived that check for it (`allow_nir_like`,
//! `allow_contact_like`), which the manifest and the audit event record.

use serde::{Deserialize, Serialize};
use shh_pseudo::Generalization;
use std::collections::BTreeMap;
use std::path::Path;

/// A column's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Pseudonymized.
    Identifier,
    /// Names, addresses, phone numbers, free text: dropped at read time.
    Direct,
    /// Quasi-identifier: kept or generalized, and counted in the risk report.
    Quasi,
    /// Kept as is.
    Keep,
    /// Dropped.
    Drop,
}

impl Class {
    /// The policy word.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Identifier => "identifier",
            Class::Direct => "direct",
            Class::Quasi => "quasi",
            Class::Keep => "keep",
            Class::Drop => "drop",
        }
    }
}

/// What the policy says about one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its class.
    pub class: Class,
    /// For quasi-identifiers: how it is coarsened.
    pub generalize: Option<Generalization>,
    /// The operator vouches that NIR-shaped values in this column are not NIRs.
    pub allow_nir_like: bool,
    /// The operator vouches that e-mail addresses and phone numbers in this column are not a
    /// patient's (a facility's switchboard, say).
    pub allow_contact_like: bool,
}

impl Rule {
    /// A rule of this class with no options.
    pub fn of(class: Class) -> Self {
        Self {
            class,
            generalize: None,
            allow_nir_like: false,
            allow_contact_like: false,
        }
    }

    /// What the leak guard looks for in this column: nothing in an identifier (its values are
    /// pseudonymized), everything not waived elsewhere.
    pub fn look(&self) -> shh_pseudo::guard::Look {
        if self.class == Class::Identifier {
            return shh_pseudo::guard::Look::NONE;
        }
        shh_pseudo::guard::Look {
            nir: !self.allow_nir_like,
            contact: !self.allow_contact_like,
            names: false,
        }
    }

    /// The checks the operator waived, as policy words (for the manifest and the audit event).
    pub fn waived(&self) -> Vec<&'static str> {
        let mut w = Vec::new();
        if self.allow_nir_like {
            w.push("allow_nir_like");
        }
        if self.allow_contact_like {
            w.push("allow_contact_like");
        }
        w
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Option<Class>,
    #[serde(default)]
    columns: BTreeMap<String, toml::Value>,
}

/// One column's entry: a class word, or a table of options (every key known: a typo such as
/// `allow_nir_lik` must not silently keep the guard's default).
fn rule_of(name: &str, v: toml::Value) -> Result<Rule, String> {
    let name = shh_pseudo::guard::redact(name);
    let class_of = |v: toml::Value| -> Result<Class, String> {
        Class::deserialize(v).map_err(|_| {
            format!("column {name}: the class is one of identifier, direct, quasi, keep, drop")
        })
    };
    let table = match v {
        toml::Value::Table(t) => t,
        other => return Ok(Rule::of(class_of(other)?)),
    };
    let mut rule = Rule::of(Class::Keep);
    let mut class = None;
    let mut generalize = None;
    for (key, value) in table {
        let flag = |v: &toml::Value| {
            v.as_bool()
                .ok_or_else(|| format!("column {name}: {key} is true or false"))
        };
        match key.as_str() {
            "class" => class = Some(class_of(value)?),
            "generalize" => {
                let g = value
                    .as_str()
                    .ok_or_else(|| format!("column {name}: generalize is a word"))?;
                generalize =
                    Some(parse_generalization(g).map_err(|e| format!("column {name}: {e}"))?);
            }
            "allow_nir_like" => rule.allow_nir_like = flag(&value)?,
            "allow_contact_like" => rule.allow_contact_like = flag(&value)?,
            _ => {
                return Err(format!(
                    "column {name}: unknown option {:?} (class, generalize, allow_nir_like, allow_contact_like)",
                    shh_pseudo::guard::redact(&key)
                ));
            }
        }
    }
    rule.class = class.ok_or_else(|| format!("column {name}: a class is required"))?;
    if generalize.is_some() && rule.class != Class::Quasi {
        return Err(format!(
            "column {name}: only quasi-identifiers are generalized"
        ));
    }
    rule.generalize = generalize;
    Ok(rule)
}

/// A policy that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("column policy {path}: {reason}")]
pub struct PolicyError {
    /// The file (or `defaults`).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// The policy for a table.
#[derive(Debug, Clone)]
pub struct ColumnPolicy {
    /// Where it came from (file path or `defaults`).
    pub source: String,
    default: Option<Class>,
    columns: BTreeMap<String, Rule>,
}

/// Parses `month`, `year`, `departement`, `age_band` or `age_band:W`.
pub fn parse_generalization(s: &str) -> Result<Generalization, String> {
    match s {
        "month" => Ok(Generalization::Month),
        "year" => Ok(Generalization::Year),
        "departement" | "département" => Ok(Generalization::Departement),
        "age_band" => Ok(Generalization::AgeBand { width: 5 }),
        other => match other.strip_prefix("age_band:").map(str::parse::<u8>) {
            Some(Ok(w)) if w > 0 => Ok(Generalization::AgeBand { width: w }),
            _ => Err(format!(
                "unknown generalization {other:?} (month, year, departement, age_band[:WIDTH])"
            )),
        },
    }
}

/// The policy word for a generalization (inverse of [`parse_generalization`]).
pub fn generalization_name(g: Generalization) -> String {
    match g {
        Generalization::Month => "month".into(),
        Generalization::Year => "year".into(),
        Generalization::Departement => "departement".into(),
        Generalization::AgeBand { width } => format!("age_band:{width}"),
    }
}

const DEFAULT_IDENTIFIERS: &[&str] = &[
    "BEN_NIR_PSA",
    "BEN_NIR_ANO",
    "BEN_IDT_ANO",
    "ASS_NIR_ANO",
    "NIR_ANO_17",
    "NIR_ANO_PSA",
    "NIR",
    "BEN_NIR",
];
const DIRECT_WORDS: &[&str] = &[
    "NOM",
    "PRENOM",
    "NAME",
    "FIRSTNAME",
    "LASTNAME",
    "ADRESSE",
    "ADDRESS",
    "ADR",
    "TEL",
    "TELEPHONE",
    "PHONE",
    "EMAIL",
    "MAIL",
    "COMMENT",
    "COMMENTAIRE",
    "NOTE",
    "NOTES",
    "TEXT",
];
const DEFAULT_QUASI: &[&str] = &[
    "BEN_NAI_ANN",
    "BEN_NAI_MOI",
    "BEN_SEX_COD",
    "BEN_RES_DPT",
    "BEN_RES_COM",
];

impl ColumnPolicy {
    /// Built-in defaults (see the module docs).
    pub fn defaults() -> Self {
        Self {
            source: "defaults".into(),
            default: None,
            columns: BTreeMap::new(),
        }
    }

    /// Reads a policy file.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let err = |reason: String| PolicyError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut p = Self::parse(&text).map_err(err)?;
        p.source = path.display().to_string();
        Ok(p)
    }

    /// Parses policy text.
    pub fn parse(text: &str) -> Result<Self, String> {
        // A TOML error shows the offending line: whatever it holds, no identifier is shown.
        let f: PolicyFile = toml::from_str(text)
            .map_err(|e| shh_pseudo::guard::redact(&e.to_string()).into_owned())?;
        let mut columns = BTreeMap::new();
        for (name, v) in f.columns {
            let rule = rule_of(&name, v)?;
            columns.insert(name, rule);
        }
        Ok(Self {
            source: "inline".into(),
            default: f.default,
            columns,
        })
    }

    /// Adds or replaces one column's rule (built-in mappings use this).
    pub fn set(&mut self, column: &str, rule: Rule) {
        self.columns.insert(column.to_owned(), rule);
    }

    /// The columns the policy names.
    pub fn named(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().map(String::as_str)
    }

    /// The rule for a column.
    pub fn rule(&self, column: &str) -> Rule {
        if let Some(r) = self.columns.get(column) {
            return r.clone();
        }
        if let Some(c) = self.default {
            return Rule::of(c);
        }
        let upper = column.to_ascii_uppercase();
        if DEFAULT_IDENTIFIERS.contains(&upper.as_str()) {
            return Rule::of(Class::Identifier);
        }
        if upper
            .split(['_', '-', '.', ' '])
            .any(|w| DIRECT_WORDS.contains(&w))
        {
            return Rule::of(Class::Direct);
        }
        if DEFAULT_QUASI.contains(&upper.as_str()) {
            return Rule::of(Class::Quasi);
        }
        Rule::of(Class::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_defaults() {
        let p = ColumnPolicy::parse(
            r#"
            [columns]
            A = "identifier"
            B = { class = "quasi", generalize = "age_band:10" }
            C = { class = "keep", allow_nir_like = true }
            "#,
        )
        .expect("policy");
        assert_eq!(p.rule("A").class, Class::Identifier);
        assert_eq!(
            p.rule("B").generalize,
            Some(Generalization::AgeBand { width: 10 })
        );
        assert!(p.rule("C").allow_nir_like);
        assert_eq!(p.rule("BEN_NIR_PSA").class, Class::Identifier);
        assert_eq!(p.rule("PAT_NOM").class, Class::Direct);
        assert_eq!(p.rule("NOMBRE").class, Class::Keep);
        assert_eq!(p.rule("BEN_SEX_COD").class, Class::Quasi);
        assert!(
            ColumnPolicy::parse("[columns]\nA = { class = \"keep\", generalize = \"month\" }")
                .is_err()
        );
        assert!(ColumnPolicy::parse("[columns]\nA = \"secret\"").is_err());
        assert!(ColumnPolicy::parse("colums = 1").is_err());
        // A mistyped option is an error, not the guard's default silently kept.
        let e = ColumnPolicy::parse("[columns]\nA = { class = \"keep\", allow_nir_lik = true }")
            .expect_err("typo");
        assert!(e.contains("allow_nir_lik") && e.contains("column A"), "{e}");
        assert!(ColumnPolicy::parse("[columns]\nA = { generalize = \"month\" }").is_err());
        assert!(
            ColumnPolicy::parse("[columns]\nA = { class = \"keep\", allow_nir_like = 1 }").is_err()
        );
        let p =
            ColumnPolicy::parse("[columns]\nA = { class = \"keep\", allow_contact_like = true }")
                .expect("contact");
        assert_eq!(
            p.rule("A").look(),
            shh_pseudo::guard::Look {
                nir: true,
                contact: false,
                names: false,
            }
        );
        assert_eq!(p.rule("A").waived(), ["allow_contact_like"]);
        assert_eq!(
            ColumnPolicy::parse("default = \"drop\"")
                .expect("p")
                .rule("X")
                .class,
            Class::Drop
        );
    }
}
