//! Connections in the API and on the Routes page: shown with secrets as `***`, and
//! tested on demand by an operator ("Test connection"), which is audited.

mod common;

use common::{TestApp, client_with_token};
use ferry_core::Role;
use reqwest::StatusCode;
use serde_json::json;

const TOKEN: &str = "literal-token-8c1e";

/// An API that answers every request with the id it gives the path's last segment.
async fn api() -> String {
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        let last = uri.path().rsplit('/').next().unwrap_or("").to_owned();
        axum::Json(json!({"id": format!("erp-{last}"), "ok": true}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn config(up: &str) -> String {
    format!(
        r#"
[[connections]]
id = "erp"
type = "http"
base_url = "{up}/api/"
headers = {{ x-tenant = "{TOKEN}" }}
auth = {{ type = "bearer", token = "{TOKEN}" }}
circuit_breaker = {{ failures = 5, cool_down = "30s" }}
max_in_flight = "auto:40"
rate_limit = "20/s"

[[connections]]
id = "down"
type = "http"
base_url = "http://127.0.0.1:9/"

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "erp"
publisher = {{ type = "http", connection = "erp", path = "products/{{sku}}", response = ".id" }}

[[routes]]
id = "shop-to-erp"
incoming = ["shop"]
outgoing = "erp"
"#
    )
}

#[tokio::test]
async fn connections_are_listed_with_their_secrets_masked() {
    let app = TestApp::with_config(&config(&api().await)).await;
    let list = app.get_ok("/api/v1/connections").await;
    let erp = &list["items"][0];
    assert_eq!(erp["id"], "erp");
    assert_eq!(erp["type"], "http");
    let settings = erp["settings"].as_array().unwrap();
    assert!(settings.contains(&json!(["auth", "bearer"])), "{erp}");
    assert!(
        settings.contains(&json!(["headers.x-tenant", "***"])),
        "{erp}"
    );
    assert!(!list.to_string().contains(TOKEN));
    let page = app
        .http
        .get(format!("{}/routes", app.base))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Test connection") && html.contains("connection-erp"),
        "{html}"
    );
    assert!(!html.contains(TOKEN));
}

#[tokio::test]
async fn a_route_shows_its_requests_in_flight_rate_limit_and_circuit_breaker() {
    let app = TestApp::with_config(&config(&api().await)).await;
    let route = app.get_ok("/api/v1/routes/shop-to-erp").await;
    assert_eq!(
        route["delivery"],
        json!({"max_in_flight": 8, "in_flight": 0, "adaptive_max": 40, "rate_limit": "20/s"}),
        "{route}"
    );
    assert_eq!(route["circuit"]["state"], "closed", "{route}");
    let html = app
        .http
        .get(format!("{}/routes", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Requests at once")
            && html.contains("auto: 8 now, at most 40 (0 in flight now); rate limit 20/s"),
        "{html}"
    );
}

#[tokio::test]
async fn the_answer_a_target_gave_is_kept_on_the_task_and_shown_in_its_overview() {
    let app = TestApp::with_config(&config(&api().await)).await;
    let ids = app
        .push_products(&[json!({"sku": "SKU-7", "name": "Mug"})])
        .await;
    let run = app.run_route("shop-to-erp").await;
    assert_eq!(run["finished"], 1, "{run}");
    let task = app.get_ok(&format!("/api/v1/tasks/{}", ids[0])).await;
    assert_eq!(task["response"], "erp-SKU-7", "{task}");
    let html = app
        .http
        .get(format!("{}/tasks/{}", app.base, ids[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<dt>Response</dt>") && html.contains("erp-SKU-7"),
        "{html}"
    );
    let messages = app
        .get_ok(&format!("/api/v1/tasks/{}/messages?phase=export", ids[0]))
        .await;
    assert!(
        messages.to_string().contains("response: erp-SKU-7"),
        "{messages}"
    );
}

#[tokio::test]
async fn an_operator_tests_a_connection_and_the_test_is_audited() {
    let app = TestApp::with_config(&config(&api().await)).await;
    let viewer = client_with_token(&app.token("v", Role::Viewer).await);
    let refused = viewer
        .post(format!("{}/api/v1/connections/erp/test", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let up = app
        .post_ok("/api/v1/connections/erp/test", &json!({}))
        .await;
    assert_eq!(up["ok"], true, "{up}");
    assert!(up["message"].as_str().unwrap().contains("200 OK"), "{up}");
    let down = app
        .post_ok("/api/v1/connections/down/test", &json!({}))
        .await;
    assert_eq!(down["ok"], false, "{down}");
    assert!(
        down["message"].as_str().unwrap().contains("127.0.0.1:9"),
        "{down}"
    );

    let missing = app.post("/api/v1/connections/nope/test", &json!({})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let said = missing.text().await.unwrap();
    assert!(said.contains("erp, down"), "{said}");

    let trail = app.get_ok("/api/v1/audit?action=connection.test").await;
    assert_eq!(trail["total"], 2, "{trail}");
    assert_eq!(
        trail["items"][1]["target"],
        json!({"connection": "erp", "ok": true})
    );
}
