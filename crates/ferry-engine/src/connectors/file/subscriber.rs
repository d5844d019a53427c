//! The `file` subscriber: a glob of NDJSON, JSON, CSV or XML files; each file read is
//! moved into a folder beside it once its entities are stored. A CSV or XML file with a
//! fault gives nothing and stays where it is (the error says the line and column).

use crate::connectors::{
    BuildResult, Built, Context, Fetch, Fetched, SubscriberKind, Subscription, settings,
};
use crate::formats::{self, CsvSettings, Format, FormatError, XmlSettings};
use crate::jq::JqProgram;
use async_trait::async_trait;
use ferry_core::config::ConnectorSpec;
use serde::Deserialize;
use serde_json::Value;
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
    Xml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// A glob, relative to the configuration's folder.
    path: String,
    #[serde(default = "ndjson")]
    format: FileFormat,
    #[serde(default)]
    csv: CsvSettings,
    #[serde(default)]
    xml: XmlSettings,
    /// XML: a jq expression over the document's JSON giving the entities.
    #[serde(default)]
    items: Option<String>,
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
        let mut problems: Vec<_> = s
            .csv
            .problems()
            .into_iter()
            .map(|(key, message)| spec.problem(&format!("csv.{key}"), message))
            .collect();
        let items = match s.items.as_deref().map(JqProgram::compile) {
            Some(Ok(p)) => Some(Arc::new(p)),
            Some(Err(e)) => {
                problems.push(spec.problem("items", e));
                None
            }
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Built::new(Subscription::Pulled(Arc::new(Files {
            pattern: ctx.folder.join(&s.path).to_string_lossy().into_owned(),
            read: Arc::new(Reading {
                format: s.format,
                csv: s.csv,
                xml: s.xml,
                items,
            }),
        }))))
    }
}

struct Files {
    pattern: String,
    read: Arc<Reading>,
}

/// How the files are read.
struct Reading {
    format: FileFormat,
    csv: CsvSettings,
    xml: XmlSettings,
    items: Option<Arc<JqProgram>>,
}

#[async_trait]
impl Fetch for Files {
    async fn fetch(&self, _since: Option<&str>) -> Fetched {
        let (pattern, read) = (self.pattern.clone(), self.read.clone());
        tokio::task::spawn_blocking(move || read_files(&pattern, &read))
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

fn read_files(pattern: &str, read: &Reading) -> Fetched {
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
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                out.errors.push(format!("{shown}: cannot read: {e}"));
                continue;
            }
        };
        let document = match read.format {
            FileFormat::Csv => read_csv(&bytes, &read.csv),
            FileFormat::Xml => formats::document_entities(
                Format::Xml,
                &bytes,
                None,
                &read.csv,
                &read.xml,
                read.items.as_deref(),
            )
            .map(|entities| entities.into_iter().map(|e| (e, None)).collect()),
            FileFormat::Ndjson | FileFormat::Json => {
                let text = String::from_utf8_lossy(&bytes);
                match read.format {
                    FileFormat::Ndjson => read_ndjson(&text, &shown, &mut out),
                    _ => read_json(&text, &shown, &mut out),
                }
                out.files.push(file);
                continue;
            }
        };
        match document {
            Ok(entities) => {
                for (i, (entity, line)) in entities.into_iter().enumerate() {
                    let origin = match line {
                        Some(line) => format!("{shown}:{line}"),
                        None => format!("{shown}[{i}]"),
                    };
                    out.push(entity, origin);
                }
                out.files.push(file);
            }
            Err(e) => out.errors.push(format!(
                "{shown}: {e}; nothing was read from it, and it stays where it is until fixed"
            )),
        }
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

/// A CSV file's rows with their line numbers.
fn read_csv(bytes: &[u8], s: &CsvSettings) -> Result<Vec<(Value, Option<usize>)>, FormatError> {
    let text = s.encoding.decode(bytes)?;
    Ok(formats::read_csv(&text, s)?
        .into_iter()
        .map(|(v, line)| (v, Some(line)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(format: FileFormat) -> Reading {
        Reading {
            format,
            csv: CsvSettings::default(),
            xml: XmlSettings::default(),
            items: None,
        }
    }

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
        let out = read_files(&pattern, &reading(FileFormat::Ndjson));
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
    fn csv_rows_become_objects_of_strings_and_a_bad_row_keeps_the_whole_file_back() {
        let dir = tempfile::tempdir().unwrap();
        files(
            dir.path(),
            &[
                ("p.csv", "sku,price\nA,1.5\nB,2\n"),
                ("q.csv", "sku,price\nC,1\nD\n"),
            ],
        );
        let out = read_files(
            &dir.path().join("*.csv").display().to_string(),
            &reading(FileFormat::Csv),
        );
        assert_eq!(
            out.entities[0].entity,
            serde_json::json!({"sku": "A", "price": "1.5"})
        );
        assert!(
            out.entities[1].origin.ends_with("p.csv:3"),
            "{:?}",
            out.entities[1]
        );
        assert_eq!(out.entities.len(), 2, "nothing from q.csv");
        assert!(out.errors[0].contains("q.csv: line 3"), "{:?}", out.errors);
        assert_eq!(out.files.len(), 1, "q.csv stays where it is");
    }

    #[test]
    fn a_windows_1252_csv_with_semicolons_reads_as_utf_8() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.csv"), b"sku;name\nA;Caf\xe9 \x80\n").unwrap();
        let mut read = reading(FileFormat::Csv);
        read.csv.delimiter = ";".into();
        read.csv.encoding = crate::formats::Encoding::Windows1252;
        let out = read_files(&dir.path().join("*.csv").display().to_string(), &read);
        assert_eq!(
            out.entities[0].entity,
            serde_json::json!({"sku": "A", "name": "Café €"})
        );
    }

    #[test]
    fn an_xml_file_gives_each_item_of_a_list_and_a_broken_one_nothing() {
        let dir = tempfile::tempdir().unwrap();
        files(
            dir.path(),
            &[
                (
                    "a.xml",
                    "<products><product id=\"1\"><sku>A</sku></product><product id=\"2\"><sku>B</sku></product></products>",
                ),
                (
                    "b.xml",
                    "<products>\n<product><sku>C</sku></product>\n<product><sku>D</sku></products>",
                ),
            ],
        );
        let out = read_files(
            &dir.path().join("*.xml").display().to_string(),
            &reading(FileFormat::Xml),
        );
        assert_eq!(out.entities.len(), 2, "{:?}", out.errors);
        assert_eq!(
            out.entities[1].entity,
            serde_json::json!({"@id": "2", "sku": "B"})
        );
        assert!(out.errors[0].contains("b.xml: line 3"), "{:?}", out.errors);
        assert_eq!(out.files.len(), 1);
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
            &reading(FileFormat::Json),
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
        let out = read_files(&pattern, &reading(FileFormat::Ndjson));
        let moved = move_aside(&out.files[0]).unwrap();
        assert!(moved.starts_with(dir.path().join(PROCESSED_DIR)));
        assert!(
            read_files(&pattern, &reading(FileFormat::Ndjson))
                .files
                .is_empty()
        );
        // A second file of the same name does not overwrite the first.
        files(dir.path(), &[("a.ndjson", "{}\n")]);
        let again = move_aside(&dir.path().join("a.ndjson")).unwrap();
        assert_ne!(again, moved);
    }
}
