//! Typed connector settings read from a [`ConnectorSpec`]: serde does the shape, these
//! helpers turn its errors into problems with the key and line, and parse the values
//! every kind shares (durations, HTTP methods, jq expressions).

use crate::jq::JqProgram;
use ferry_core::config::{ConnectorSpec, Problem};
use ferry_core::duration::parse_duration;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Reads `T` from the spec's settings; a wrong shape is one problem naming the key.
pub fn parse<T: DeserializeOwned>(spec: &ConnectorSpec) -> Result<T, Vec<Problem>> {
    T::deserialize(toml::Value::Table(spec.settings.clone())).map_err(|e| {
        let message = e.message().trim().to_owned();
        // The path to the value that failed ("in `auth.token`"), then, for unknown or
        // missing fields, the field the message names.
        let shown = e.to_string();
        let mut key = shown
            .lines()
            .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
            .unwrap_or("")
            .to_owned();
        for prefix in ["unknown field `", "missing field `"] {
            if let Some(rest) = message.strip_prefix(prefix)
                && let Some(field) = rest.split('`').next()
            {
                key = if key.is_empty() {
                    field.to_owned()
                } else {
                    format!("{key}.{field}")
                };
            }
        }
        vec![spec.problem(&key, message)]
    })
}

/// A duration written as text ("30s", "5m", "1h30m").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        match parse_duration(&text) {
            Ok(d) if !d.is_zero() => Ok(Span(d)),
            Ok(_) => Err(serde::de::Error::custom(format!(
                "'{text}' must be longer than zero"
            ))),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

/// An HTTP method, checked when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method(pub reqwest::Method);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
        let text = String::deserialize(d)?;
        let upper = text.to_uppercase();
        if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(serde::de::Error::custom(format!(
                "'{text}' is not an HTTP method; use GET, POST, PUT, PATCH or DELETE"
            )));
        }
        reqwest::Method::from_bytes(upper.as_bytes())
            .map(Method)
            .map_err(|_| serde::de::Error::custom(format!("'{text}' is not an HTTP method")))
    }
}

/// A URL, checked when the configuration is read: `http` or `https` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub reqwest::Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HttpUrl, D::Error> {
        let text = String::deserialize(d)?;
        http_url(&text).map_err(serde::de::Error::custom)
    }
}

/// `text` as an http(s) URL, or why not.
pub fn http_url(text: &str) -> Result<HttpUrl, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "'{text}' is not an http:// or https:// URL with a host"
        ));
    }
    Ok(HttpUrl(url))
}

/// Compiles a jq expression of the settings, or a problem naming its key.
pub fn jq(spec: &ConnectorSpec, key: &str, code: &str) -> Result<JqProgram, Problem> {
    JqProgram::compile(code).map_err(|e| spec.problem(key, e))
}

/// Compiles an optional jq expression.
pub fn jq_opt(
    spec: &ConnectorSpec,
    key: &str,
    code: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<JqProgram> {
    match code.map(|c| jq(spec, key, c)) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            problems.push(e);
            None
        }
        None => None,
    }
}
