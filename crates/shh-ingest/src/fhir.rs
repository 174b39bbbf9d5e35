//! FHIR R4 Bulk Data NDJSON, flattened to one table per resource type.
//!
//! Each mapped type has a fixed list of columns, each read from a JSON path (the first array
//! element where the path crosses an array) and typed by a built-in Table Schema. Resource ids
//! and patient/encounter references are identifiers (pseudonymized, so tables still join);
//! birth and death dates are generalized to the month. Names, telecom, addresses, business
//! identifiers, narrative text, notes and every other field are never read. Other resource
//! types are refused unless the caller opts into the generic allow-list (id, subject, status,
//! code, one date) — never free text. `docs/ingest.md` lists the mapping.

use crate::convert::RawChunk;
use crate::policy::{Class, ColumnPolicy, Rule};
use crate::schema::{Field, TableSchema};
use crate::source::{
    Format, HashState, Hashing, Input, Source, SourceInfo, hashing, info_of, open_file,
};
use crate::{CellError, IngestError};
use serde_json::Value;
use shh_pseudo::Generalization;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

/// How a column is read.
#[derive(Debug, Clone, Copy)]
enum Get {
    /// The first of these JSON pointers that is present.
    Path(&'static [&'static str]),
    /// A reference (`Patient/123`, `urn:uuid:123`): the id part.
    Ref(&'static [&'static str]),
}

/// One mapped column.
#[derive(Debug, Clone, Copy)]
pub struct MapColumn {
    /// Column name.
    pub name: &'static str,
    /// Frictionless type.
    pub kind: &'static str,
    /// Frictionless format (`ucum` for units).
    format: &'static str,
    get: Get,
    class: Class,
    generalize: Option<Generalization>,
}

const fn col(name: &'static str, kind: &'static str, paths: &'static [&'static str]) -> MapColumn {
    MapColumn {
        name,
        kind,
        format: if matches!(kind.as_bytes(), b"datetime") {
            "any"
        } else {
            "default"
        },
        get: Get::Path(paths),
        class: Class::Keep,
        generalize: None,
    }
}
/// A unit: the UCUM code (or, without one, the display text, which must then be a UCUM code
/// too): checked, so that free text never passes for a unit.
const fn unit(name: &'static str, paths: &'static [&'static str]) -> MapColumn {
    MapColumn {
        format: "ucum",
        ..col(name, "string", paths)
    }
}
const fn ident(name: &'static str, paths: &'static [&'static str]) -> MapColumn {
    MapColumn {
        name,
        kind: "string",
        format: "default",
        get: Get::Ref(paths),
        class: Class::Identifier,
        generalize: None,
    }
}
const fn month(
    name: &'static str,
    kind: &'static str,
    paths: &'static [&'static str],
) -> MapColumn {
    MapColumn {
        class: Class::Quasi,
        generalize: Some(Generalization::Month),
        ..col(name, kind, paths)
    }
}

const ID: MapColumn = ident("id", &["/id"]);
const SUBJECT: MapColumn = ident("patient", &["/subject/reference", "/patient/reference"]);
const ENCOUNTER: MapColumn = ident("encounter", &["/encounter/reference", "/context/reference"]);
const STATUS: MapColumn = col("status", "string", &["/status"]);

const PATIENT: &[MapColumn] = &[
    ID,
    col("gender", "string", &["/gender"]),
    month("birth_month", "date", &["/birthDate"]),
    month("deceased_month", "datetime", &["/deceasedDateTime"]),
    col("deceased", "boolean", &["/deceasedBoolean"]),
    col(
        "marital_status",
        "string",
        &["/maritalStatus/coding/0/code"],
    ),
    col(
        "language",
        "string",
        &["/communication/0/language/coding/0/code"],
    ),
];
const ENCOUNTER_T: &[MapColumn] = &[
    ID,
    SUBJECT,
    STATUS,
    col("class_code", "string", &["/class/code"]),
    col("type_system", "string", &["/type/0/coding/0/system"]),
    col("type_code", "string", &["/type/0/coding/0/code"]),
    col("period_start", "datetime", &["/period/start"]),
    col("period_end", "datetime", &["/period/end"]),
    col("reason_code", "string", &["/reasonCode/0/coding/0/code"]),
];
const CONDITION: &[MapColumn] = &[
    ID,
    SUBJECT,
    ENCOUNTER,
    col(
        "clinical_status",
        "string",
        &["/clinicalStatus/coding/0/code"],
    ),
    col(
        "verification_status",
        "string",
        &["/verificationStatus/coding/0/code"],
    ),
    col("category", "string", &["/category/0/coding/0/code"]),
    col("code_system", "string", &["/code/coding/0/system"]),
    col("code", "string", &["/code/coding/0/code"]),
    col(
        "onset",
        "datetime",
        &["/onsetDateTime", "/onsetPeriod/start"],
    ),
    col(
        "abatement",
        "datetime",
        &["/abatementDateTime", "/abatementPeriod/start"],
    ),
    col("recorded_date", "datetime", &["/recordedDate"]),
];
const OBSERVATION: &[MapColumn] = &[
    ID,
    SUBJECT,
    ENCOUNTER,
    STATUS,
    col("category", "string", &["/category/0/coding/0/code"]),
    col("code_system", "string", &["/code/coding/0/system"]),
    col("code", "string", &["/code/coding/0/code"]),
    col(
        "effective",
        "datetime",
        &["/effectiveDateTime", "/effectivePeriod/start"],
    ),
    col("issued", "datetime", &["/issued"]),
    col("value_quantity", "number", &["/valueQuantity/value"]),
    unit(
        "value_unit",
        &["/valueQuantity/code", "/valueQuantity/unit"],
    ),
    col(
        "value_code",
        "string",
        &["/valueCodeableConcept/coding/0/code"],
    ),
];
const MEDICATION_REQUEST: &[MapColumn] = &[
    ID,
    SUBJECT,
    ENCOUNTER,
    STATUS,
    col("intent", "string", &["/intent"]),
    col(
        "medication_system",
        "string",
        &["/medicationCodeableConcept/coding/0/system"],
    ),
    col(
        "medication_code",
        "string",
        &["/medicationCodeableConcept/coding/0/code"],
    ),
    col("authored_on", "datetime", &["/authoredOn"]),
    col("reason_code", "string", &["/reasonCode/0/coding/0/code"]),
];
const PROCEDURE: &[MapColumn] = &[
    ID,
    SUBJECT,
    ENCOUNTER,
    STATUS,
    col("code_system", "string", &["/code/coding/0/system"]),
    col("code", "string", &["/code/coding/0/code"]),
    col(
        "performed_start",
        "datetime",
        &["/performedPeriod/start", "/performedDateTime"],
    ),
    col("performed_end", "datetime", &["/performedPeriod/end"]),
    col("reason_code", "string", &["/reasonCode/0/coding/0/code"]),
];
const IMMUNIZATION: &[MapColumn] = &[
    ID,
    SUBJECT,
    ENCOUNTER,
    STATUS,
    col(
        "vaccine_system",
        "string",
        &["/vaccineCode/coding/0/system"],
    ),
    col("vaccine_code", "string", &["/vaccineCode/coding/0/code"]),
    col("occurrence", "datetime", &["/occurrenceDateTime"]),
    col("primary_source", "boolean", &["/primarySource"]),
];
const ALLERGY: &[MapColumn] = &[
    ID,
    SUBJECT,
    col(
        "clinical_status",
        "string",
        &["/clinicalStatus/coding/0/code"],
    ),
    col(
        "verification_status",
        "string",
        &["/verificationStatus/coding/0/code"],
    ),
    col("type", "string", &["/type"]),
    col("category", "string", &["/category/0"]),
    col("criticality", "string", &["/criticality"]),
    col("code_system", "string", &["/code/coding/0/system"]),
    col("code", "string", &["/code/coding/0/code"]),
    col("recorded_date", "datetime", &["/recordedDate"]),
];
const GENERIC: &[MapColumn] = &[
    ID,
    SUBJECT,
    STATUS,
    col("code_system", "string", &["/code/coding/0/system"]),
    col("code", "string", &["/code/coding/0/code"]),
    col(
        "date",
        "datetime",
        &[
            "/effectiveDateTime",
            "/occurrenceDateTime",
            "/authoredOn",
            "/recordedDate",
            "/issued",
            "/date",
            "/period/start",
        ],
    ),
];

/// The resource types with a dedicated mapping.
pub const MAPPED_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Procedure",
    "Immunization",
    "AllergyIntolerance",
];

/// The columns for a resource type; `generic` allows the allow-list for unmapped types.
pub fn mapping(resource: &str, generic: bool) -> Option<&'static [MapColumn]> {
    Some(match resource {
        "Patient" => PATIENT,
        "Encounter" => ENCOUNTER_T,
        "Condition" => CONDITION,
        "Observation" => OBSERVATION,
        "MedicationRequest" => MEDICATION_REQUEST,
        "Procedure" => PROCEDURE,
        "Immunization" => IMMUNIZATION,
        "AllergyIntolerance" => ALLERGY,
        _ if generic => GENERIC,
        _ => return None,
    })
}

/// The built-in table schema and policy of a mapping.
pub fn schema_and_policy(resource: &str, cols: &[MapColumn]) -> (TableSchema, ColumnPolicy) {
    let fields = cols
        .iter()
        .map(|c| Field {
            name: c.name.to_owned(),
            kind: c.kind.to_owned(),
            format: Some(c.format.to_owned()),
            constraints: crate::schema::Constraints {
                required: c.name == "id",
                ..Default::default()
            },
            true_values: None,
            false_values: None,
        })
        .collect();
    let schema = TableSchema {
        source: format!("built-in FHIR mapping for {resource}"),
        name: Some(resource.to_owned()),
        fields,
        missing_values: vec![],
        primary_key: vec!["id".into()],
        foreign_keys: vec![],
    };
    let mut policy = ColumnPolicy::defaults();
    policy.source = format!("built-in FHIR mapping for {resource}");
    for c in cols {
        policy.set(
            c.name,
            Rule {
                generalize: c.generalize,
                ..Rule::of(c.class)
            },
        );
    }
    (schema, policy)
}

/// Reads the next line (without its end) into `buf`; `false` at the end of the file. A line
/// that is not UTF-8 is an error naming it.
fn next_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    file: &str,
    line: u64,
) -> Result<bool, IngestError> {
    buf.clear();
    let n = r.read_until(b'\n', buf).map_err(|e| IngestError::Source {
        file: file.to_owned(),
        reason: e.to_string(),
    })?;
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    if std::str::from_utf8(buf).is_err() {
        return Err(IngestError::Cell(CellError {
            file: file.to_owned(),
            line,
            field: "(line)".into(),
            reason: "is not valid UTF-8".into(),
        }));
    }
    Ok(n > 0)
}

/// The resource type on the first line of a file.
pub fn sniff_resource_type(path: &Path) -> Result<String, IngestError> {
    let file = path.display().to_string();
    let bad = |reason: String| IngestError::Source {
        file: file.clone(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut line = Vec::new();
    if !next_line(&mut std::io::BufReader::new(f), &mut line, &file, 1)? {
        return Err(bad("the file is empty".into()));
    }
    let v: Value = serde_json::from_slice(&line).map_err(|e| {
        IngestError::Cell(CellError {
            file: file.clone(),
            line: 1,
            field: "(json)".into(),
            reason: format!("not a JSON object: {e}"),
        })
    })?;
    v.get("resourceType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad("the first line has no resourceType".into()))
}

/// NDJSON lines of one resource type.
pub struct FhirSource {
    file: Arc<str>,
    reader: std::io::BufReader<Hashing<Input>>,
    buf: Vec<u8>,
    state: HashState,
    resource: String,
    /// Mapping column of each plan column.
    /// Mapping column of each chunk cell; from `hidden_from` on, hashed.
    cols: Vec<MapColumn>,
    hidden_from: usize,
    hidden_key: [u8; 32],
    line: u64,
}

impl FhirSource {
    /// Opens a file whose resources are all `resource`, keeping the columns the plan keeps.
    pub fn open(
        path: &Path,
        resource: &str,
        mapping: &[MapColumn],
        plan: &crate::plan::Plan,
    ) -> Result<Self, IngestError> {
        let name = path.display().to_string();
        Self::from_reader(&name, open_file(path)?, resource, mapping, plan)
    }

    /// Reads NDJSON from `input` (named `name` in messages and the manifest): an upload as it
    /// arrives, without a temporary file.
    pub fn from_reader(
        name: &str,
        input: Input,
        resource: &str,
        mapping: &[MapColumn],
        plan: &crate::plan::Plan,
    ) -> Result<Self, IngestError> {
        let (r, state) = hashing(input);
        let cols = plan
            .read_columns()
            .filter_map(|n| mapping.iter().find(|m| m.name == n).copied())
            .collect();
        Ok(Self {
            file: name.into(),
            reader: std::io::BufReader::with_capacity(1 << 20, r),
            buf: Vec::new(),
            state,
            resource: resource.to_owned(),
            cols,
            hidden_from: plan.columns.len(),
            hidden_key: plan.hidden_key,
            line: 0,
        })
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn reference_id(r: &str) -> &str {
    if let Some(id) = r.strip_prefix("urn:uuid:") {
        return id;
    }
    // `Patient/123` or `https://server/fhir/Patient/123/_history/2`.
    let r = r.split("/_history/").next().unwrap_or(r);
    r.rsplit('/').next().unwrap_or(r)
}

impl Source for FhirSource {
    fn next_chunk(&mut self, max_rows: usize) -> Result<Option<RawChunk>, IngestError> {
        let mut chunk = RawChunk::new(self.file.clone());
        while chunk.rows() < max_rows {
            if !next_line(&mut self.reader, &mut self.buf, &self.file, self.line + 1)? {
                break;
            }
            self.line += 1;
            let err = |field: &str, reason: String| {
                IngestError::Cell(CellError {
                    file: self.file.to_string(),
                    line: self.line,
                    field: field.to_owned(),
                    reason,
                })
            };
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: Value = serde_json::from_slice(&self.buf)
                .map_err(|e| err("(json)", format!("broken NDJSON line: {e}")))?;
            match v.get("resourceType").and_then(Value::as_str) {
                Some(t) if t == self.resource => {}
                Some(t) => {
                    return Err(err(
                        "resourceType",
                        format!(
                            "{t} in a file of {}; one resource type per file",
                            self.resource
                        ),
                    ));
                }
                None => return Err(err("resourceType", "missing".into())),
            }
            for (k, c) in self.cols.iter().enumerate() {
                let (paths, is_ref) = match c.get {
                    Get::Path(p) => (p, false),
                    Get::Ref(p) => (p, true),
                };
                let found = paths.iter().find_map(|p| v.pointer(p).and_then(scalar));
                let found = found
                    .as_deref()
                    .map(|s| if is_ref { reference_id(s) } else { s });
                match found {
                    Some(s) if k >= self.hidden_from => {
                        chunk.push(&crate::plan::hide(&self.hidden_key, s.as_bytes()))
                    }
                    Some(s) => chunk.push(s.as_bytes()),
                    None if k >= self.hidden_from => {
                        chunk.push(&crate::plan::hide(&self.hidden_key, b""))
                    }
                    None => chunk.push_null(),
                }
            }
            chunk.lines.push(self.line);
        }
        Ok((chunk.rows() > 0).then_some(chunk))
    }

    fn info(&self) -> SourceInfo {
        info_of(&self.file, Format::FhirNdjson, &self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(reference_id("urn:uuid:abc"), "abc");
        assert_eq!(reference_id("Patient/123"), "123");
        assert_eq!(reference_id("https://x/fhir/Patient/9/_history/2"), "9");
    }
}
