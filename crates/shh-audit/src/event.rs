//! Audit events: who (actor, role) did what (action) to which targets (dataset@version,
//! project, permit), with which details (query hash, rows and bytes out, file hashes) and
//! outcome (allowed, refused, failed). An event's bytes in the log are its RFC 8785
//! canonical JSON; that exact byte string is the Merkle leaf.
//!
//! Callers build a [`Draft`]; the log adds the sequence number, time, hub and actor when the
//! event is appended, so no caller can choose its own place in the log.

use crate::canonical::to_canonical_vec;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Who acts: an identity and the role it acts in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Identity (a user, a service account, an OIDC subject).
    pub id: String,
    /// Role (operator, producer, custodian, researcher, checker, auditor).
    pub role: String,
}

impl Actor {
    /// An actor.
    pub fn new(id: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            role: role.into(),
        }
    }
}

/// What an action was applied to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Research project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Access permit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit: Option<String>,
    /// Any other object (a key, a store URL, a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

impl Targets {
    fn is_empty(&self) -> bool {
        *self == Targets::default()
    }
}

/// Whether the action happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    /// It was authorized and done.
    Allowed,
    /// It was refused (by a permit, a policy, disclosure control).
    Refused {
        /// Why.
        reason: String,
    },
    /// It was authorized but did not complete.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, from 0; equal to the Merkle leaf index.
    pub seq: u64,
    /// When the log accepted it (UTC, microseconds).
    pub time: DateTime<Utc>,
    /// The hub's id: events of one hub cannot be replayed into another's log.
    pub hub: String,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: String,
    /// What, as `noun.verb` (`dataset.export`).
    pub action: String,
    /// On what.
    #[serde(default, skip_serializing_if = "Targets::is_empty")]
    pub targets: Targets,
    /// Facts about the action: integers and strings only (RFC 8785 leaves floats to ES6
    /// number formatting, which no detail needs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
    /// Whether it happened.
    pub outcome: Outcome,
}

/// Errors building an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A detail holds a float, which has no stable canonical form here.
    #[error("audit detail {0:?} holds a non-integer number; record it as a string")]
    Float(String),
    /// Serialization.
    #[error("audit event cannot be serialized: {0}")]
    Json(#[from] serde_json::Error),
}

impl Event {
    /// The canonical bytes: what the log stores and the Merkle leaf hashes.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, EventError> {
        no_floats(&self.details)?;
        Ok(to_canonical_vec(&serde_json::to_value(self)?))
    }
}

/// Refuses details holding a float, naming the detail.
fn no_floats(details: &BTreeMap<String, Value>) -> Result<(), EventError> {
    match details.iter().find(|(_, v)| has_float(v)) {
        Some((k, _)) => Err(EventError::Float(k.clone())),
        None => Ok(()),
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => !(n.is_i64() || n.is_u64()),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// Stands for the sequence number while rendering; no real log reaches it. Keys sort before
/// `seq` and after it, so the number sits between a fixed prefix and suffix.
const SEQ_PLACEHOLDER: u64 = u64::MAX;

/// An event's canonical bytes with a hole for its sequence number.
#[derive(Debug, Clone)]
pub struct Rendered {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl Rendered {
    /// Appends the canonical bytes of the event numbered `seq` to `out`.
    pub fn write(&self, seq: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(&self.suffix);
    }
}

/// An event before the log places it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// What.
    pub action: String,
    /// On what.
    pub targets: Targets,
    /// Facts.
    pub details: BTreeMap<String, Value>,
    /// Whether it happened.
    pub outcome: Outcome,
}

/// Passes every string in a JSON value, at any depth, through `f`.
pub fn map_json_strings(v: &mut Value, f: &dyn Fn(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|v| map_json_strings(v, f)),
        Value::Object(o) => o.values_mut().for_each(|v| map_json_strings(v, f)),
        _ => {}
    }
}

impl Draft {
    /// An allowed action with no targets yet.
    pub fn new(action: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            targets: Targets::default(),
            details: BTreeMap::new(),
            outcome: Outcome::Allowed,
        }
    }
    /// Names the dataset version.
    pub fn dataset(mut self, reference: impl Into<String>) -> Self {
        self.targets.dataset = Some(reference.into());
        self
    }
    /// Names the project.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.targets.project = Some(project.into());
        self
    }
    /// Names the permit.
    pub fn permit(mut self, permit: impl Into<String>) -> Self {
        self.targets.permit = Some(permit.into());
        self
    }
    /// Names another object.
    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.targets.object = Some(object.into());
        self
    }
    /// Adds a fact.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }
    /// Marks the action refused.
    pub fn refused(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Refused {
            reason: reason.into(),
        };
        self
    }
    /// Marks the action failed.
    pub fn failed(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Failed {
            reason: reason.into(),
        };
        self
    }

    /// Passes every string the draft carries (targets, detail values at any depth, the
    /// outcome's reason) through `f`: the hub's last net, which redacts any direct identifier
    /// before an event is signed into the log.
    pub fn map_strings(mut self, f: &dyn Fn(&mut String)) -> Self {
        let t = &mut self.targets;
        for s in [&mut t.dataset, &mut t.project, &mut t.permit, &mut t.object]
            .into_iter()
            .flatten()
        {
            f(s);
        }
        self.details
            .values_mut()
            .for_each(|v| map_json_strings(v, f));
        if let Outcome::Refused { reason } | Outcome::Failed { reason } = &mut self.outcome {
            f(reason);
        }
        self
    }

    /// Refuses what could not be stored canonically (floats in details).
    pub fn check(&self) -> Result<(), EventError> {
        no_floats(&self.details)
    }

    /// Renders the draft's canonical bytes around its future sequence number, so that the
    /// expensive part runs in the appending task, outside the log's writer lock.
    pub fn render(
        self,
        time: DateTime<Utc>,
        hub: &str,
        actor: &Actor,
    ) -> Result<Rendered, EventError> {
        self.check()?;
        let bytes = self
            .place(SEQ_PLACEHOLDER, time, hub, actor)
            .canonical_bytes()?;
        let marker = format!("\"seq\":{SEQ_PLACEHOLDER}");
        let at = bytes
            .windows(marker.len())
            // The last occurrence: a detail named `seq` sorts (inside `details`) before it.
            .rposition(|w| w == marker.as_bytes())
            .ok_or_else(|| EventError::Json(serde::ser::Error::custom("no seq field")))?;
        Ok(Rendered {
            prefix: bytes[..at + "\"seq\":".len()].to_vec(),
            suffix: bytes[at + marker.len()..].to_vec(),
        })
    }

    /// Places the draft in the log.
    pub fn place(self, seq: u64, time: DateTime<Utc>, hub: &str, actor: &Actor) -> Event {
        Event {
            seq,
            time: time.trunc_subsecs(6),
            hub: hub.to_owned(),
            actor: actor.id.clone(),
            role: actor.role.clone(),
            action: self.action,
            targets: self.targets,
            details: self.details,
            outcome: self.outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_stable_and_sorted() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T03:00:00.123456Z")
            .expect("time")
            .with_timezone(&Utc);
        let e = Draft::new("dataset.export")
            .dataset("claims@0123456789ab")
            .detail("rows", 42)
            .detail("bytes", 1000)
            .place(7, t, "hub-1", &Actor::new("alice", "operator"));
        let b = e.canonical_bytes().expect("canonical");
        assert_eq!(
            String::from_utf8(b.clone()).expect("utf8"),
            r#"{"action":"dataset.export","actor":"alice","details":{"bytes":1000,"rows":42},"hub":"hub-1","outcome":{"result":"allowed"},"role":"operator","seq":7,"targets":{"dataset":"claims@0123456789ab"},"time":"2026-11-23T03:00:00.123456Z"}"#
        );
        let back: Event = serde_json::from_slice(&b).expect("parse");
        assert_eq!(back, e);
        assert_eq!(back.canonical_bytes().expect("again"), b);
    }

    #[test]
    fn rendering_around_the_sequence_number_equals_placing() {
        let t = Utc::now();
        let a = Actor::new("alice \"x\"", "operator");
        let d = Draft::new("dataset.query")
            .permit("p\u{1F600}")
            .detail("seq", SEQ_PLACEHOLDER)
            .detail("nested", serde_json::json!({"z": 1, "a": ["é", "\u{7}"]}))
            .refused("below threshold");
        let r = d.clone().render(t, "hub", &a).expect("render");
        for seq in [0u64, 9, 10, 123_456_789] {
            let mut out = Vec::new();
            r.write(seq, &mut out);
            let want = d
                .clone()
                .place(seq, t, "hub", &a)
                .canonical_bytes()
                .expect("bytes");
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                String::from_utf8(want).expect("utf8")
            );
        }
    }

    #[test]
    fn floats_are_refused() {
        let e =
            Draft::new("x")
                .detail("ratio", 0.5)
                .place(0, Utc::now(), "h", &Actor::new("a", "r"));
        assert!(matches!(e.canonical_bytes(), Err(EventError::Float(k)) if k == "ratio"));
    }
}
