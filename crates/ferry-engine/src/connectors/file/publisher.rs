//! The `file` publisher: adds each task's entity to a file, as one JSON line (`ndjson`),
//! an item of one JSON array (`json`), a CSV row of configured columns (`csv`, a header
//! row first) or an element of one XML document (`xml`). The file is a whole document
//! after every task.

use crate::connectors::{
    BuildResult, Built, Context, Delivered, Preview, Publish, PublisherKind, settings,
};
use crate::formats::{self, CsvSettings, Format, XmlSettings};
use async_trait::async_trait;
use ferry_core::TaskId;
use ferry_core::config::{ConnectorSpec, leaves_folder};
use ferry_core::retry::Failure;
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Relative to the configuration's folder.
    path: String,
    /// A path that leaves the configuration's folder is refused unless this is set
    /// (`ferry check` then warns about it).
    #[serde(default)]
    allow_outside: bool,
    #[serde(default = "ndjson")]
    format: Format,
    #[serde(default)]
    csv: CsvSettings,
    #[serde(default)]
    xml: XmlSettings,
}

fn ndjson() -> Format {
    Format::Ndjson
}

pub(super) struct FilePublisher;

impl PublisherKind for FilePublisher {
    fn build(&self, spec: &ConnectorSpec, ctx: &Context<'_>) -> BuildResult<Arc<dyn Publish>> {
        let s: Settings = settings::parse(spec)?;
        let mut problems: Vec<_> = s
            .csv
            .problems()
            .into_iter()
            .map(|(key, message)| spec.problem(&format!("csv.{key}"), message))
            .collect();
        if s.format == Format::Csv && s.csv.columns.as_ref().is_none_or(Vec::is_empty) {
            problems.push(spec.problem(
                "csv.columns",
                "a CSV file needs its columns: csv = { columns = [\"sku\", \"name\", \"price\"] }",
            ));
        }
        for (key, name) in [("xml.root", &s.xml.root), ("xml.item", &s.xml.item)] {
            if let Some(Err(e)) = name
                .as_deref()
                .map(|n| formats::write_xml_element(n, &Value::Null, &mut String::new()))
            {
                problems.push(spec.problem(key, e.to_string()));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut built = Built::new(Arc::new(FileSink {
            path: ctx.folder.join(&s.path),
            file: Mutex::new(None),
            format: s.format,
            csv: s.csv,
            xml: s.xml,
        }) as Arc<dyn Publish>);
        // The path must stay in the configuration's folder (judged from the text alone,
        // `..` resolved lexically) unless `allow_outside` says otherwise.
        if let Some(why) = leaves_folder(ctx.folder, &s.path) {
            let path = &s.path;
            if s.allow_outside {
                built.warnings.push(spec.problem(
                    "path",
                    format!(
                        "'{path}' {why}; allowed by allow_outside = true, so ferry will write there"
                    ),
                ));
            } else {
                return Err(vec![spec.problem(
                    "path",
                    format!("'{path}' {why}; keep it inside that folder, or set allow_outside = true on the publisher if that is meant"),
                )]);
            }
        }
        Ok(built)
    }
}

/// Adds each entity to a file, kept open between tasks.
struct FileSink {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    format: Format,
    csv: CsvSettings,
    xml: XmlSettings,
}

/// How a document grows: what a new file starts with, what goes between two items, and
/// the tail it ends with (written again after each item).
struct Framing {
    start: String,
    between: &'static str,
    tail: String,
}

impl FileSink {
    /// The text added for one entity, and how the file holds it.
    fn item(&self, entity: &Value) -> Result<(String, Option<Framing>), String> {
        match self.format {
            Format::Ndjson => Ok((format!("{entity}\n"), None)),
            Format::Json => Ok((
                entity.to_string(),
                Some(Framing {
                    start: "[\n".into(),
                    between: ",\n",
                    tail: "\n]\n".into(),
                }),
            )),
            Format::Csv => {
                let columns = self.csv.columns.as_deref().unwrap_or_default();
                formats::write_csv_row(entity, columns, &self.csv)
                    .map(|row| (row, None))
                    .map_err(|e| e.to_string())
            }
            Format::Xml => {
                let root = self.xml.root.as_deref().unwrap_or("entities");
                let mut element = String::new();
                formats::write_xml_element(
                    self.xml.item.as_deref().unwrap_or("entity"),
                    entity,
                    &mut element,
                )
                .map_err(|e| e.to_string())?;
                Ok((
                    element,
                    Some(Framing {
                        start: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}>\n"),
                        between: "\n",
                        tail: format!("\n</{root}>\n"),
                    }),
                ))
            }
        }
    }
}

/// Writes `item` into a framed document: a new file gets the start, the item and the
/// tail; an existing one loses its tail, then gets the separator, the item and the tail.
fn add_framed(file: &mut std::fs::File, item: &str, f: &Framing) -> std::io::Result<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    let text = if len == 0 {
        format!("{}{item}{}", f.start, f.tail)
    } else {
        let tail_len = f.tail.len() as u64;
        let mut tail = vec![0; f.tail.len()];
        if len < tail_len {
            tail.clear();
        } else {
            file.seek(SeekFrom::Start(len - tail_len))?;
            file.read_exact(&mut tail)?;
        }
        if tail != f.tail.as_bytes() {
            return Err(std::io::Error::other(format!(
                "it does not end as ferry ends it ({:?}); move it away to start a new one",
                f.tail.trim()
            )));
        }
        file.set_len(len - tail_len)?;
        format!("{}{item}{}", f.between, f.tail)
    };
    file.seek(SeekFrom::End(0))?;
    file.write_all(text.as_bytes())?;
    Ok(text.len())
}

#[async_trait]
impl Publish for FileSink {
    fn preview(&self, entity: &Value, _task: &TaskId) -> Result<Preview, String> {
        let (item, framing) = self.item(entity)?;
        let body = match framing {
            Some(f) => format!("{}{item}{}", f.start, f.tail),
            None if self.format == Format::Csv && self.csv.header => {
                let columns = self.csv.columns.as_deref().unwrap_or_default();
                let header =
                    formats::write_csv_header(columns, &self.csv).map_err(|e| e.to_string())?;
                format!("{header}{item}")
            }
            None => item,
        };
        Ok(Preview {
            method: "append".into(),
            target: self.path.display().to_string(),
            headers: Vec::new(),
            body,
        })
    }

    async fn publish(&self, entity: &Value, _task: &TaskId) -> Result<Delivered, Failure> {
        let fail = |what: &str, e: std::io::Error| Failure {
            message: format!("cannot {what} {}: {e}", self.path.display()),
            http_status: None,
            ..Failure::default()
        };
        let (item, framing) = self.item(entity).map_err(|message| Failure {
            message,
            ..Failure::default()
        })?;
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(framing.is_none())
                .write(true)
                .open(&self.path)
                .map_err(|e| fail("open", e))?;
            *guard = Some(f);
        }
        let file = guard.as_mut().expect("opened above");
        let written = match &framing {
            Some(f) => add_framed(file, &item, f),
            None => {
                let header = match (self.format, file.metadata()) {
                    (Format::Csv, Ok(m)) if m.len() == 0 && self.csv.header => {
                        let columns = self.csv.columns.as_deref().unwrap_or_default();
                        formats::write_csv_header(columns, &self.csv).unwrap_or_default()
                    }
                    _ => String::new(),
                };
                let text = format!("{header}{item}");
                file.write_all(text.as_bytes()).map(|()| text.len())
            }
        };
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                *guard = None;
                return Err(fail("write to", e));
            }
        };
        Ok(Delivered::noted(format!(
            "appended {written} bytes to {}",
            self.path.display()
        )))
    }
}
