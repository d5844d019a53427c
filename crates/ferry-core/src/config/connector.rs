//! A connector's settings as written (a subscriber, a publisher or a connection): its
//! `type` and the rest of its table, secrets expanded, with the lines its keys were
//! written on. The engine's connector of that type reads its typed settings from it;
//! this crate only knows the shape every connector shares.

use super::Problem;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A connector's table from the configuration file.
#[derive(Clone, PartialEq)]
pub struct ConnectorSpec {
    /// The `type` string, which names the connector kind in the engine's registry.
    pub kind: String,
    /// Every other key, `${env:…}` and `${file:…}` replaced by their values.
    pub settings: toml::Table,
    /// Where it was written, as a key path: `outgoing[0].publisher`.
    pub key: String,
    line: Option<usize>,
    /// The line each key (a dotted path, `auth.token`) was written on.
    lines: BTreeMap<String, usize>,
}

impl fmt::Debug for ConnectorSpec {
    // The settings may hold secrets: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorSpec")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConnectorSpec {
    /// A spec built in code (tests, the demo), with no lines to point at.
    pub fn new(kind: &str, key: &str, settings: toml::Table) -> ConnectorSpec {
        ConnectorSpec {
            kind: kind.to_owned(),
            settings,
            key: key.to_owned(),
            line: None,
            lines: BTreeMap::new(),
        }
    }

    /// The line `key` (a dotted path below this table, or empty for the table itself) was
    /// written on, else the table's own line.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.lines.get(key) {
                return Some(*line);
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => return self.line,
            }
        }
    }

    /// A problem with `key` of this connector (`timeout`, `auth.token`), with its line.
    pub fn problem(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            line: self.line_of(key),
            key: if key.is_empty() {
                self.key.clone()
            } else {
                format!("{}.{key}", self.key)
            },
            message: message.into(),
        }
    }

    /// Reads a connector's table from the file: takes `type` out, expands secrets and
    /// notes where each key was written (searching the text from `offset`, where the
    /// table starts). Problems are pushed to `problems`; secret values to `secrets`.
    pub(super) fn read(
        mut table: toml::Table,
        key: String,
        text: &str,
        offset: usize,
        inputs: &mut Inputs<'_>,
    ) -> ConnectorSpec {
        let line = Some(super::line_of(text, offset));
        let mut lines = BTreeMap::new();
        note_lines(&table, "", text, offset, &mut lines);
        let kind = match table.remove("type") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                inputs.problems.push(Problem {
                    line: lines.get("type").copied().or(line),
                    key: format!("{key}.type"),
                    message: format!("must be a string naming the kind, not {}", other.type_str()),
                });
                String::new()
            }
            None => {
                inputs.problems.push(Problem {
                    line,
                    key: format!("{key}.type"),
                    message: "is missing; say which kind this is, e.g. type = \"http\"".into(),
                });
                String::new()
            }
        };
        for (k, v) in table.iter_mut() {
            let at = format!("{key}.{k}");
            let line = lines.get(k.as_str()).copied().or(line);
            expand_value(v, &at, line, inputs);
        }
        ConnectorSpec {
            kind,
            settings: table,
            key,
            line,
            lines,
        }
    }
}

/// What secret references are resolved with, and where their values are collected.
pub(super) struct Inputs<'a> {
    pub env: &'a BTreeMap<String, String>,
    /// The configuration file's folder: `${file:…}` paths are relative to it.
    pub folder: &'a Path,
    pub problems: &'a mut Vec<Problem>,
    pub secrets: &'a mut Vec<String>,
}

fn note_lines(
    table: &toml::Table,
    prefix: &str,
    text: &str,
    from: usize,
    lines: &mut BTreeMap<String, usize>,
) {
    for (k, v) in table {
        let Some(at) = find_key(text, from, k) else {
            continue;
        };
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        lines.insert(path.clone(), super::line_of(text, at));
        if let toml::Value::Table(inner) = v {
            note_lines(inner, &path, text, at, lines);
        }
    }
}

/// The offset of the first `key =` (bare or quoted) at or after `from`.
fn find_key(text: &str, from: usize, key: &str) -> Option<usize> {
    let rest = text.get(from..)?;
    let quoted = [format!("\"{key}\""), format!("'{key}'"), key.to_owned()];
    let mut best: Option<usize> = None;
    for needle in &quoted {
        let mut start = 0;
        while let Some(pos) = rest[start..].find(needle.as_str()) {
            let at = start + pos;
            let before = rest[..at].chars().next_back();
            let after = rest[at + needle.len()..].trim_start_matches([' ', '\t']);
            let boundary = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'));
            if boundary && (after.starts_with('=') || after.starts_with('.')) {
                best = Some(best.map_or(at, |b| b.min(at)));
                break;
            }
            start = at + needle.len();
        }
    }
    best.map(|b| from + b)
}

fn expand_value(value: &mut toml::Value, key: &str, line: Option<usize>, inputs: &mut Inputs<'_>) {
    match value {
        toml::Value::String(s) => {
            if let Some(expanded) = expand(s, key, line, inputs) {
                *s = expanded;
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{key}[{i}]"), line, inputs);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                expand_value(v, &format!("{key}.{k}"), line, inputs);
            }
        }
        _ => {}
    }
}

/// `text` with every `${env:NAME}` and `${file:PATH}` replaced, or `None` when it holds
/// none. A reference that cannot be resolved is a problem naming `key`; the message
/// names the variable or file, never a value.
pub(super) fn expand(
    text: &str,
    key: &str,
    line: Option<usize>,
    inputs: &mut Inputs<'_>,
) -> Option<String> {
    if !text.contains("${env:") && !text.contains("${file:") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let tail = &rest[start + 2..];
        let Some(end) = tail.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let reference = &tail[..end];
        let resolved = if let Some(name) = reference.strip_prefix("env:") {
            match inputs.env.get(name) {
                Some(v) => Ok(v.clone()),
                None => Err(format!(
                    "the environment variable {name} (from ${{env:{name}}}) is not set; set it before starting ferry"
                )),
            }
        } else if let Some(path) = reference.strip_prefix("file:") {
            let full = inputs.folder.join(path);
            match std::fs::read_to_string(&full) {
                Ok(v) => Ok(v
                    .strip_suffix('\n')
                    .map(|v| v.strip_suffix('\r').unwrap_or(v))
                    .unwrap_or(&v)
                    .to_owned()),
                Err(e) => Err(format!(
                    "cannot read the secret file {} (from ${{file:{path}}}): {e}",
                    full.display()
                )),
            }
        } else {
            out.push_str("${");
            out.push_str(reference);
            out.push('}');
            rest = &tail[end + 1..];
            continue;
        };
        match resolved {
            Ok(value) => {
                if !value.is_empty() {
                    inputs.secrets.push(value.clone());
                }
                out.push_str(&value);
            }
            Err(message) => inputs.problems.push(Problem {
                line,
                key: key.to_owned(),
                message,
            }),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// `text` with every secret value replaced by `***`: for messages that may quote what an
/// outside system answered (which can echo a credential back).
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 3 && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}
