//! The CLI's HTTP client for a running ferry server.

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// Base URL of the ferry server.
    #[arg(
        long,
        env = "FERRY_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// API token (create one with `ferry tokens create`); the audit trail names it.
    #[arg(long, env = "FERRY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone().filter(|t| !t.trim().is_empty()),
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T> {
        let req = self.http.get(format!("{}{path}", self.base)).query(query);
        self.send(req).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(req).await
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(token.trim()),
            None => req,
        };
        let response = req.send().await.with_context(|| {
            format!(
                "cannot reach the ferry server at {} (set --server or FERRY_SERVER)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("cannot read the server's answer")?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
                bail!(
                    "the server answered {status}: {message}\n(pass an API token with --token or FERRY_TOKEN; an admin creates one with 'ferry tokens create --config FILE --role operator --name NAME')"
                );
            }
            bail!("the server answered {status}: {message}");
        }
        serde_json::from_str(&text)
            .with_context(|| format!("unexpected answer from the server: {text}"))
    }
}
