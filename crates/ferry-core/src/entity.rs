//! Entity identifiers (PRODUCT.md, "Entity identifier").

use serde_json::Value;

/// Longest compact JSON used verbatim as an identifier when a schema has no path.
pub const MAX_VERBATIM_JSON: usize = 64;

/// Why an entity has no identifier at its schema's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("the entity has no field '{field}' (the identifier path is {path})")]
    Missing { field: String, path: String },
    #[error(
        "the field '{field}' is {kind}; identifier fields must be strings, numbers or booleans"
    )]
    NotScalar { field: String, kind: &'static str },
    #[error(
        "the field '{field}' holds a NUL character (\\u0000), which an entity identifier cannot hold"
    )]
    Nul { field: String },
}

/// The values at `path` joined with `-`; without a path, the canonical JSON of the data
/// (compact, keys sorted) when it is at most 64 characters, else `sha256:` and the hex
/// digest of that JSON.
///
/// A path element may name a nested field with dots (`"store.id"`).
pub fn entity_identifier(data: &Value, path: &[String]) -> Result<String, IdentifierError> {
    if path.is_empty() {
        let compact = crate::digest::canonical_json(data);
        if compact.chars().count() <= MAX_VERBATIM_JSON {
            return Ok(compact);
        }
        return Ok(format!(
            "sha256:{}",
            crate::digest::sha256_hex(compact.as_bytes())
        ));
    }
    let mut parts = Vec::with_capacity(path.len());
    for field in path {
        let value = field
            .split('.')
            .try_fold(data, |v, key| v.get(key))
            .filter(|v| !v.is_null())
            .ok_or_else(|| IdentifierError::Missing {
                field: field.clone(),
                path: format!("{path:?}"),
            })?;
        parts.push(match value {
            Value::String(s) if s.contains('\0') => {
                return Err(IdentifierError::Nul {
                    field: field.clone(),
                });
            }
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(IdentifierError::NotScalar {
                    field: field.clone(),
                    kind: kind_of(other),
                });
            }
        });
    }
    Ok(parts.join("-"))
}

/// How a JSON value is described in error messages: `an object`, `a number`, …
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_identifier_is_the_value_at_the_path() {
        let id = entity_identifier(&json!({"sku": "A-1", "n": 2}), &path(&["sku"]));
        assert_eq!(id.unwrap(), "A-1");
    }

    #[test]
    fn several_path_fields_are_joined_with_a_dash() {
        let data = json!({"store": "eu", "id": 42});
        let id = entity_identifier(&data, &path(&["store", "id"]));
        assert_eq!(id.unwrap(), "eu-42");
    }

    #[test]
    fn a_dotted_path_element_reads_a_nested_field() {
        let data = json!({"meta": {"code": "X"}});
        assert_eq!(
            entity_identifier(&data, &path(&["meta.code"])).unwrap(),
            "X"
        );
    }

    #[test]
    fn a_missing_or_null_field_is_an_error_that_names_it() {
        let err = entity_identifier(&json!({"sku": null}), &path(&["sku"])).unwrap_err();
        assert!(err.to_string().contains("'sku'"));
        assert!(entity_identifier(&json!({}), &path(&["sku"])).is_err());
    }

    #[test]
    fn an_object_at_the_path_is_refused() {
        let err = entity_identifier(&json!({"sku": {"a": 1}}), &path(&["sku"])).unwrap_err();
        assert!(matches!(err, IdentifierError::NotScalar { .. }));
    }

    #[test]
    fn without_a_path_short_data_is_its_own_compact_json() {
        let id = entity_identifier(&json!({"a": 1, "b": [true]}), &[]).unwrap();
        assert_eq!(id, r#"{"a":1,"b":[true]}"#);
    }

    #[test]
    fn without_a_path_long_data_is_hashed_stably() {
        let data = json!({"description": "x".repeat(100)});
        let a = entity_identifier(&data, &[]).unwrap();
        let b = entity_identifier(&data.clone(), &[]).unwrap();
        assert!(a.starts_with("sha256:"));
        assert_eq!(a.len(), "sha256:".len() + 64);
        assert_eq!(a, b);
    }
}
