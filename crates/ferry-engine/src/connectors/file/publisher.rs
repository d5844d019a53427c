//! The `file` publisher: appends one JSON line per task to a file.

use crate::connectors::{BuildResult, Built, Context, Delivered, Publish, PublisherKind, settings};
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
}

pub(super) struct FilePublisher;

impl PublisherKind for FilePublisher {
    fn build(&self, spec: &ConnectorSpec, ctx: &Context<'_>) -> BuildResult<Arc<dyn Publish>> {
        let s: Settings = settings::parse(spec)?;
        let mut built = Built::new(Arc::new(FileSink {
            path: ctx.folder.join(&s.path),
            file: Mutex::new(None),
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

/// Appends one JSON line per task to a file, kept open between tasks.
struct FileSink {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

#[async_trait]
impl Publish for FileSink {
    async fn publish(&self, entity: &Value, _task: &TaskId) -> Result<Delivered, Failure> {
        let fail = |what: &str, e: std::io::Error| Failure {
            message: format!("cannot {what} {}: {e}", self.path.display()),
            http_status: None,
            ..Failure::default()
        };
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| fail("open", e))?;
            *guard = Some(f);
        }
        let mut line = entity.to_string();
        line.push('\n');
        let file = guard.as_mut().expect("opened above");
        if let Err(e) = file.write_all(line.as_bytes()) {
            *guard = None;
            return Err(fail("write to", e));
        }
        Ok(Delivered::noted(format!(
            "appended {} bytes to {}",
            line.len(),
            self.path.display()
        )))
    }
}
