//! Subscribers that ferry runs itself: `file` (a glob of NDJSON, JSON or CSV files) and
//! `http` (GET a URL, pick the items with jq, follow the next page). Webhooks are pushed
//! to ferry instead (see the web crate).

use crate::jq::JqProgram;
use ferry_core::config::{FileFormat, Subscriber};
use ferry_core::duration::parse_duration;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Folder, beside the files, where processed files are moved.
pub const PROCESSED_DIR: &str = ".ferry-processed";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An entity and where it came from (`inbox/a.ndjson:3`, `http://…/products page 2`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced {
    pub entity: Value,
    pub origin: String,
}

/// What a subscriber fetched: entities, the problems met on the way, and the files to
/// move aside once the entities are stored.
#[derive(Debug, Default)]
pub struct Fetched {
    pub entities: Vec<Sourced>,
    pub errors: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// A runnable subscriber, ready to fetch.
pub enum Source {
    Files { pattern: String, format: FileFormat },
    Http(Box<HttpSource>),
}

/// An `http` subscriber: GET a URL, pick the items, follow the next page. The configured
/// headers go to the origin (scheme, host, port) of the configured URL only; a next page or
/// redirect elsewhere is refused, or with `follow_other_origins` fetched without them.
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    items: Option<JqProgram>,
    next: Option<JqProgram>,
    headers: Vec<(String, String)>,
    timeout: Duration,
    max_pages: u32,
    follow_other_origins: bool,
}

impl Source {
    /// The runnable form of a subscriber (`None` for a webhook), or a compile error of
    /// one of its jq expressions with the key it came from.
    pub fn new(
        subscriber: &Subscriber,
        base_dir: &Path,
        client: &reqwest::Client,
    ) -> Result<Option<Source>, (String, String)> {
        match subscriber {
            Subscriber::Webhook { .. } => Ok(None),
            Subscriber::File { path, format } => Ok(Some(Source::Files {
                pattern: base_dir.join(path).to_string_lossy().into_owned(),
                format: *format,
            })),
            Subscriber::Http {
                url,
                items,
                next,
                headers,
                timeout,
                max_pages,
                follow_other_origins,
            } => {
                let compile = |key: &str, code: &Option<String>| {
                    code.as_deref()
                        .map(JqProgram::compile)
                        .transpose()
                        .map_err(|e| (format!("subscriber.{key}"), e))
                };
                Ok(Some(Source::Http(Box::new(HttpSource {
                    client: client.clone(),
                    url: url.clone(),
                    items: compile("items", items)?,
                    next: compile("next", next)?,
                    headers: headers.clone().into_iter().collect(),
                    timeout: timeout
                        .as_deref()
                        .and_then(|t| parse_duration(t).ok())
                        .unwrap_or(DEFAULT_TIMEOUT),
                    max_pages: *max_pages,
                    follow_other_origins: *follow_other_origins,
                }))))
            }
        }
    }

    pub async fn fetch(&self) -> Fetched {
        match self {
            Source::Files { pattern, format } => {
                let (pattern, format) = (pattern.clone(), *format);
                tokio::task::spawn_blocking(move || read_files(&pattern, format))
                    .await
                    .unwrap_or_else(|e| Fetched {
                        errors: vec![format!("reading files failed: {e}")],
                        ..Fetched::default()
                    })
            }
            Source::Http(h) => h.fetch().await,
        }
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

fn push_object(out: &mut Fetched, value: Value, origin: String) {
    if value.is_object() {
        out.entities.push(Sourced {
            entity: value,
            origin,
        });
    } else {
        out.errors.push(format!(
            "{origin}: {} is not a JSON object; each entity must be an object",
            ferry_core::entity::kind_of(&value)
        ));
    }
}

fn read_ndjson(text: &str, file: &str, out: &mut Fetched) {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{file}:{}", i + 1);
        match serde_json::from_str::<Value>(line) {
            Ok(v) => push_object(out, v, origin),
            Err(e) => out.errors.push(format!("{origin}: not JSON: {e}")),
        }
    }
}

fn read_json(text: &str, file: &str, out: &mut Fetched) {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => {
            for (i, v) in items.into_iter().enumerate() {
                push_object(out, v, format!("{file}[{i}]"));
            }
        }
        Ok(v) => push_object(out, v, file.to_owned()),
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

impl HttpSource {
    async fn fetch(&self) -> Fetched {
        let mut out = Fetched::default();
        let mut url = self.url.clone();
        for page in 1..=self.max_pages {
            let body = match self.get(&url).await {
                Ok(b) => b,
                Err(e) => {
                    out.errors.push(e);
                    return out;
                }
            };
            let origin = format!("{url} (page {page})");
            let items = match &self.items {
                Some(p) => match p.run(&body) {
                    Ok(items) => items,
                    Err(e) => {
                        out.errors
                            .push(format!("{origin}: items `{}`: {e}", p.code()));
                        return out;
                    }
                },
                None => match body.clone() {
                    Value::Array(items) => items,
                    other => vec![other],
                },
            };
            for (i, item) in items.into_iter().enumerate() {
                push_object(&mut out, item, format!("{origin} item {i}"));
            }
            let Some(next) = &self.next else {
                return out;
            };
            let following = match next.run(&body) {
                Ok(values) => values.into_iter().next(),
                Err(e) => {
                    out.errors
                        .push(format!("{origin}: next `{}`: {e}", next.code()));
                    return out;
                }
            };
            match following {
                Some(Value::String(s)) if !s.is_empty() => {
                    let following = match reqwest::Url::parse(&url).and_then(|base| base.join(&s)) {
                        Ok(u) => u,
                        Err(e) => {
                            out.errors
                                .push(format!("{origin}: the next page '{s}' is not a URL: {e}"));
                            return out;
                        }
                    };
                    if let Err(e) = self.may_leave_origin(&following, "the next page") {
                        out.errors.push(format!("{origin}: {e}"));
                        return out;
                    }
                    url = following.to_string();
                }
                Some(Value::Null) | None => return out,
                Some(Value::String(_)) => return out,
                Some(other) => {
                    out.errors.push(format!(
                        "{origin}: next `{}` gave {}, not a URL string or null",
                        next.code(),
                        ferry_core::entity::kind_of(&other)
                    ));
                    return out;
                }
            }
        }
        out.errors.push(format!(
            "stopped after {} pages (subscriber.max_pages); the next page was {url}",
            self.max_pages
        ));
        out
    }

    /// The configured URL's origin, which alone receives the configured headers (none
    /// when the URL does not parse: then no request is made anyway).
    fn configured_origin(&self) -> Option<String> {
        reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| origin_of(&u))
    }

    /// Whether `url` (a next page or a redirect) may be fetched: within the configured
    /// origin always, elsewhere only with `follow_other_origins`.
    fn may_leave_origin(&self, url: &reqwest::Url, what: &str) -> Result<(), String> {
        let Some(configured) = self.configured_origin() else {
            return Err(format!("{} is not a URL", self.url));
        };
        if origin_of(url).as_ref() == Some(&configured) || self.follow_other_origins {
            return Ok(());
        }
        Err(format!(
            "{what} {url} is on {}, another origin than the configured url's ({configured}); it is not fetched, so the configured headers do not go there (set follow_other_origins = true on the subscriber to fetch it without them)",
            url.origin().ascii_serialization()
        ))
    }

    async fn get(&self, url: &str) -> Result<Value, String> {
        /// Largest page an http subscriber reads.
        const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;
        let mut current =
            reqwest::Url::parse(url).map_err(|e| format!("GET {url}: not a URL: {e}"))?;
        let mut shown = url.to_owned();
        let mut redirects = 0;
        let response = loop {
            let mut req = self.client.get(current.clone()).timeout(self.timeout);
            if origin_of(&current).is_some() && origin_of(&current) == self.configured_origin() {
                for (k, v) in &self.headers {
                    req = req.header(k, v);
                }
            }
            let response = req
                .send()
                .await
                .map_err(|e| format!("GET {shown}: {}", crate::publish::error_chain(&e)))?;
            let Some(to) = crate::publish::redirect_target(&response, &current) else {
                break response;
            };
            let status = response.status();
            if redirects == crate::publish::MAX_REDIRECTS {
                return Err(format!(
                    "GET {shown} → {status}: redirected to {to} after {} redirects already; no more are followed",
                    crate::publish::MAX_REDIRECTS
                ));
            }
            self.may_leave_origin(&to, "the redirect to")
                .map_err(|e| format!("GET {shown} → {status}: {e}"))?;
            redirects += 1;
            shown = to.to_string();
            current = to;
        };
        let url = shown;
        let status = response.status();
        let text = crate::publish::read_capped(response, MAX_PAGE_BYTES)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            let excerpt: String = text.chars().take(300).collect();
            return Err(format!("GET {url} → {status}: {excerpt}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET {url}: the answer is not JSON: {e}"))
    }
}

/// `scheme://host:port` of a URL, `None` for an opaque origin (which equals no other).
fn origin_of(url: &reqwest::Url) -> Option<String> {
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
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
