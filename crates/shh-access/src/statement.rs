//! What a decider signs. A statement is a kind, the hub's id, the decision's subject and the
//! decision itself, serialized as compact JSON with fields in a fixed order (struct order,
//! sorted sets), prefixed by a domain so that no signature made for one kind of statement
//! verifies as another. The audit event carries the statement, the signature and the public
//! key; the user's enrollment event carries the same key, so an auditor checks offline that
//! the decision was signed by the key that user enrolled.

use serde::Serialize;

/// The domain of every statement's signature (the kind follows in the statement).
pub const DOMAIN: &[u8] = b"shh/decision/v1";

/// A signed decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement<'a, T: Serialize> {
    /// What kind of decision (`permit.grant`, `export.review`…).
    pub kind: &'a str,
    /// The hub's id: a statement for one hub does not verify for another.
    pub hub: &'a str,
    /// The decider (user name).
    pub by: &'a str,
    /// What was decided.
    pub decision: &'a T,
}

/// The bytes signed for `statement`.
pub fn statement_bytes<T: Serialize>(statement: &Statement<'_, T>) -> Result<Vec<u8>, String> {
    serde_json::to_vec(statement).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_bind_kind_hub_decider_and_decision() {
        let d = serde_json::json!({"permit": "pmt-1"});
        let s = |kind, hub, by| {
            statement_bytes(&Statement {
                kind,
                hub,
                by,
                decision: &d,
            })
            .expect("bytes")
        };
        let base = s("permit.grant", "h1", "cora");
        assert_eq!(base, s("permit.grant", "h1", "cora"), "deterministic");
        assert_ne!(base, s("export.review", "h1", "cora"));
        assert_ne!(base, s("permit.grant", "h2", "cora"));
        assert_ne!(base, s("permit.grant", "h1", "carl"));
    }
}
