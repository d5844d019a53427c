//! Filter flags shared by `tasks list`, `tasks skip` and `tasks retry`, named like the
//! API's parameters.

use serde_json::{Map, Value};

#[derive(clap::Args, Clone, Default)]
pub struct FilterArgs {
    /// Route id; repeat for several.
    #[arg(long)]
    pub route: Vec<String>,
    /// Status (new, processing, finished, failed, skipped, retry); repeat for several.
    #[arg(long)]
    pub status: Vec<String>,
    /// Created at or after (RFC 3339, e.g. 2026-11-28T00:00:00Z).
    #[arg(long)]
    pub created_from: Option<String>,
    #[arg(long)]
    pub created_to: Option<String>,
    #[arg(long)]
    pub updated_from: Option<String>,
    #[arg(long)]
    pub updated_to: Option<String>,
    /// Task identifier (contains, or equals with --identifier-match equals).
    #[arg(long)]
    pub identifier: Option<String>,
    #[arg(long, value_parser = ["contains", "equals"])]
    pub identifier_match: Option<String>,
    #[arg(long)]
    pub entity_schema: Option<String>,
    #[arg(long, value_parser = ["contains", "equals"])]
    pub entity_schema_match: Option<String>,
    #[arg(long)]
    pub entity_identifier: Option<String>,
    #[arg(long, value_parser = ["contains", "equals"])]
    pub entity_identifier_match: Option<String>,
}

impl FilterArgs {
    /// The flags as API query pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        out.extend(self.route.iter().map(|r| ("route".to_owned(), r.clone())));
        out.extend(self.status.iter().map(|s| ("status".to_owned(), s.clone())));
        let singles = [
            ("created_from", &self.created_from),
            ("created_to", &self.created_to),
            ("updated_from", &self.updated_from),
            ("updated_to", &self.updated_to),
            ("identifier", &self.identifier),
            ("identifier_match", &self.identifier_match),
            ("entity_schema", &self.entity_schema),
            ("entity_schema_match", &self.entity_schema_match),
            ("entity_identifier", &self.entity_identifier),
            ("entity_identifier_match", &self.entity_identifier_match),
        ];
        for (k, v) in singles {
            if let Some(v) = v {
                out.push((k.to_owned(), v.clone()));
            }
        }
        out
    }

    /// The flags as the bulk actions' JSON filter.
    pub fn json(&self) -> Value {
        let mut map = Map::new();
        for (k, v) in self.pairs() {
            if k == "route" || k == "status" {
                map.entry(k)
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                    .expect("an array")
                    .push(Value::String(v));
            } else {
                map.insert(k, Value::String(v));
            }
        }
        Value::Object(map)
    }

    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }
}
