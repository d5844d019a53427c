//! The `http` subscriber: GET an API's pages, pick the items with jq, and follow the
//! pages as the API pages (`next`, `page`, `offset`, `cursor`, `link_header`); with
//! `since`, each run asks only for what changed since the last successful one.

use super::{
    Endpoint, MAX_REDIRECTS, Target, excerpt, origin_of, read_capped_bytes, redirect_target,
};
use crate::connectors::settings::{self, jq_opt};
use crate::connectors::{
    BuildResult, Built, Context, Fetch, Fetched, SubscriberKind, Subscription,
};
use crate::formats::{self, CsvSettings, Format, XmlSettings};
use crate::jq::JqProgram;
use async_trait::async_trait;
use ferry_core::config::ConnectorSpec;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Largest page an http subscriber reads.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// jq path to the items of a page (`.data[]`); the whole answer when absent.
    #[serde(default)]
    items: Option<String>,
    /// jq expression giving the next page's URL (the reference shape; the same as
    /// `pagination = { type = "next", next = "…" }`).
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    pagination: Option<Pagination>,
    #[serde(default)]
    since: Option<Since>,
    /// Most pages one run follows.
    #[serde(default = "default_max_pages")]
    max_pages: u32,
    /// A next page or redirect to another origin is refused unless this is set; then it
    /// is fetched without the headers and credentials (they go to the configured origin
    /// only).
    #[serde(default)]
    follow_other_origins: bool,
    /// What the pages are: `json` (the default), `xml` or `csv`.
    #[serde(default = "json")]
    format: Format,
    #[serde(default)]
    csv: CsvSettings,
    #[serde(default)]
    xml: XmlSettings,
}

fn json() -> Format {
    Format::Json
}

fn default_max_pages() -> u32 {
    100
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Pagination {
    /// A jq expression on a page gives the next page's URL, or null on the last.
    Next { next: String },
    /// `?page=N` from `start`, until a page has no items.
    Page {
        #[serde(default = "page_param")]
        param: String,
        #[serde(default = "one")]
        start: i64,
    },
    /// `?offset=N&limit=L`, until a page has fewer than `limit` items.
    Offset {
        #[serde(default = "offset_param")]
        param: String,
        #[serde(default = "limit_param")]
        limit_param: String,
        #[serde(default = "hundred")]
        limit: u32,
    },
    /// `?cursor=…` with the value a jq path finds on the page; null or "" ends.
    Cursor { param: String, cursor: String },
    /// The `Link` header's `rel="next"` (RFC 8288).
    LinkHeader {},
}

fn page_param() -> String {
    "page".into()
}
fn offset_param() -> String {
    "offset".into()
}
fn limit_param() -> String {
    "limit".into()
}
fn one() -> i64 {
    1
}
fn hundred() -> u32 {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Since {
    /// The query parameter that carries the mark (`updated_since`).
    param: String,
    /// jq over each item giving its value (`.updated_at`); the greatest of a successful
    /// run is the next run's mark.
    from: String,
    /// The mark of the very first run; without it the first run reads everything.
    #[serde(default)]
    initial: Option<String>,
}

/// How the next page is found, compiled.
enum Paging {
    None,
    Next(JqProgram),
    Page {
        param: String,
        start: i64,
    },
    Offset {
        param: String,
        limit_param: String,
        limit: u32,
    },
    Cursor {
        param: String,
        cursor: JqProgram,
    },
    LinkHeader,
}

pub(super) struct HttpSubscriber;

impl SubscriberKind for HttpSubscriber {
    fn build(&self, spec: &ConnectorSpec, ctx: &Context<'_>) -> BuildResult<Subscription> {
        let (target, rest) = Target::split(spec)?;
        let s: Settings = settings::parse(&rest)?;
        let mut problems = Vec::new();
        let endpoint = Endpoint::new(spec, ctx, target, &mut problems);
        let items = jq_opt(spec, "items", s.items.as_deref(), &mut problems);
        let paging = match (s.next, s.pagination) {
            (Some(_), Some(_)) => {
                problems.push(spec.problem(
                    "next",
                    "give either next or pagination, not both (next = \"…\" is pagination = { type = \"next\", next = \"…\" })",
                ));
                Paging::None
            }
            (Some(next), None) | (None, Some(Pagination::Next { next })) => {
                match settings::jq(spec, "next", &next) {
                    Ok(p) => Paging::Next(p),
                    Err(p) => {
                        problems.push(p);
                        Paging::None
                    }
                }
            }
            (None, None) => Paging::None,
            (None, Some(Pagination::Page { param, start })) => Paging::Page { param, start },
            (
                None,
                Some(Pagination::Offset {
                    param,
                    limit_param,
                    limit,
                }),
            ) => {
                if limit == 0 {
                    problems.push(spec.problem("pagination.limit", "must be at least 1"));
                }
                Paging::Offset {
                    param,
                    limit_param,
                    limit,
                }
            }
            (None, Some(Pagination::Cursor { param, cursor })) => {
                match settings::jq(spec, "pagination.cursor", &cursor) {
                    Ok(cursor) => Paging::Cursor { param, cursor },
                    Err(p) => {
                        problems.push(p);
                        Paging::None
                    }
                }
            }
            (None, Some(Pagination::LinkHeader {})) => Paging::LinkHeader,
        };
        let since = match s.since {
            None => None,
            Some(since) => match settings::jq(spec, "since.from", &since.from) {
                Ok(from) => Some((since.param, from, since.initial)),
                Err(p) => {
                    problems.push(p);
                    None
                }
            },
        };
        if s.max_pages == 0 {
            problems.push(spec.problem("max_pages", "must be at least 1"));
        }
        for (key, message) in s.csv.problems() {
            problems.push(spec.problem(&format!("csv.{key}"), message));
        }
        let Some(endpoint) = endpoint.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Built::new(Subscription::Pulled(Arc::new(Pages {
            endpoint,
            items,
            format: s.format,
            csv: s.csv,
            xml: s.xml,
            paging,
            since,
            max_pages: s.max_pages,
            follow_other_origins: s.follow_other_origins,
        }))))
    }
}

struct Pages {
    endpoint: Endpoint,
    items: Option<JqProgram>,
    format: Format,
    csv: CsvSettings,
    xml: XmlSettings,
    paging: Paging,
    /// The query parameter, the jq of each item's value, the first run's mark.
    since: Option<(String, JqProgram, Option<String>)>,
    max_pages: u32,
    follow_other_origins: bool,
}

/// `url` with `name=value` as its only `name` parameter.
fn with_param(url: &reqwest::Url, name: &str, value: &str) -> reqwest::Url {
    let mut out = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    out.set_query(None);
    {
        let mut q = out.query_pairs_mut();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair(name, value);
    }
    out
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if any.
fn link_next(header: &str) -> Option<String> {
    for link in header.split(',') {
        let (target, params) = link.split_once(';').unwrap_or((link, ""));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=").is_some_and(|rel| {
                rel.trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_owned());
        }
    }
    None
}

/// The greater of two `since` values: numbers by value, anything else as text.
fn greater(a: Option<Value>, b: Value) -> Option<Value> {
    let Some(a) = a else { return Some(b) };
    let bigger = match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => y > x,
        _ => text_of(&b) > text_of(&a),
    };
    Some(if bigger { b } else { a })
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Fetch for Pages {
    async fn fetch(&self, since: Option<&str>) -> Fetched {
        let mut out = Fetched::default();
        let mut url = match self.endpoint.url(None) {
            Ok(u) => u,
            Err(e) => {
                out.errors.push(e);
                return out;
            }
        };
        let mut greatest: Option<Value> = None;
        if let Some((param, _, initial)) = &self.since
            && let Some(mark) = since.or(initial.as_deref())
        {
            url = with_param(&url, param, mark);
        }
        let first = url.clone();
        let mut number: i64 = 0;
        let mut offset: u64 = 0;
        match &self.paging {
            Paging::Page { param, start } => url = with_param(&first, param, &start.to_string()),
            Paging::Offset {
                param,
                limit_param,
                limit,
            } => {
                url = with_param(
                    &with_param(&first, param, "0"),
                    limit_param,
                    &limit.to_string(),
                );
            }
            _ => {}
        }
        for page in 1..=self.max_pages {
            let (body, link) = match self.get(&url).await {
                Ok(b) => b,
                Err(e) => {
                    out.errors.push(e);
                    return out;
                }
            };
            let origin = format!("{} (page {page})", self.endpoint.redact(url.as_str()));
            let items = match &self.items {
                Some(p) => match p.run(&body) {
                    Ok(items) => items,
                    Err(e) => {
                        out.errors
                            .push(format!("{origin}: items `{}`: {e}", p.code()));
                        return out;
                    }
                },
                None if self.format == Format::Xml => match formats::xml_entities(body.clone()) {
                    Ok(items) => items,
                    Err(e) => {
                        out.errors.push(format!("{origin}: {e}"));
                        return out;
                    }
                },
                None => match body.clone() {
                    Value::Array(items) => items,
                    other => vec![other],
                },
            };
            let count = items.len();
            for (i, item) in items.into_iter().enumerate() {
                if let Some((_, from, _)) = &self.since {
                    match from.run(&item).map(|v| v.into_iter().next()) {
                        Ok(Some(Value::Null) | None) => {}
                        Ok(Some(v)) => greatest = greater(greatest, v),
                        Err(e) => {
                            out.errors.push(format!(
                                "{origin} item {i}: since.from `{}`: {e}",
                                from.code()
                            ));
                        }
                    }
                }
                out.push(item, format!("{origin} item {i}"));
            }
            let following = match &self.paging {
                Paging::None => None,
                Paging::Next(next) => match self.next_url(next, &body, &url) {
                    Ok(n) => n,
                    Err(e) => {
                        out.errors.push(format!("{origin}: {e}"));
                        return out;
                    }
                },
                Paging::Page { param, start } => (count > 0)
                    .then(|| {
                        number += 1;
                        Some(with_param(&first, param, &(start + number).to_string()))
                    })
                    .flatten(),
                Paging::Offset {
                    param,
                    limit_param,
                    limit,
                } => {
                    offset += count as u64;
                    (count >= *limit as usize).then(|| {
                        with_param(
                            &with_param(&first, param, &offset.to_string()),
                            limit_param,
                            &limit.to_string(),
                        )
                    })
                }
                Paging::Cursor { param, cursor } => match cursor.run(&body) {
                    Ok(values) => match values.into_iter().next() {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) if s.is_empty() => None,
                        Some(v) => Some(with_param(&first, param, &text_of(&v))),
                    },
                    Err(e) => {
                        out.errors.push(format!(
                            "{origin}: pagination.cursor `{}`: {e}",
                            cursor.code()
                        ));
                        return out;
                    }
                },
                Paging::LinkHeader => match link.as_deref().and_then(link_next) {
                    None => None,
                    Some(target) => match self.resolve(&url, &target) {
                        Ok(u) => Some(u),
                        Err(e) => {
                            out.errors.push(format!("{origin}: {e}"));
                            return out;
                        }
                    },
                },
            };
            match following {
                Some(next) => url = next,
                None => {
                    // Every page was read: the greatest value is the next run's mark.
                    out.since = greatest.as_ref().map(text_of);
                    return out;
                }
            }
        }
        out.errors.push(format!(
            "stopped after {} pages (subscriber.max_pages); the next page was {}",
            self.max_pages,
            self.endpoint.redact(url.as_str())
        ));
        out
    }
}

impl Pages {
    /// The next page from a `next` jq expression: a URL (absolute or relative) or null.
    fn next_url(
        &self,
        next: &JqProgram,
        body: &Value,
        url: &reqwest::Url,
    ) -> Result<Option<reqwest::Url>, String> {
        let value = next
            .run(body)
            .map_err(|e| format!("next `{}`: {e}", next.code()))?
            .into_iter()
            .next();
        match value {
            Some(Value::String(s)) if !s.is_empty() => self.resolve(url, &s).map(Some),
            Some(Value::Null | Value::String(_)) | None => Ok(None),
            Some(other) => Err(format!(
                "next `{}` gave {}, not a URL string or null",
                next.code(),
                ferry_core::entity::kind_of(&other)
            )),
        }
    }

    /// A next page's URL, resolved against the page it came from, if it may be fetched.
    fn resolve(&self, url: &reqwest::Url, target: &str) -> Result<reqwest::Url, String> {
        let following = url
            .join(target)
            .map_err(|e| format!("the next page '{target}' is not a URL: {e}"))?;
        self.may_leave_origin(&following, "the next page")?;
        Ok(following)
    }

    /// Whether `url` (a next page or a redirect) may be fetched: within the configured
    /// origin always, elsewhere only with `follow_other_origins`.
    fn may_leave_origin(&self, url: &reqwest::Url, what: &str) -> Result<(), String> {
        let configured = self.endpoint.origin();
        if origin_of(url).as_deref() == Some(configured) || self.follow_other_origins {
            return Ok(());
        }
        Err(format!(
            "{what} {} is on {}, another origin than the configured one ({configured}); it is not fetched, so the configured headers and credentials do not go there (set follow_other_origins = true on the subscriber to fetch it without them)",
            self.endpoint.redact(url.as_str()),
            url.origin().ascii_serialization()
        ))
    }

    /// One page as JSON, with its `Link` header.
    async fn get(&self, url: &reqwest::Url) -> Result<(Value, Option<String>), String> {
        let mut current = url.clone();
        let mut shown = self.endpoint.redact(url.as_str());
        let mut redirects = 0;
        let response = loop {
            let request = self
                .endpoint
                .request(reqwest::Method::GET, current.clone())
                .build()
                .map_err(|e| format!("GET {shown}: {e}"))?;
            let response = self.endpoint.send(request).await?;
            let Some(to) = redirect_target(&response, &current) else {
                break response;
            };
            let status = response.status();
            if redirects == MAX_REDIRECTS {
                return Err(format!(
                    "GET {shown} → {status}: redirected to {to} after {MAX_REDIRECTS} redirects already; no more are followed"
                ));
            }
            self.may_leave_origin(&to, "the redirect to")
                .map_err(|e| format!("GET {shown} → {status}: {e}"))?;
            redirects += 1;
            shown = self.endpoint.redact(to.as_str());
            current = to;
        };
        let status = response.status();
        let link = response
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_capped_bytes(response, MAX_PAGE_BYTES)
            .await
            .map_err(|e| format!("GET {shown}: {e}"))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(self
                .endpoint
                .redact(&format!("GET {shown} → {status}: {}", excerpt(&text))));
        }
        let charset = match content_type.as_deref().and_then(formats::charset) {
            Some(Ok(e)) => Some(e),
            Some(Err(e)) => return Err(format!("GET {shown}: {e}")),
            None => None,
        };
        let body = match self.format {
            Format::Xml => formats::read_xml(&bytes, charset, &self.xml)
                .map_err(|e| format!("GET {shown}: the XML answer: {e}"))?,
            Format::Csv => {
                let text = charset
                    .unwrap_or(self.csv.encoding)
                    .decode(&bytes)
                    .and_then(|text| formats::read_csv(&text, &self.csv))
                    .map_err(|e| format!("GET {shown}: the CSV answer: {e}"))?;
                Value::Array(text.into_iter().map(|(row, _)| row).collect())
            }
            Format::Json | Format::Ndjson => serde_json::from_str(&String::from_utf8_lossy(&bytes))
                .map_err(|e| format!("GET {shown}: the answer is not JSON: {e}"))?,
        };
        Ok((body, (!link.is_empty()).then_some(link)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_link_header_gives_the_next_page() {
        let h = r#"<https://api.example/p?page=1>; rel="first", <https://api.example/p?page=3>; rel="next""#;
        assert_eq!(
            link_next(h).as_deref(),
            Some("https://api.example/p?page=3")
        );
        assert_eq!(link_next(r#"<https://a/x>; rel="prev""#), None);
        assert_eq!(
            link_next(r#"</x?c=2>; rel="next last""#).as_deref(),
            Some("/x?c=2")
        );
    }

    #[test]
    fn a_parameter_replaces_the_one_of_the_same_name() {
        let u = reqwest::Url::parse("https://h/p?page=1&q=a%20b").unwrap();
        assert_eq!(
            with_param(&u, "page", "2").as_str(),
            "https://h/p?q=a+b&page=2"
        );
    }

    #[test]
    fn the_greatest_since_value_compares_numbers_by_value_and_text_as_text() {
        let g = [json!(9), json!(10), json!(2)]
            .into_iter()
            .fold(None, greater);
        assert_eq!(g, Some(json!(10)));
        let g = [json!("2026-01-02T00:00:00Z"), json!("2026-01-10T00:00:00Z")]
            .into_iter()
            .fold(None, greater);
        assert_eq!(g, Some(json!("2026-01-10T00:00:00Z")));
    }
}
