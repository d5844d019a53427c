//! The `file` subscriber: a glob of NDJSON, JSON or CSV files; each file read is moved
//! into a folder beside it once its entities are stored.

use crate::connectors::{
    BuildResult, Built, Context, Fetch, Fetched, Sourced, SubscriberKind, Subscription, settings,
};
use async_trait::async_trait;
use ferry_core::config::ConnectorSpec;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Folder, beside the files, where processed files are moved.
pub const PROCESSED_DIR: &str = ".ferry-processed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Ndjson,
    Json,
    Csv,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// A glob, relative to the configuration's folder.
    path: String,
    #[serde(default = "ndjson")]
    format: FileFormat,
}

fn ndjson() -> FileFormat {
    FileFormat::Ndjson
}

pub(super) struct FileSubscriber;

impl SubscriberKind for FileSubscriber {
    fn build(&self, spec: &ConnectorSpec, ctx: &Context<'_>) -> BuildResult<Subscription> {
        let s: Settings = settings::parse(spec)?;
        if let Err(e) = glob::Pattern::new(&s.path) {
            return Err(vec![spec.problem(
                "path",
                format!("'{}' is not a valid file pattern: {e}", s.path),
            )]);
        }
        Ok(Built::new(Subscription::Pulled(Arc::new(Files {
            pattern: ctx.folder.join(&s.path).to_string_lossy().into_owned(),
            format: s.format,
        }))))
    }
}

struct Files {
    pattern: String,
    format: FileFormat,
}

#[async_trait]
impl Fetch for Files {
    async fn fetch(&self, _since: Option<&str>) -> Fetched {
        let (pattern, format) = (self.pattern.clone(), self.format);
        tokio::task::spawn_blocking(move || read_files(&pattern, format))
            .await
            .unwrap_or_else(|e| Fetched {
                errors: vec![format!("reading files failed: {e}")],
                ..Fetched::default()
            })
    }
}

/// Moves a processed file into the processed folder beside it.
pub fn move_aside(file: &Path) -> std::io::Result<PathBuf> {
    let dir = file.parent().unwrap_or(Path::new(".")).join(PROCESSED_DIR);
    std::fs::create_dir_all(&dir)?;
    let name = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut target = dir.join(&name);
    if target.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
        target = dir.join(format!("{name}.{stamp}"));
    }
    std::fs::rename(file, &target)?;
    Ok(target)
}

fn read_files(pattern: &str, format: FileFormat) -> Fetched {
    let mut out = Fetched::default();
    let options = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    let paths = match glob::glob_with(pattern, options) {
        Ok(paths) => paths,
        Err(e) => {
            out.errors
                .push(format!("the file pattern {pattern} is not valid: {e}"));
            return out;
        }
    };
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(format!("{shown}: cannot read: {e}"));
                continue;
            }
        };
        match format {
            FileFormat::Ndjson => read_ndjson(&text, &shown, &mut out),
            FileFormat::Json => read_json(&text, &shown, &mut out),
            FileFormat::Csv => read_csv(&text, &shown, &mut out),
        }
        out.files.push(file);
    }
    out
}

fn read_ndjson(text: &str, file: &str, out: &mut Fetched) {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{file}:{}", i + 1);
        match serde_json::from_str::<Value>(line) {
            Ok(v) => out.push(v, origin),
            Err(e) => out.errors.push(format!("{origin}: not JSON: {e}")),
        }
    }
}

fn read_json(text: &str, file: &str, out: &mut Fetched) {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => {
            for (i, v) in items.into_iter().enumerate() {
                out.push(v, format!("{file}[{i}]"));
            }
        }
        Ok(v) => out.push(v, file.to_owned()),
        Err(e) => out.errors.push(format!("{file}: not JSON: {e}")),
    }
}

fn read_csv(text: &str, file: &str, out: &mut Fetched) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            out.errors
                .push(format!("{file}: cannot read the CSV header: {e}"));
            return;
        }
    };
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or(0);
                let object: Map<String, Value> = headers
                    .iter()
                    .zip(r.iter())
                    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                    .collect();
                out.entities.push(Sourced {
                    entity: Value::Object(object),
                    origin: format!("{file}:{line}"),
                });
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                out.errors.push(format!("{file}:{line}: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, names: &[(&str, &str)]) {
        for (name, text) in names {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn ndjson_files_yield_objects_and_report_bad_lines_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        files(
            dir.path(),
            &[
                (
                    "a.ndjson",
                    "{\"sku\":\"A\"}\n{oops\n\n[1]\n{\"sku\":\"B\"}\n",
                ),
                ("b.txt", "{}"),
            ],
        );
        let pattern = dir.path().join("*.ndjson").display().to_string();
        let out = read_files(&pattern, FileFormat::Ndjson);
        assert_eq!(out.entities.len(), 2);
        assert!(
            out.entities[1].origin.ends_with("a.ndjson:5"),
            "{:?}",
            out.entities[1]
        );
        assert_eq!(out.errors.len(), 2);
        assert!(
            out.errors[0].contains("a.ndjson:2: not JSON"),
            "{:?}",
            out.errors
        );
        assert!(out.errors[1].contains("a.ndjson:4") && out.errors[1].contains("an array"));
        assert_eq!(out.files.len(), 1);
    }

    #[test]
    fn csv_rows_become_objects_of_strings() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path(), &[("p.csv", "sku,price\nA,1.5\nB,2\nC\n")]);
        let out = read_files(
            &dir.path().join("*.csv").display().to_string(),
            FileFormat::Csv,
        );
        assert_eq!(
            out.entities[0].entity,
            serde_json::json!({"sku": "A", "price": "1.5"})
        );
        assert_eq!(out.entities.len(), 2);
        assert!(out.errors[0].contains("p.csv:4"), "{:?}", out.errors);
    }

    #[test]
    fn a_json_file_holds_one_object_or_an_array() {
        let dir = tempfile::tempdir().unwrap();
        files(
            dir.path(),
            &[
                ("a.json", "[{\"a\":1},{\"a\":2}]"),
                ("b.json", "{\"a\":3}"),
                ("c.json", "nope"),
            ],
        );
        let out = read_files(
            &dir.path().join("*.json").display().to_string(),
            FileFormat::Json,
        );
        assert_eq!(out.entities.len(), 3);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.files.len(), 3);
    }

    #[test]
    fn processed_files_are_moved_aside_and_not_matched_again() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path(), &[("a.ndjson", "{}\n")]);
        let pattern = dir.path().join("*").display().to_string();
        let out = read_files(&pattern, FileFormat::Ndjson);
        let moved = move_aside(&out.files[0]).unwrap();
        assert!(moved.starts_with(dir.path().join(PROCESSED_DIR)));
        assert!(read_files(&pattern, FileFormat::Ndjson).files.is_empty());
        // A second file of the same name does not overwrite the first.
        files(dir.path(), &[("a.ndjson", "{}\n")]);
        let again = move_aside(&dir.path().join("a.ndjson")).unwrap();
        assert_ne!(again, moved);
    }
}
