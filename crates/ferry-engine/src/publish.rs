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
/// Most redirects one request follows (within its origin, when allowed).
pub const MAX_REDIRECTS: usize = 5;

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
            PublisherConfig::File { path, .. } => Publisher::File(FileSink {
                path: base_dir.join(path),
                file: Mutex::new(None),
            }),
            PublisherConfig::Http {
                method,
                url,
                headers,
                timeout,
                follow_redirects,
            } => Publisher::Http(HttpTarget {
                client: client.clone(),
                method: method.to_uppercase(),
                url: url.clone(),
                headers: headers.clone().into_iter().collect(),
                timeout: timeout
                    .as_deref()
                    .and_then(|t| parse_duration(t).ok())
                    .unwrap_or(DEFAULT_TIMEOUT),
                follow_redirects: *follow_redirects,
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

/// Sends the entity as a JSON body to an HTTP endpoint. The shared client follows no
/// redirect: the configured headers (an API key, say) must reach the configured origin
/// only, so a 3xx is handled here.
pub struct HttpTarget {
    client: reqwest::Client,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    follow_redirects: bool,
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
        let first = reqwest::Url::parse(&url).map_err(|e| Failure {
            message: format!("{url} is not a URL: {e}"),
            http_status: None,
        })?;
        let (mut current, mut shown, mut redirects) = (first.clone(), url, 0);
        loop {
            let mut req = self
                .client
                .request(method.clone(), current.clone())
                .timeout(self.timeout)
                .json(entity);
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            let response = req.send().await.map_err(|e| Failure {
                message: if e.is_timeout() {
                    format!("{method} {shown}: timeout after {:?}", self.timeout)
                } else {
                    format!("{method} {shown}: {}", error_chain(&e))
                },
                http_status: None,
            })?;
            let status = response.status();
            if status.is_success() {
                return Ok(format!("{method} {shown} → {status}"));
            }
            let failure = |message: String| Failure {
                message: format!("{method} {shown} → {status}: {message}"),
                http_status: Some(status.as_u16()),
            };
            if let Some(to) = redirect_target(&response, &current) {
                if !self.follow_redirects {
                    return Err(failure(format!(
                        "redirected to {to}; redirects are not followed unless follow_redirects = true on the publisher"
                    )));
                }
                if to.origin() != first.origin() {
                    return Err(failure(format!(
                        "redirected to {to}, on another origin than {}; only redirects within it are followed",
                        first.origin().ascii_serialization()
                    )));
                }
                if redirects == MAX_REDIRECTS {
                    return Err(failure(format!(
                        "redirected to {to} after {MAX_REDIRECTS} redirects already; no more are followed"
                    )));
                }
                redirects += 1;
                shown = to.to_string();
                current = to;
                continue;
            }
            let body = read_capped(response, 64 * 1024).await.unwrap_or_else(|e| e);
            let excerpt: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
            return Err(failure(excerpt));
        }
    }
}

/// Where a 3xx answer points, resolved against the URL it answers (`None` for any other
/// answer, or a 3xx without a usable `Location`, such as 304).
pub fn redirect_target(response: &reqwest::Response, url: &reqwest::Url) -> Option<reqwest::Url> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION)?;
    url.join(location.to_str().ok()?).ok()
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

/// Replaces `{field}` (or `{a.b}`) in a URL with the value from the entity, percent-encoded
/// so that it stays one path segment (or one query value after `?`): entity data never
/// changes which path is called (`..`, `/`) nor collides with another value (`A B` and
/// `A+B`).
pub fn expand_placeholders(template: &str, entity: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut in_query = false;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        in_query |= rest[..start].contains('?');
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
        if !in_query && (text == "." || text == "..") {
            // `%2E` and `%2E%2E` are dot segments too (WHATWG URL), so the URL would be
            // resolved to another path before it is sent.
            return Err(format!(
                "the URL placeholder {{{field}}} is '{text}', which would change the path instead of naming one segment"
            ));
        }
        encode_component(&text, &mut out);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Percent-encodes every byte but RFC 3986's unreserved characters, which is safe in a
/// path segment and in a query value alike.
fn encode_component(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_take_values_from_the_entity() {
        let e = json!({"sku": "A B/1", "n": 3, "meta": {"store": "eu"}});
        let url = expand_placeholders("http://h/p/{sku}?n={n}&s={meta.store}", &e).unwrap();
        assert_eq!(url, "http://h/p/A%20B%2F1?n=3&s=eu");
        assert!(expand_placeholders("http://h/{missing}", &e).is_err());
    }

    #[test]
    fn a_placeholder_stays_one_path_segment_or_one_query_value() {
        let url = |v: &str, template: &str| {
            expand_placeholders(template, &json!({ "v": v })).map_err(|e| e.to_string())
        };
        for (value, segment) in [
            ("A B", "A%20B"),
            ("A+B", "A%2BB"),
            ("a/b", "a%2Fb"),
            ("...", "..."),
            ("é?#&=%", "%C3%A9%3F%23%26%3D%25"),
        ] {
            assert_eq!(
                url(value, "http://h/p/{v}/s").unwrap(),
                format!("http://h/p/{segment}/s")
            );
            assert_eq!(
                url(value, "http://h/p?q={v}&r=1").unwrap(),
                format!("http://h/p?q={segment}&r=1")
            );
        }
        for dots in [".", ".."] {
            let e = url(dots, "http://h/p/{v}/s").unwrap_err();
            assert!(e.contains("{v}") && e.contains("change the path"), "{e}");
            assert_eq!(
                url(dots, "http://h/p?q={v}").unwrap(),
                format!("http://h/p?q={dots}")
            );
        }
    }

    #[test]
    fn the_file_sink_appends_one_line_per_entity() {
        let dir = tempfile::tempdir().unwrap();
        let p = Publisher::new(
            &PublisherConfig::File {
                path: "out/x.ndjson".into(),
                allow_outside: false,
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
