//! `webhook`: entities pushed to ferry at `POST /api/v1/webhooks/{incoming}` (the web
//! crate receives them with these settings).

use super::{BuildResult, Built, Context, Kind, SubscriberKind, Subscription, settings};
use crate::formats::{CsvSettings, XmlSettings};
use crate::jq::JqProgram;
use ferry_core::config::{ConnectorSpec, Secret};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub static KIND: Kind = Kind {
    name: "webhook",
    subscriber: Some(&Webhook),
    publisher: None,
    connection: None,
};

/// A webhook subscriber's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// When set, a delivery must carry it as a bearer token or sign its body with it.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// When set (e.g. "5m"), a signed delivery must carry `X-Ferry-Timestamp` (Unix
    /// seconds, covered by the signature) no older than this: a captured delivery cannot
    /// be replayed later.
    #[serde(default)]
    signature_max_age: Option<settings::Span>,
    /// An XML body's entities: a jq expression over the document's JSON (default: each
    /// child of a list document, else the root's value).
    #[serde(default)]
    items: Option<String>,
    #[serde(skip)]
    pub items_program: Option<Arc<JqProgram>>,
    /// How an XML body maps (`force_array`).
    #[serde(default)]
    pub xml: XmlSettings,
    /// How a CSV body reads (`delimiter`, `quote`, `header`, `columns`, `encoding`; a
    /// `charset` in the Content-Type wins over `encoding`).
    #[serde(default)]
    pub csv: CsvSettings,
}

impl Settings {
    pub fn signature_max_age(&self) -> Option<Duration> {
        self.signature_max_age.map(|s| s.0)
    }
}

struct Webhook;

impl SubscriberKind for Webhook {
    fn build(&self, spec: &ConnectorSpec, _: &Context<'_>) -> BuildResult<Subscription> {
        let mut settings: Settings = settings::parse(spec)?;
        let mut problems: Vec<_> = settings
            .csv
            .problems()
            .into_iter()
            .map(|(key, message)| spec.problem(&format!("csv.{key}"), message))
            .collect();
        if let Some(code) = &settings.items {
            match JqProgram::compile(code) {
                Ok(p) => settings.items_program = Some(Arc::new(p)),
                Err(e) => problems.push(spec.problem("items", e)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Built::new(Subscription::Pushed(Box::new(settings))))
    }
}
