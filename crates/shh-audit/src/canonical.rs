//! Canonical JSON: object keys sorted, no insignificant whitespace, so that the same value
//! always hashes the same (manifest identities and audit leaves depend on it). Keys are sorted by UTF-16 code
//! units and numbers written as `serde_json` writes them, which matches RFC 8785 for the
//! integers and strings manifests and audit events contain (events refuse floats).

use serde_json::Value;

/// Serializes `value` canonically.
pub fn to_canonical_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                if let Some(x) = map.get(k) {
                    write(x, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(x, out);
            }
            out.push(b']');
        }
        Value::String(st) => write_str(st, out),
        // Scalars: serde_json's compact form is already canonical for integers and literals.
        other => {
            // Writing a scalar into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// A string with serde_json's escaping (only `"`, `\` and control characters), as RFC 8785 wants.
fn write_str(s: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"é"}}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"a":{"x":"é","y":[1,2]},"b":1}"#).expect("json");
        assert_eq!(to_canonical_vec(&a), to_canonical_vec(&b));
        assert_eq!(
            to_canonical_vec(&a),
            r#"{"a":{"x":"é","y":[1,2]},"b":1}"#.as_bytes().to_vec()
        );
    }
}
