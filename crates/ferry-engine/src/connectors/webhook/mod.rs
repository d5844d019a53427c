//! `webhook`: entities pushed to ferry at `POST /api/v1/webhooks/{incoming}` (the web
//! crate receives them with these settings).

use super::{BuildResult, Built, Context, Kind, SubscriberKind, Subscription, settings};
use ferry_core::config::{ConnectorSpec, Secret};
use serde::Deserialize;
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
}

impl Settings {
    pub fn signature_max_age(&self) -> Option<Duration> {
        self.signature_max_age.map(|s| s.0)
    }
}

struct Webhook;

impl SubscriberKind for Webhook {
    fn build(&self, spec: &ConnectorSpec, _: &Context<'_>) -> BuildResult<Subscription> {
        let settings: Settings = settings::parse(spec)?;
        Ok(Built::new(Subscription::Pushed(settings)))
    }
}
