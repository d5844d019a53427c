//! JSON Schema (draft 2020-12) on entity schemas: `json_schema = "schemas/product.json"`
//! checks entities as they become tasks (`validate = "incoming"`, the default), payloads
//! as they would be sent (`"outgoing"`), or both.

use ferry_core::config::{EntitySchema, Validate};
use serde_json::Value;
use std::path::Path;

/// Most violations listed for one entity (the count says how many there were).
const MAX_LISTED: usize = 20;

/// An entity schema's JSON Schema, compiled.
pub struct SchemaCheck {
    /// The file as configured, for messages.
    pub file: String,
    pub validate: Validate,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCheck")
            .field("file", &self.file)
            .field("validate", &self.validate)
            .finish()
    }
}

/// One place where an entity does not match: a JSON pointer (`/variants/0/price`, or
/// `` for the whole entity) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl SchemaCheck {
    /// Reads and compiles the schema's file (relative to `base_dir`); the error says
    /// what is wrong with the file or the schema, in words.
    pub fn load(schema: &EntitySchema, base_dir: &Path) -> Option<Result<SchemaCheck, String>> {
        let file = schema.json_schema.as_ref()?;
        Some(Self::compile(file, schema.validate, base_dir))
    }

    fn compile(file: &str, validate: Validate, base_dir: &Path) -> Result<SchemaCheck, String> {
        let text = std::fs::read_to_string(base_dir.join(file))
            .map_err(|e| format!("cannot read the JSON Schema {file}: {e}"))?;
        let schema: Value = serde_json::from_str(&text)
            .map_err(|e| format!("the JSON Schema {file} is not JSON: {e}"))?;
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            return Err(format!(
                "{file} is not a valid JSON Schema (draft 2020-12): at {}: {e}",
                pointer(&e.instance_path().to_string())
            ));
        }
        let validator = jsonschema::draft202012::new(&schema)
            .map_err(|e| format!("{file} cannot be used as a JSON Schema: {e}"))?;
        Ok(SchemaCheck {
            file: file.to_owned(),
            validate,
            validator,
        })
    }

    /// Where `entity` does not match the schema (nothing when it does).
    pub fn violations(&self, entity: &Value) -> Vec<Violation> {
        self.validator
            .iter_errors(entity)
            .map(|e| Violation {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect()
    }

    /// One sentence for a log line or an error: which file, and each violation at its
    /// path (at most [`MAX_LISTED`]).
    pub fn describe(&self, violations: &[Violation]) -> String {
        let listed: Vec<String> = violations
            .iter()
            .take(MAX_LISTED)
            .map(|v| format!("at {}: {}", pointer(&v.path), v.message))
            .collect();
        let more = violations.len().saturating_sub(MAX_LISTED);
        format!(
            "does not match the JSON Schema {} ({} violation{}): {}{}",
            self.file,
            violations.len(),
            if violations.len() == 1 { "" } else { "s" },
            listed.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )
    }
}

/// A JSON pointer as shown: the whole entity is `/`.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: &Value) -> Result<SchemaCheck, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.json"), schema.to_string()).unwrap();
        SchemaCheck::compile("s.json", Validate::Incoming, dir.path())
    }

    #[test]
    fn each_violation_is_listed_with_its_json_path() {
        let c = check(&json!({
            "type": "object",
            "required": ["sku", "price"],
            "properties": {"price": {"type": "number", "minimum": 0},
                           "variants": {"type": "array", "items": {"properties": {"ean": {"pattern": "^[0-9]{13}$"}}}}}
        }))
        .unwrap();
        assert!(c.violations(&json!({"sku": "A", "price": 1})).is_empty());
        let v = c.violations(&json!({"price": -1, "variants": [{"ean": "12"}]}));
        let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["", "/price", "/variants/0/ean"], "{v:?}");
        let text = c.describe(&v);
        assert!(
            text.starts_with("does not match the JSON Schema s.json (3 violations): at /: "),
            "{text}"
        );
        assert!(
            text.contains("at /variants/0/ean: \"12\" does not match"),
            "{text}"
        );
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused_with_where() {
        let e = check(&json!({"type": "thing"})).unwrap_err();
        assert!(
            e.starts_with("s.json is not a valid JSON Schema (draft 2020-12): at /type"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = SchemaCheck::compile("missing.json", Validate::Both, dir.path()).unwrap_err();
        assert!(
            e.contains("cannot read the JSON Schema missing.json"),
            "{e}"
        );
    }
}
