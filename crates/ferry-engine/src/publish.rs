//! Publishers: where a task's transformed entity goes.

use ferry_core::config::Publisher as PublisherConfig;
use ferry_core::duration::parse_duration;
use ferry_core::retry::Failure;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const BODY_EXCERPT_CHARS: usize = 500;

/// A configured publisher, ready to send.
pub enum Publisher {
    File(FileSink),
    Http(HttpTarget),
}

impl Publisher {
    /// Builds a publisher; relative file paths are read from `base_dir` (the folder of
    /// the configuration file).
    pub fn new(config: &PublisherConfig, base_dir: &Path, client: &reqwest::Client) -> Publisher {
        match config {
            PublisherConfig::File { path } => Publisher::File(FileSink {
                path: base_dir.join(path),
                file: Mutex::new(None),
            }),
            PublisherConfig::Http {
                method,
                url,
                headers,
                timeout,
            } => Publisher::Http(HttpTarget {
                client: client.clone(),
                method: method.to_uppercase(),
                url: url.clone(),
                headers: headers.clone().into_iter().collect(),
                timeout: timeout
                    .as_deref()
                    .and_then(|t| parse_duration(t).ok())
                    .unwrap_or(DEFAULT_TIMEOUT),
            }),
        }
    }

    /// Publishes one entity; on success answers a line for the task's log.
    pub async fn publish(&self, entity: &Value) -> Result<String, Failure> {
        match self {
            Publisher::File(sink) => sink.append(entity),
            Publisher::Http(target) => target.send(entity).await,
        }
    }
}

/// Appends one JSON line per task to a file, kept open between tasks.
pub struct FileSink {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl FileSink {
    fn append(&self, entity: &Value) -> Result<String, Failure> {
        let fail = |what: &str, e: std::io::Error| Failure {
            message: format!("cannot {what} {}: {e}", self.path.display()),
            http_status: None,
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
        Ok(format!(
            "appended {} bytes to {}",
            line.len(),
            self.path.display()
        ))
    }
}

/// Sends the entity as a JSON body to an HTTP endpoint.
pub struct HttpTarget {
    client: reqwest::Client,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl HttpTarget {
    async fn send(&self, entity: &Value) -> Result<String, Failure> {
        let url = expand_placeholders(&self.url, entity).map_err(|message| Failure {
            message,
            http_status: None,
        })?;
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).map_err(|_| Failure {
            message: format!("'{}' is not an HTTP method", self.method),
            http_status: None,
        })?;
        let mut req = self
            .client
            .request(method.clone(), &url)
            .timeout(self.timeout)
            .json(entity);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let response = req.send().await.map_err(|e| Failure {
            message: if e.is_timeout() {
                format!("{method} {url}: timeout after {:?}", self.timeout)
            } else {
                format!("{method} {url}: {}", error_chain(&e))
            },
            http_status: None,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(format!("{method} {url} → {status}"));
        }
        let body = read_capped(response, 64 * 1024).await.unwrap_or_else(|e| e);
        let excerpt: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
        Err(Failure {
            message: format!("{method} {url} → {status}: {excerpt}"),
            http_status: Some(status.as_u16()),
        })
    }
}

/// An answer's body as text, refused past `max` bytes (an outside system could send
/// gigabytes); the error says how much was allowed.
pub async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The causes under reqwest's own summary (which repeats the URL), joined.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(inner) = source {
        causes.push(inner.to_string());
        source = inner.source();
    }
    if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    }
}

/// Replaces `{field}` (or `{a.b}`) in a URL with the URL-encoded value from the entity.
pub fn expand_placeholders(template: &str, entity: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let field = &rest[start + 1..start + len];
        let value = field
            .split('.')
            .try_fold(entity, |v, k| v.get(k))
            .ok_or_else(|| format!("the URL placeholder {{{field}}} has no value in the entity"))?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.extend(form_urlencoded::byte_serialize(text.as_bytes()));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_take_values_from_the_entity() {
        let e = json!({"sku": "A B/1", "n": 3, "meta": {"store": "eu"}});
        let url = expand_placeholders("http://h/p/{sku}?n={n}&s={meta.store}", &e).unwrap();
        assert_eq!(url, "http://h/p/A+B%2F1?n=3&s=eu");
        assert!(expand_placeholders("http://h/{missing}", &e).is_err());
    }

    #[test]
    fn the_file_sink_appends_one_line_per_entity() {
        let dir = tempfile::tempdir().unwrap();
        let p = Publisher::new(
            &PublisherConfig::File {
                path: "out/x.ndjson".into(),
            },
            dir.path(),
            &reqwest::Client::new(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            p.publish(&json!({"a": 1})).await.unwrap();
            p.publish(&json!({"a": 2})).await.unwrap();
        });
        let text = std::fs::read_to_string(dir.path().join("out/x.ndjson")).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
    }
}
