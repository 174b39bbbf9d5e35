//! One ingest, up to the hub's door: which format the files are, which schema and policy apply
//! (the built-in FHIR mapping, or the producer's Table Schema and column policy), the plan,
//! and every source opened and checked against it ([`prepare`]). The hub then adds what only
//! it holds (the pseudonym key, the opt-out register, the keys foreign keys point to), runs
//! [`crate::pipeline::run`] into its writer, and records what happened as typed
//! [`IngestParams`] in the version's manifest.

use crate::fhir;
use crate::pipeline::{ForeignKeyReport, IngestStats, Violation};
use crate::source::{CsvSource, ParquetSource, Source, SourceInfo};
use crate::{ColumnPolicy, Format, IngestError, Plan, TableSchema};
use serde::{Deserialize, Serialize};
use shh_pseudo::RiskReport;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an ingest reads, and how.
#[derive(Debug, Clone, Default)]
pub struct Inputs<'a> {
    /// Input files (one format).
    pub files: &'a [PathBuf],
    /// Format; from the extension when `None`.
    pub format: Option<Format>,
    /// Table Schema (required for CSV and Parquet; FHIR has built-in ones).
    pub schema: Option<&'a Path>,
    /// Column policy (defaults when `None`).
    pub policy: Option<&'a Path>,
    /// FHIR: map resource types without a dedicated mapping by the generic allow-list.
    pub fhir_generic: bool,
    /// Report schema violations instead of failing.
    pub lenient: bool,
}

/// An ingest ready to run: the plan and its opened sources.
pub struct Prepared {
    /// The files' format.
    pub format: Format,
    /// The schema applied.
    pub schema: TableSchema,
    /// The policy applied.
    pub policy: ColumnPolicy,
    /// FHIR: the resource type of every file.
    pub resource: Option<String>,
    /// The plan.
    pub plan: Plan,
    /// The sources, in order, their headers checked.
    pub sources: Vec<Box<dyn Source>>,
}

fn plan_err(reason: String) -> IngestError {
    IngestError::Plan { reason }
}

/// Detects the format, loads the schema and policy (or the FHIR mapping), plans, and opens
/// every source. Refusals name the file and what is wrong.
pub fn prepare(i: &Inputs<'_>) -> Result<Prepared, IngestError> {
    let first = i
        .files
        .first()
        .ok_or_else(|| plan_err("no input file".into()))?;
    let format = match i.format {
        Some(f) => f,
        None => Format::from_path(first).ok_or_else(|| {
            plan_err(format!(
                "{}: cannot tell the format from the extension; use --format csv|parquet|fhir-ndjson",
                first.display()
            ))
        })?,
    };
    let (schema, policy, fhir_map, resource) = if format == Format::FhirNdjson {
        if i.schema.is_some() || i.policy.is_some() {
            return Err(plan_err(
                "FHIR NDJSON uses the built-in mapping (docs/ingest.md); --schema and --policy do not apply".into(),
            ));
        }
        let rt = fhir::sniff_resource_type(first)?;
        let map = fhir::mapping(&rt, i.fhir_generic).ok_or_else(|| {
            plan_err(format!(
                "{}: FHIR resource type {rt} has no mapping (mapped: {}); pass --fhir-generic to keep only id, subject, status, code and date",
                first.display(),
                fhir::MAPPED_TYPES.join(", ")
            ))
        })?;
        let (s, p) = fhir::schema_and_policy(&rt, map);
        (s, p, Some(map), Some(rt))
    } else {
        let path = i.schema.ok_or_else(|| {
            plan_err("--schema SCHEMA.json is required for CSV and Parquet".into())
        })?;
        let s = TableSchema::from_file(path)?;
        let p = match i.policy {
            Some(p) => ColumnPolicy::from_file(p)?,
            None => ColumnPolicy::defaults(),
        };
        (s, p, None, None)
    };
    let plan = Plan::with_mode(&schema, &policy, i.lenient)?;
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for f in i.files {
        if Format::from_path(f).is_some_and(|x| x != format) && i.format.is_none() {
            return Err(plan_err(format!(
                "{}: all files of one ingest have one format",
                f.display()
            )));
        }
        sources.push(match format {
            Format::Csv => Box::new(CsvSource::open(f, &schema, &plan)?),
            Format::Parquet => Box::new(ParquetSource::open(f, &schema, &plan)?),
            Format::FhirNdjson => {
                let rt = resource.as_deref().unwrap_or_default();
                let got = fhir::sniff_resource_type(f)?;
                if got != rt {
                    return Err(plan_err(format!(
                        "{}: holds {got}, the first file {rt}; ingest one resource type per dataset",
                        f.display()
                    )));
                }
                Box::new(fhir::FhirSource::open(
                    f,
                    rt,
                    fhir_map.unwrap_or_default(),
                    &plan,
                )?)
            }
        });
    }
    Ok(Prepared {
        format,
        schema,
        policy,
        resource,
        plan,
        sources,
    })
}

/// What a version written by an ingest says about how it was made, in its manifest's
/// `params` (the keys are those of every version written so far).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestParams {
    /// Always `shh ingest`.
    pub source: String,
    /// The files' format.
    pub format: Format,
    /// Every file: name, bytes, BLAKE3.
    pub sources: Vec<SourceInfo>,
    /// The Table Schema's path, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// FHIR: the resource type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_resource: Option<String>,
    /// Where the policy came from.
    pub policy: String,
    /// The pseudonym key version.
    pub pseudonym_key_version: u32,
    /// Columns dropped at read time, with their class.
    pub dropped_columns: Vec<(String, String)>,
    /// Rows read.
    pub rows_read: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// Rows excluded by opt-out.
    pub rows_opted_out: u64,
    /// Lenient mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lenient: bool,
    /// Lenient mode: the schema violations found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<Violation>>,
    /// Lenient mode: duplicate keys found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<Vec<String>>,
    /// Foreign keys checked.
    pub foreign_keys: Vec<ForeignKeyReport>,
    /// The re-identification risk report.
    pub risk: RiskReport,
    /// Columns whose identifier guard the operator waived, and for what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_waived: Option<Vec<serde_json::Value>>,
}

impl IngestParams {
    /// The params of an ingest that ran as `prepared` with `stats`.
    pub fn new(
        prepared: &Prepared,
        schema_path: Option<&Path>,
        key_version: u32,
        stats: &IngestStats,
        lenient: bool,
    ) -> Self {
        let waived: Vec<serde_json::Value> = prepared
            .plan
            .columns
            .iter()
            .filter(|c| !c.rule.waived().is_empty())
            .map(|c| serde_json::json!({"column": c.name, "waived": c.rule.waived()}))
            .collect();
        Self {
            source: "shh ingest".into(),
            format: prepared.format,
            sources: stats.sources.clone(),
            schema: schema_path.map(|p| p.display().to_string()),
            fhir_resource: prepared.resource.clone(),
            policy: prepared.policy.source.clone(),
            pseudonym_key_version: key_version,
            dropped_columns: dropped(&prepared.plan),
            rows_read: stats.rows_read,
            rows_rejected: stats.rows_rejected,
            rows_opted_out: stats.opted_out,
            lenient,
            violations: lenient.then(|| stats.violations.clone()),
            duplicates: lenient.then(|| stats.duplicates.clone()),
            foreign_keys: stats.foreign_keys.clone(),
            risk: stats.risk.clone(),
            guard_waived: (!waived.is_empty()).then_some(waived),
        }
    }

    /// As the manifest's `params` map.
    pub fn to_map(&self) -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    /// From a manifest's `params`, if an ingest wrote them.
    pub fn from_map(params: &BTreeMap<String, serde_json::Value>) -> Option<Self> {
        let m: serde_json::Map<String, serde_json::Value> =
            params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(serde_json::Value::Object(m)).ok()
    }
}

/// The columns a plan drops at read time, with their class.
pub fn dropped(plan: &Plan) -> Vec<(String, String)> {
    plan.dropped
        .iter()
        .map(|(n, c)| (n.clone(), c.as_str().to_owned()))
        .collect()
}
