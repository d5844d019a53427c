//! Hex digits of bytes and the hex SHA-256 of bytes: entity identifiers of schemas
//! without a path, stored token digests, `only_changed` payload digests, batch
//! idempotency keys; and the canonical JSON text those of values are made from.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Compact JSON with every object's keys in sorted order: the same text for the same
/// value, whatever order its keys came in (entities keep their order everywhere else).
/// Identifiers and digests are made from it, so they are what they were before ferry
/// kept key order, and do not change when a sender reorders its keys.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// `bytes` as lowercase hex digits, two a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_keeps_numbers_as_written() {
        let a: Value = serde_json::from_str(r#"{"b":[{"z":1,"y":2}],"a":12.50}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":12.50,"b":[{"y":2,"z":1}]}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":12.50,"b":[{"y":2,"z":1}]}"#);
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    #[test]
    fn the_digest_of_nothing_is_the_known_one() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
