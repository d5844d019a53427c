//! `ferry check --connect` reaches every connection (TLS, token, one request) and says
//! which answered, without showing a secret; it exits non-zero when one did not.

mod common;

use axum::Router;
use axum::routing::{get, post};
use common::{FERRY, free_port, write_config};
use ferry_web::tls::{LocalCa, TlsListener, server_config};
use std::process::Command;

const SECRET: &str = "cs-check-83d1a0";

async fn https_api() -> (LocalCa, String) {
    let ca = LocalCa::new("ferry test CA").unwrap();
    let cert = ca.server(&["localhost"]).unwrap();
    let tls = server_config(&cert.cert_pem, &cert.key_pem, None).unwrap();
    let app = Router::new()
        .route("/api/", get(|| async { "hello" }))
        .route(
            "/oauth/token",
            post(|| async {
                r#"{"access_token": "t-1", "token_type": "bearer", "expires_in": 60}"#
            }),
        );
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}", tcp.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(TlsListener::new(tcp, tls), app).await.unwrap() });
    (ca, url)
}

fn config(api: &str, down: u16) -> String {
    format!(
        r#"
[[connections]]
id = "shop"
type = "http"
base_url = "{api}/api/"
tls = {{ ca_file = "ca.pem" }}
auth = {{ type = "oauth2_client_credentials", token_url = "{api}/oauth/token", client_id = "ferry", client_secret = "${{env:SHOP_SECRET}}" }}

[[connections]]
id = "erp"
type = "http"
base_url = "http://127.0.0.1:{down}/"
auth = {{ type = "bearer", token = "${{env:SHOP_SECRET}}" }}

[[entity_schemas]]
id = "product"

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "out"
publisher = {{ type = "http", connection = "shop", path = "products" }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#
    )
}

#[tokio::test]
async fn check_connect_reports_each_connection_and_fails_when_one_is_down() {
    let (ca, api) = https_api().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
    let path = write_config(dir.path(), &config(&api, free_port()));
    let run = move |args: &[&str]| {
        let out = Command::new(FERRY)
            .args(args)
            .arg("--config")
            .arg(&path)
            .env("SHOP_SECRET", SECRET)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = tokio::task::spawn_blocking(move || run(&["check", "--connect"]))
        .await
        .unwrap();
    assert!(!ok, "one connection is down: {text}");
    assert!(text.contains("connection shop: ok"), "{text}");
    assert!(text.contains("TLS verified, OAuth2 token issued"), "{text}");
    assert!(text.contains("connection erp: FAILED"), "{text}");
    assert!(
        text.contains("1 of 2 connection(s) could not be reached"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "the secret shows: {text}");
}

#[test]
fn check_without_connect_touches_no_network_and_names_a_missing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config("https://localhost:9", 9));
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    let out = Command::new(FERRY)
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("SHOP_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("connections[0].auth.client_secret"), "{text}");
    assert!(text.contains("SHOP_SECRET"), "{text}");
}
