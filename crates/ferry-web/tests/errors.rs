//! Every kind of bad input gets a clear 4xx and changes nothing.

mod common;

use common::{TestApp, assert_error};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn bad_list_parameters_are_400_with_the_parameter_named() {
    let app = TestApp::start().await;
    let cases = [
        ("created_from=yesterday", "created_from", "RFC 3339"),
        ("updated_to=2026-13-01T00:00:00Z", "updated_to", "RFC 3339"),
        ("status=done", "status", "unknown status 'done'"),
        ("per_page=501", "per_page", "1 to 500"),
        ("per_page=0", "per_page", "1 to 500"),
        ("page=0", "page", "from 1"),
        ("page=-1", "page", "whole number"),
        ("sort=name", "sort", "created_at or updated_at"),
        ("order=sideways", "order", "desc or asc"),
        (
            "identifier_match=like",
            "identifier_match",
            "contains or equals",
        ),
        ("route=Bad%20Route", "route", "not a valid identifier"),
        ("colour=red", "colour", "unknown parameter"),
        (
            "created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z",
            "created_from",
            "starts",
        ),
    ];
    for (q, parameter, needle) in cases {
        let r = app.get(&format!("/api/v1/tasks?{q}")).await;
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_parameter", "{q}: {body}");
        assert_eq!(body["error"]["details"]["parameter"], parameter, "{q}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{q}: {body}"
        );
        let r = app.get(&format!("/api/v1/tasks?{q}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    assert_error(
        app.get("/api/v1/tasks/counts?page=2").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "paging",
    )
    .await;
    let long = "x".repeat(2_000);
    assert_error(
        app.get(&format!("/api/v1/tasks?identifier={long}")).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "longer",
    )
    .await;
}

#[tokio::test]
async fn unknown_tasks_routes_and_webhooks_are_404() {
    let app = TestApp::start().await;
    let unknown = "01JDQ8M5V3W3K1C7Y2P6Z0A9BX";
    assert_error(
        app.get(&format!("/api/v1/tasks/{unknown}")).await,
        StatusCode::NOT_FOUND,
        "task_not_found",
        unknown,
    )
    .await;
    assert_error(
        app.get("/api/v1/tasks/nope").await,
        StatusCode::NOT_FOUND,
        "task_not_found",
        "nope",
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/tasks/{unknown}/messages?phase=import"))
            .await,
        StatusCode::NOT_FOUND,
        "task_not_found",
        unknown,
    )
    .await;
    assert_error(
        app.post(&format!("/api/v1/tasks/{unknown}/skip"), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "task_not_found",
        unknown,
    )
    .await;
    assert_error(
        app.post(&format!("/api/v1/tasks/{unknown}/retry"), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "task_not_found",
        unknown,
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/tasks/{unknown}/history")).await,
        StatusCode::NOT_FOUND,
        "task_not_found",
        unknown,
    )
    .await;
    assert_error(
        app.post("/api/v1/routes/nope/run", &json!({})).await,
        StatusCode::NOT_FOUND,
        "route_not_found",
        "archive",
    )
    .await;
    assert_error(
        app.get("/api/v1/routes/nope").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
        "nope",
    )
    .await;
    assert_error(
        app.post("/api/v1/webhooks/nope", &json!({})).await,
        StatusCode::NOT_FOUND,
        "incoming_not_found",
        "shop",
    )
    .await;
    assert_error(
        app.post("/api/v1/incoming/nope/run", &json!({})).await,
        StatusCode::NOT_FOUND,
        "incoming_not_found",
        "nope",
    )
    .await;
    assert_error(
        app.get("/api/v2/tasks").await,
        StatusCode::NOT_FOUND,
        "not_found",
        "/api/v1",
    )
    .await;
}

#[tokio::test]
async fn a_message_phase_must_be_import_or_export() {
    let app = TestApp::start().await;
    let id = &app.push_products(&TestApp::products(1, 0)).await[0];
    assert_error(
        app.get(&format!("/api/v1/tasks/{id}/messages")).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "phase",
    )
    .await;
    assert_error(
        app.get(&format!("/api/v1/tasks/{id}/messages?phase=both"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "import or export",
    )
    .await;
}

#[tokio::test]
async fn skipping_a_finished_task_is_409_and_changes_nothing() {
    let app = TestApp::start().await;
    app.populate(1, 0).await;
    let list = app.get_ok("/api/v1/tasks?status=finished").await;
    let id = list["items"][0]["identifier"].as_str().unwrap().to_owned();
    let before = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_error(
        app.post(&format!("/api/v1/tasks/{id}/skip"), &json!({}))
            .await,
        StatusCode::CONFLICT,
        "task_not_eligible",
        "is finished",
    )
    .await;
    assert_eq!(app.get_ok(&format!("/api/v1/tasks/{id}")).await, before);
    assert!(
        app.get_ok(&format!("/api/v1/tasks/{id}/history")).await["actions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_and_change_nothing() {
    let app = TestApp::start().await;
    let ids = app.push_products(&TestApp::products(3, 0)).await;
    let before = app.get_ok("/api/v1/tasks/counts").await;
    let cases: [(&str, &str, &str); 10] = [
        ("/api/v1/tasks/skip", "{not json", "invalid_json"),
        ("/api/v1/tasks/skip", "", "missing_body"),
        ("/api/v1/tasks/skip", r#"{"reason": "x"}"#, "invalid_target"),
        (
            "/api/v1/tasks/skip",
            r#"{"identifiers": [], "filter": {}}"#,
            "invalid_target",
        ),
        (
            "/api/v1/tasks/skip",
            r#"{"filter": {"status": "done"}}"#,
            "invalid_parameter",
        ),
        (
            "/api/v1/tasks/skip",
            r#"{"filter": {"page": "2"}}"#,
            "invalid_parameter",
        ),
        (
            "/api/v1/tasks/retry",
            r#"{"filter": {"route": 5}}"#,
            "invalid_parameter",
        ),
        (
            "/api/v1/tasks/retry",
            r#"{"filter": {"colour": "red"}}"#,
            "invalid_parameter",
        ),
        (
            "/api/v1/tasks/retry",
            r#"{"identifiers": "01JDQ8M5V3W3K1C7Y2P6Z0A9BX"}"#,
            "invalid_json",
        ),
        (
            "/api/v1/tasks/skip",
            r#"{"identifers": []}"#,
            "invalid_json",
        ),
    ];
    for (path, body, code) in cases {
        let r = app.post_raw(path, "application/json", body).await;
        assert_error(r, StatusCode::BAD_REQUEST, code, "").await;
    }
    let r = app
        .post_raw(
            &format!("/api/v1/tasks/{}/skip", ids[0]),
            "application/json",
            "{oops",
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_json", "not valid JSON").await;
    let r = app
        .post(
            &format!("/api/v1/tasks/{}/skip", ids[0]),
            &json!({"reason": "x".repeat(1_001)}),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_reason", "1000").await;
    let too_many: Vec<String> = (0..10_001)
        .map(|_| "01JDQ8M5V3W3K1C7Y2P6Z0A9BX".to_owned())
        .collect();
    let r = app
        .post("/api/v1/tasks/skip", &json!({"identifiers": too_many}))
        .await;
    assert_error(
        r,
        StatusCode::BAD_REQUEST,
        "too_many_identifiers",
        "use a filter",
    )
    .await;
    assert_eq!(
        app.get_ok("/api/v1/tasks/counts").await,
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn bad_webhook_bodies_are_refused_and_create_nothing() {
    let app = TestApp::start().await;
    let cases = [
        (
            "application/json",
            "{nope",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "application/json",
            "",
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            "application/json",
            "42",
            StatusCode::BAD_REQUEST,
            "invalid_entity",
        ),
        (
            "application/json",
            r#"[{"sku": "A", "price": "1"}, 7]"#,
            StatusCode::BAD_REQUEST,
            "invalid_entity",
        ),
        (
            "application/x-ndjson",
            "{\"sku\":\"A\",\"price\":\"1\"}\n{bad",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "application/x-ndjson",
            "\n\n",
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        // Well-formed but not usable: a price jq cannot read, or no sku to identify it.
        (
            "application/json",
            r#"[{"sku": "A", "price": "1"}, {"sku": "B", "price": "abc"}]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "entities_rejected",
        ),
        (
            "application/json",
            r#"{"name": "no sku", "price": "1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "entities_rejected",
        ),
    ];
    for (ct, body, status, code) in cases {
        let r = app.post_raw("/api/v1/webhooks/shop", ct, body).await;
        assert_error(r, status, code, "").await;
    }
    let r = app
        .post_raw(
            "/api/v1/webhooks/shop",
            "application/json",
            r#"{"name": "no sku", "price": "1"}"#,
        )
        .await;
    assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "entities_rejected",
        "'sku'",
    )
    .await;
    let r = app
        .post("/api/v1/webhooks/files", &json!({"sku": "A"}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "not_a_webhook", "file subscriber").await;
    let big = format!("[{}]", vec![r#"{"sku":"A","price":"1","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#; 12_000].join(","));
    let r = app
        .post_raw("/api/v1/webhooks/shop", "application/json", big)
        .await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "limit").await;
    assert_eq!(
        app.get_ok("/api/v1/tasks/counts").await["total"],
        0,
        "no task was created"
    );
}

#[tokio::test]
async fn running_a_webhook_incoming_is_409() {
    let app = TestApp::start().await;
    assert_error(
        app.post("/api/v1/incoming/shop/run", &json!({})).await,
        StatusCode::CONFLICT,
        "not_runnable",
        "webhook",
    )
    .await;
}
