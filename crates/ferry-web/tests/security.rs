//! Webhook secrets and the headers every answer carries.

mod common;

use common::{TestApp, assert_error};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;

const BODY: &str = r#"{"sku": "S-1", "price": "5"}"#;

fn signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

async fn deliver(app: &TestApp, headers: &[(&str, String)]) -> reqwest::Response {
    let mut req = app
        .anonymous
        .post(app.url("/api/v1/webhooks/signed"))
        .header("content-type", "application/json")
        .body(BODY);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_webhook_with_a_secret_refuses_deliveries_without_it_and_creates_nothing() {
    let app = TestApp::start().await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong".to_owned())],
        vec![("authorization", "s3cret-value".to_owned())],
        vec![("x-ferry-signature", signature("wrong", BODY))],
        vec![("x-ferry-signature", signature("s3cret-value", "{}"))],
        vec![("x-ferry-signature", "sha256=zz".to_owned())],
    ] {
        let r = deliver(&app, &headers).await;
        assert_error(
            r,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "X-Ferry-Signature",
        )
        .await;
    }
    assert_eq!(app.get_ok("/api/v1/tasks/counts").await["total"], 0);
}

#[tokio::test]
async fn a_webhook_with_a_secret_takes_it_as_a_bearer_token_or_a_body_signature() {
    let app = TestApp::start().await;
    let r = deliver(&app, &[("authorization", "Bearer s3cret-value".to_owned())]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = deliver(
        &app,
        &[("x-ferry-signature", signature("s3cret-value", BODY))],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.get_ok("/api/v1/tasks/counts").await["total"], 2);
    // A webhook without a secret takes an operator's token, never an anonymous call.
    let anonymous = app
        .anonymous
        .post(app.url("/api/v1/webhooks/orders"))
        .json(&serde_json::json!({"o": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post("/api/v1/webhooks/orders", &serde_json::json!({"o": 1}))
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn every_answer_forbids_framing_sniffing_and_foreign_scripts() {
    let app = TestApp::start().await;
    for path in [
        "/tasks",
        "/routes",
        "/api/v1/tasks",
        "/api/v1/nope",
        "/assets/app.js",
    ] {
        let r = app.get(path).await;
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY", "{path}");
        assert_eq!(
            h.get("x-content-type-options").unwrap(),
            "nosniff",
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_audit_trail_shows_who_did_what_to_which_tasks() {
    let app = TestApp::start().await;
    app.populate(3, 0).await;
    let failed = app.get_ok("/api/v1/tasks?status=failed&per_page=1").await;
    let id = failed["items"][0]["identifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = common::client_with_token(&app.token("alice", ferry_core::Role::Operator).await);
    let r = alice
        .post(app.url(&format!("/api/v1/tasks/{id}/retry")))
        .json(&serde_json::json!({"reason": "ERP back"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.post_ok(
        "/api/v1/tasks/skip",
        &serde_json::json!({"filter": {"route": ["idle"]}}),
    )
    .await;

    let runs = app.get_ok("/api/v1/audit?action=run").await;
    assert_eq!(runs["total"], 3, "populate ran three routes");
    let all = app.get_ok("/api/v1/audit").await;
    // Two tokens made (the test's admin and alice's), three runs, a retry and a skip.
    assert_eq!(all["total"], 2 + 3 + 2);
    assert_eq!(all["items"][0]["action"], "skip");
    assert_eq!(
        all["items"][0]["target"]["filter"]["route"],
        serde_json::json!(["idle"])
    );
    assert_eq!(all["items"][0]["changed"], 3);
    let alice = app.get_ok("/api/v1/audit?actor=token:alice").await;
    assert_eq!(alice["items"][0]["reason"], "ERP back");
    let on_task = app.get_ok(&format!("/api/v1/audit?task={id}")).await;
    assert_eq!(on_task["total"], 1);
    for (q, needle) in [
        ("action=delete", "skip, retry, run"),
        ("from=yesterday", "RFC 3339"),
        ("task=42", "ULID"),
        ("per_page=0", "1 to 500"),
        ("who=me", "unknown parameter"),
    ] {
        assert_error(
            app.get(&format!("/api/v1/audit?{q}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            needle,
        )
        .await;
    }
}
