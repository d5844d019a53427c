//! The tasks API of API.md, end to end: the real server on a loopback port, real SQLite.

mod common;

use common::{TestApp, assert_error};
use ferry_core::Timestamp;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["identifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_webhook_entity_becomes_one_task_per_route_with_its_import_log() {
    let app = TestApp::start().await;
    let r = app
        .post(
            "/api/v1/webhooks/shop",
            &json!({"sku": "A-1", "name": "Kayak", "price": "99.90"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["created"], 4,
        "archive, strict, patient and idle use shop: {body}"
    );
    let id = body["tasks"][0].as_str().unwrap();
    let task = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["entity_identifier"], "A-1");
    assert_eq!(task["entity_schema"], "product");
    assert_eq!(task["status"], "new");
    assert_eq!(task["attempts"], 0);
    assert_eq!(
        task["entity_data"]["price"], 99.9,
        "the jq transformer made a number"
    );
    assert!(task["last_error"].is_null() && task["next_attempt_at"].is_null());
    let log = app
        .get_ok(&format!("/api/v1/tasks/{id}/messages?phase=import"))
        .await;
    let lines: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert!(lines[0].contains("received from webhook shop"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains(".price |= tonumber")),
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().contains("entity identifier A-1"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn webhooks_take_an_array_or_ndjson_and_filtered_entities_make_no_task() {
    let app = TestApp::start().await;
    let body = app
        .post_ok(
            "/api/v1/webhooks/shop",
            &json!([{"sku": "A", "price": "1"}, {"sku": "B", "price": "2", "active": false}]),
        )
        .await;
    assert_eq!(body["created"], 4);
    assert_eq!(body["dropped"], 1);
    let ndjson = "{\"sku\":\"C\",\"price\":\"3\"}\n\n{\"sku\":\"D\",\"price\":\"4\"}\n";
    let r = app
        .post_raw("/api/v1/webhooks/shop", "application/x-ndjson", ndjson)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["created"], 8);
    let b = app
        .get_ok("/api/v1/tasks?entity_identifier=B&entity_identifier_match=equals")
        .await;
    assert_eq!(b["total"], 0);
}

#[tokio::test]
async fn webhooks_take_xml_and_csv_and_a_broken_document_creates_nothing() {
    let app = TestApp::start().await;
    let xml = r#"<?xml version="1.0"?>
<products><product><sku>X-1</sku><price>5</price></product><product><sku>X-2</sku><price>6</price></product></products>"#;
    let r = app
        .post_raw("/api/v1/webhooks/shop", "application/xml", xml)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["created"], 8, "2 entities on 4 routes: {body}");
    let task = app
        .get_ok("/api/v1/tasks?entity_identifier=X-2&entity_identifier_match=equals&per_page=1")
        .await;
    let id = task["items"][0]["identifier"].as_str().unwrap();
    let task = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["entity_data"], json!({"sku": "X-2", "price": 6}));

    // Windows-1252 by its charset; a semicolon is just text with the default comma.
    let csv: &[u8] = b"sku,name,price\nC-1,Caf\xe9 \x80,7\n";
    let r = app
        .post_raw(
            "/api/v1/webhooks/shop",
            "text/csv; charset=windows-1252",
            csv,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let task = app
        .get_ok("/api/v1/tasks?entity_identifier=C-1&entity_identifier_match=equals&per_page=1")
        .await;
    let id = task["items"][0]["identifier"].as_str().unwrap();
    let task = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["entity_data"]["name"], "Café €");

    let before = app.get_ok("/api/v1/tasks?per_page=1").await["total"].clone();
    let r = app
        .post_raw(
            "/api/v1/webhooks/shop",
            "text/xml",
            "<products>\n<product><sku>Y</sku></product>\n<product><sku>Z</sku>\n</products>",
        )
        .await;
    assert_error(
        r,
        StatusCode::BAD_REQUEST,
        "invalid_xml",
        "line 4, column 1",
    )
    .await;
    let r = app
        .post_raw("/api/v1/webhooks/shop", "text/csv", "sku,price\nY,1\nZ\n")
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_csv", "line 3").await;
    let r = app
        .post_raw(
            "/api/v1/webhooks/shop",
            "text/csv; charset=ebcdic",
            "sku\nY\n",
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_body", "ebcdic").await;
    assert_eq!(
        app.get_ok("/api/v1/tasks?per_page=1").await["total"],
        before,
        "nothing was created"
    );
}

#[tokio::test]
async fn a_webhook_entity_against_its_json_schema_is_refused_with_422_listing_each_path() {
    let schemas = tempfile::tempdir().unwrap();
    let file = schemas.path().join("product.json");
    std::fs::write(
        &file,
        r#"{"type": "object", "required": ["sku"], "properties": {"price": {"type": "number"}}}"#,
    )
    .unwrap();
    let config = format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]
json_schema = "{}"

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "archive"
publisher = {{ type = "file", path = "out.ndjson" }}

[[routes]]
id = "archive"
incoming = ["shop"]
outgoing = "archive"
"#,
        file.display()
    );
    let app = TestApp::with_config(&config).await;
    let r = app
        .post(
            "/api/v1/webhooks/shop",
            &json!([{"sku": "A", "price": 1}, {"price": "cheap"}]),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "entities_rejected", "{body}");
    let rejected = &body["error"]["details"]["rejected"][0];
    assert_eq!(rejected["index"], 1, "{body}");
    let paths: Vec<&str> = rejected["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["", "/price"], "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"cheap\" is not of type \"number\""),
        "{body}"
    );
    assert_eq!(
        app.get_ok("/api/v1/tasks").await["total"],
        0,
        "nothing created"
    );
}

#[tokio::test]
async fn trying_a_route_shows_each_step_and_the_request_with_secrets_masked_and_stores_nothing() {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("key"), "k-live-123456").unwrap();
    let config = format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}
transformers = [{{ type = "jq", filter = ".price |= tonumber" }}]

[[outgoing]]
id = "erp"
transformers = [{{ type = "jq", filter = "{{sku, price}}" }}]
publisher = {{ type = "http", method = "PUT", url = "http://127.0.0.1:9/products/{{sku}}", headers = {{ "x-api-key" = "${{file:{}}}" }}, idempotency_header = "Idempotency-Key" }}

[[routes]]
id = "shop-to-erp"
incoming = ["shop"]
outgoing = "erp"
transformers = [{{ type = "filter", condition = ".price > 0" }}]
"#,
        secrets.path().join("key").display()
    );
    let app = TestApp::with_config(&config).await;
    let r = app
        .post_ok(
            "/api/v1/routes/shop-to-erp/try",
            &json!({"entity": {"sku": "A-1", "price": "12.50", "extra": true}}),
        )
        .await;
    let text = r.to_string();
    assert!(
        !text.contains("k-live-123456"),
        "the secret is masked: {text}"
    );
    assert_eq!(r["incoming"], "shop");
    assert_eq!(r["steps"][0]["side"], "incoming");
    assert_eq!(
        r["steps"][0]["outputs"][0]["price"].to_string(),
        "12.50",
        "as written"
    );
    assert_eq!(r["steps"][1]["side"], "route");
    let task = &r["tasks"][0];
    assert_eq!(task["entity_identifier"], "A-1");
    assert_eq!(
        task["steps"][0]["outputs"][0].to_string(),
        r#"{"sku":"A-1","price":12.50}"#
    );
    assert_eq!(task["outcome"], "would be sent");
    assert_eq!(task["request"]["method"], "PUT");
    assert_eq!(task["request"]["target"], "http://127.0.0.1:9/products/A-1");
    let headers = task["request"]["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h["name"] == "x-api-key" && h["value"] == "***"),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|h| h["name"] == "idempotency-key"),
        "{headers:?}"
    );
    assert!(
        task["request"]["body"]
            .as_str()
            .unwrap()
            .contains("\"price\": 12.50")
    );

    // A filtered entity: no task, and the reason.
    let r = app
        .post_ok(
            "/api/v1/routes/shop-to-erp/try",
            &json!({"entity": {"sku": "B", "price": "0"}}),
        )
        .await;
    assert!(r["tasks"].as_array().unwrap().is_empty());
    assert!(r["outcome"].as_str().unwrap().contains("dropped"), "{r}");

    // A stored task's entity goes through the outgoing side only.
    let created = app
        .post_ok(
            "/api/v1/webhooks/shop",
            &json!({"sku": "C-3", "price": "3"}),
        )
        .await;
    let id = created["tasks"][0].as_str().unwrap();
    let r = app
        .post_ok("/api/v1/routes/shop-to-erp/try", &json!({"task": id}))
        .await;
    assert!(r["steps"].as_array().unwrap().is_empty());
    assert_eq!(
        r["tasks"][0]["request"]["target"],
        "http://127.0.0.1:9/products/C-3"
    );
    assert_eq!(
        app.get_ok("/api/v1/tasks").await["total"],
        1,
        "only the webhook's task"
    );

    for (body, status, code) in [
        (json!({}), StatusCode::BAD_REQUEST, "invalid_try"),
        (
            json!({"entity": [1]}),
            StatusCode::BAD_REQUEST,
            "invalid_try",
        ),
        (
            json!({"entity": {}, "incoming": "nope"}),
            StatusCode::BAD_REQUEST,
            "invalid_try",
        ),
        (
            json!({"task": "nope"}),
            StatusCode::BAD_REQUEST,
            "invalid_task",
        ),
        (
            json!({"task": "01M8ZNA4J47W4V2T2KGKKMS4SR"}),
            StatusCode::NOT_FOUND,
            "task_not_found",
        ),
    ] {
        let r = app.post("/api/v1/routes/shop-to-erp/try", &body).await;
        assert_error(r, status, code, "").await;
    }
    let r = app
        .post("/api/v1/routes/nope/try", &json!({"entity": {}}))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "route_not_found", "shop-to-erp").await;
}

#[tokio::test]
async fn without_an_identifier_path_the_identifier_is_the_compact_json() {
    let app = TestApp::start().await;
    let body = app
        .post_ok("/api/v1/webhooks/orders", &json!({"order": 7}))
        .await;
    let id = body["tasks"][0].as_str().unwrap();
    let task = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["entity_identifier"], r#"{"order":7}"#);
    assert_eq!(task["route"], "archive");
}

#[tokio::test]
async fn a_route_run_finishes_skips_fails_and_schedules_retries() {
    let app = TestApp::start().await;
    app.push_products(&TestApp::products(7, 0)).await;
    let archive = app.run_route("archive").await;
    assert_eq!(
        archive,
        json!({"claimed": 7, "finished": 6, "failed": 0, "skipped": 1, "retry": 0, "disabled": false})
    );
    let strict = app.run_route("strict").await;
    assert_eq!(
        (strict["claimed"].as_u64(), strict["failed"].as_u64()),
        (Some(7), Some(7))
    );
    let patient = app.run_route("patient").await;
    assert_eq!(patient["retry"], 7);
    let idle = app.run_route("idle").await;
    assert_eq!(idle["disabled"], true);
    assert_eq!(idle["claimed"], 0);

    let written = std::fs::read_to_string(app.dir.path().join("out/archive.ndjson")).unwrap();
    assert_eq!(written.lines().count(), 6, "one line per finished task");

    let failed = app.get_ok("/api/v1/tasks?route=strict&per_page=1").await;
    let id = &ids(&failed)[0];
    let task = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "failed");
    assert_eq!(task["attempts"], 1);
    assert!(
        task["last_error"].as_str().unwrap().contains("127.0.0.1:9"),
        "{task}"
    );
    let log = app
        .get_ok(&format!("/api/v1/tasks/{id}/messages?phase=export"))
        .await;
    let last = log["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["level"], "error");

    let retrying = app.get_ok("/api/v1/tasks?route=patient&per_page=1").await;
    let id = &ids(&retrying)[0];
    let task = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "retry");
    assert!(task["next_attempt_at"].is_string());
    // Not due for an hour: a second run claims nothing.
    assert_eq!(app.run_route("patient").await["claimed"], 0);

    let history = app.get_ok(&format!("/api/v1/tasks/{id}/history")).await;
    assert_eq!(history["attempts"][0]["outcome"], "retry");
}

#[tokio::test]
async fn the_list_pages_newest_first_with_a_total() {
    let app = TestApp::start().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.extend(app.push_products(&TestApp::products(1, i)).await);
    }
    // 5 products × 4 routes.
    let page1 = app.get_ok("/api/v1/tasks?per_page=8").await;
    assert_eq!(
        (
            page1["total"].as_u64(),
            page1["page"].as_u64(),
            page1["per_page"].as_u64()
        ),
        (Some(20), Some(1), Some(8))
    );
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(ids(&page1), newest_first[..8]);
    let page3 = app.get_ok("/api/v1/tasks?per_page=8&page=3").await;
    assert_eq!(ids(&page3), newest_first[16..]);
    let beyond = app.get_ok("/api/v1/tasks?per_page=8&page=4").await;
    assert!(ids(&beyond).is_empty());
    assert_eq!(beyond["total"], 20);
    let asc = app.get_ok("/api/v1/tasks?per_page=500&order=asc").await;
    assert_eq!(ids(&asc), created);
    let default = app.get_ok("/api/v1/tasks").await;
    assert_eq!(default["per_page"], 50);
}

#[tokio::test]
async fn each_filter_narrows_the_list_and_the_counts() {
    let app = TestApp::start().await;
    app.populate(14, 0).await;
    let total = app.get_ok("/api/v1/tasks/counts").await;
    assert_eq!(total["total"], 56);
    assert_eq!(total["by_status"]["failed"], 14);
    assert_eq!(total["by_status"]["retry"], 14);
    assert_eq!(total["by_status"]["new"], 14);
    assert_eq!(total["by_status"]["skipped"], 2);
    assert_eq!(total["by_status"]["finished"], 12);
    assert_eq!(total["by_status"]["processing"], 0);

    let cases = [
        ("route=strict", 14),
        ("route=strict&route=patient", 28),
        ("status=failed&status=skipped", 16),
        ("route=archive&status=finished", 12),
        ("entity_identifier=SKU-001", 20),
        (
            "entity_identifier=SKU-0014&entity_identifier_match=equals",
            4,
        ),
        ("entity_identifier=sku", 0),
        ("entity_schema=prod", 56),
        ("entity_schema=prod&entity_schema_match=equals", 0),
        (
            "created_from=2000-01-01T00:00:00Z&created_to=2100-01-01T00:00:00Z",
            56,
        ),
        ("created_to=2000-01-01T00:00:00Z", 0),
        ("updated_from=2100-01-01T00:00:00Z", 0),
        ("route=idle&status=new&entity_identifier=SKU-000", 9),
    ];
    for (q, expected) in cases {
        let list = app.get_ok(&format!("/api/v1/tasks?{q}&per_page=500")).await;
        assert_eq!(list["total"], expected, "{q}");
        assert_eq!(list["items"].as_array().unwrap().len(), expected, "{q}");
        let counts = app.get_ok(&format!("/api/v1/tasks/counts?{q}")).await;
        assert_eq!(counts["total"], expected, "counts {q}");
    }
    // Identifier, contains and equals.
    let one = app.get_ok("/api/v1/tasks?per_page=1").await;
    let id = ids(&one)[0].clone();
    let eq = app
        .get_ok(&format!(
            "/api/v1/tasks?identifier={id}&identifier_match=equals"
        ))
        .await;
    assert_eq!(ids(&eq), std::slice::from_ref(&id));
    let part = &id[18..];
    let contains = app
        .get_ok(&format!("/api/v1/tasks?identifier={part}"))
        .await;
    assert!(ids(&contains).contains(&id));
}

#[tokio::test]
async fn sorting_by_updated_at_puts_recently_changed_tasks_first() {
    let app = TestApp::start().await;
    let created = app.push_products(&TestApp::products(3, 0)).await;
    app.post_ok(&format!("/api/v1/tasks/{}/skip", created[0]), &json!({}))
        .await;
    let list = app
        .get_ok("/api/v1/tasks?sort=updated_at&order=desc&per_page=1")
        .await;
    assert_eq!(ids(&list), [created[0].clone()]);
    let list = app
        .get_ok("/api/v1/tasks?sort=created_at&order=asc&per_page=1")
        .await;
    assert_eq!(ids(&list), [created[0].clone()]);
}

#[tokio::test]
async fn each_action_from_each_status_is_allowed_or_refused_with_409() {
    let app = TestApp::start().await;
    app.populate(7, 0).await;
    let by_status = |s: &'static str| {
        let app = &app;
        async move {
            let list = app
                .get_ok(&format!("/api/v1/tasks?status={s}&per_page=500"))
                .await;
            ids(&list)
        }
    };
    let allowed = [
        ("skip", "new", true),
        ("skip", "retry", true),
        ("skip", "finished", false),
        ("skip", "failed", false),
        ("skip", "skipped", false),
        ("retry", "finished", true),
        ("retry", "failed", true),
        ("retry", "skipped", true),
        ("retry", "new", false),
        ("retry", "retry", false),
    ];
    for (action, status, ok) in allowed {
        let candidates = by_status(status).await;
        let id = candidates.last().expect("a task in that status").clone();
        let r = app
            .post(
                &format!("/api/v1/tasks/{id}/{action}"),
                &json!({"reason": "test"}),
            )
            .await;
        if ok {
            assert_eq!(r.status(), StatusCode::OK, "{action} from {status}");
            let t: Value = r.json().await.unwrap();
            let expected = if action == "skip" { "skipped" } else { "new" };
            assert_eq!(t["status"], expected);
            if action == "retry" {
                assert_eq!(t["attempts"], 0);
            }
        } else {
            let needle = if action == "skip" {
                "only new or retry tasks can be skipped"
            } else {
                "can be retried"
            };
            assert_error(r, StatusCode::CONFLICT, "task_not_eligible", needle).await;
            assert_eq!(
                app.status_of(&id).await,
                status,
                "a refused {action} changes nothing"
            );
        }
    }
    // The action is in the task's history with its reason.
    let retried = by_status("new").await;
    let history = app
        .get_ok(&format!("/api/v1/tasks/{}/history", retried[0]))
        .await;
    let actions = history["actions"].as_array().unwrap();
    assert!(actions.iter().all(|a| a["reason"] == "test"));
}

#[tokio::test]
async fn an_action_without_a_body_or_with_an_empty_body_works() {
    let app = TestApp::start().await;
    let ids = app.push_products(&TestApp::products(2, 0)).await;
    let r = app
        .http
        .post(app.url(&format!("/api/v1/tasks/{}/skip", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_raw(
            &format!("/api/v1/tasks/{}/skip", ids[1]),
            "application/json",
            "",
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn bulk_by_identifiers_counts_matched_changed_ineligible_and_not_found() {
    let app = TestApp::start().await;
    app.populate(7, 0).await;
    let new = ids(&app.get_ok("/api/v1/tasks?status=new&per_page=2").await);
    let finished = ids(&app.get_ok("/api/v1/tasks?status=finished&per_page=1").await);
    let unknown = "01JDQ8M5V3W3K1C7Y2P6Z0A9BX".to_owned();
    let mut targets = new.clone();
    targets.extend(finished.clone());
    targets.push(unknown);
    targets.push("not-an-id".into());
    let r = app
        .post_ok("/api/v1/tasks/skip", &json!({"identifiers": targets}))
        .await;
    assert_eq!(
        r,
        json!({"matched": 3, "changed": 2, "ineligible": 1, "not_found": 2})
    );
    for id in &new {
        assert_eq!(app.status_of(id).await, "skipped");
    }
    assert_eq!(app.status_of(&finished[0]).await, "finished");
}

#[tokio::test]
async fn bulk_by_filter_changes_every_matching_eligible_task_of_thousands() {
    let app = TestApp::start().await;
    // 1,500 products × 4 routes = 6,000 tasks.
    for chunk in 0..3 {
        let products = TestApp::products(500, chunk * 500);
        let ndjson: String = products.iter().map(|p| format!("{p}\n")).collect();
        let r = app
            .post_raw("/api/v1/webhooks/shop", "application/x-ndjson", ndjson)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    app.run_route("strict").await;
    let before = app.get_ok("/api/v1/tasks/counts").await;
    assert_eq!(before["total"], 6_000);

    // Retry every strict task: all 1,500 failed ones.
    let r = app
        .post_ok(
            "/api/v1/tasks/retry",
            &json!({"filter": {"route": ["strict"]}, "reason": "ERP is back"}),
        )
        .await;
    assert_eq!(
        r,
        json!({"matched": 1500, "changed": 1500, "ineligible": 0, "not_found": 0})
    );
    // Skip everything on two routes: new ones change, nothing else does.
    let r = app
        .post_ok(
            "/api/v1/tasks/skip",
            &json!({"filter": {"route": ["strict", "patient"], "entity_identifier": "SKU-1"}}),
        )
        .await;
    let matching = app
        .get_ok("/api/v1/tasks/counts?route=strict&route=patient&entity_identifier=SKU-1")
        .await;
    assert_eq!(r["matched"], matching["total"]);
    assert_eq!(r["changed"], matching["by_status"]["skipped"]);
    assert_eq!(r["ineligible"], 0);
    let after = app.get_ok("/api/v1/tasks/counts?route=strict").await;
    assert_eq!(after["by_status"]["failed"], 0);
    // The same filter as the list: a bulk skip of `new` leaves other statuses alone.
    let r = app
        .post_ok(
            "/api/v1/tasks/skip",
            &json!({"filter": {"status": "finished"}}),
        )
        .await;
    assert_eq!(
        (r["changed"].as_u64(), r["matched"].as_u64()),
        (Some(0), Some(0))
    );
    let total = app.get_ok("/api/v1/tasks/counts").await;
    assert_eq!(total["total"], 6_000, "no task is ever lost");
}

#[tokio::test]
async fn an_empty_filter_means_every_task() {
    let app = TestApp::start().await;
    app.populate(7, 0).await;
    let r = app
        .post_ok("/api/v1/tasks/skip", &json!({"filter": {}}))
        .await;
    assert_eq!(r["matched"], 28);
    assert_eq!(
        r["changed"],
        7 + 7,
        "the new (idle) and retry (patient) tasks"
    );
}

#[tokio::test]
async fn routes_are_listed_with_counts_and_shown_with_their_policy() {
    let app = TestApp::start().await;
    app.populate(7, 0).await;
    let list = app.get_ok("/api/v1/routes").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    let strict = items.iter().find(|r| r["id"] == "strict").unwrap();
    assert_eq!(strict["counts"]["failed"], 7);
    assert_eq!(strict["incoming"], json!(["shop"]));
    assert_eq!(strict["outgoing"], "nowhere");
    let idle = items.iter().find(|r| r["id"] == "idle").unwrap();
    assert_eq!(idle["disabled"], true);
    let patient = app.get_ok("/api/v1/routes/patient").await;
    assert_eq!(patient["retry"]["enabled"], true);
    assert_eq!(patient["retry"]["max_attempts"], 3);
    assert_eq!(patient["retry"]["interval_seconds"], 3600);
    assert_eq!(patient["counts"]["retry"], 7);
}

/// Stores a since mark for `incoming`, as a successful incremental run would.
async fn store_since_mark(app: &TestApp, incoming: &str, value: &str, at: Timestamp) {
    app.state
        .store()
        .set_since_mark(incoming, value, at)
        .await
        .expect("set since mark");
}

#[tokio::test]
async fn a_route_shows_the_since_marks_of_its_incoming_configurations_only() {
    let app = TestApp::start().await;
    let three_min_ago = Timestamp::now().plus_millis(-180_000);
    store_since_mark(&app, "shop", "2026-01-05T10:00:00Z", three_min_ago).await;
    store_since_mark(&app, "orders", "41", three_min_ago).await;
    store_since_mark(&app, "files", "not on any route", three_min_ago).await;

    let archive = app.get_ok("/api/v1/routes/archive").await;
    assert_eq!(
        archive["since"],
        json!({
            "shop": {"value": "2026-01-05T10:00:00Z", "updated_at": three_min_ago.to_rfc3339()},
            "orders": {"value": "41", "updated_at": three_min_ago.to_rfc3339()},
        }),
        "signed has no mark and files is not an incoming of archive: {archive}"
    );
    let strict = app.get_ok("/api/v1/routes/strict").await;
    assert_eq!(
        strict["since"],
        json!({"shop": {"value": "2026-01-05T10:00:00Z", "updated_at": three_min_ago.to_rfc3339()}})
    );
    app.state.store().reset_since_mark("shop").await.unwrap();
    assert_eq!(
        app.get_ok("/api/v1/routes/strict").await["since"],
        json!({})
    );

    let page = app.get("/routes").await.text().await.unwrap();
    let archive_html = &page[page.find("id=\"route-archive\"").unwrap()..];
    let archive_html = &archive_html[..archive_html.find("</article>").unwrap()];
    assert!(
        archive_html.contains("orders: since <code>41</code>, updated")
            && archive_html.contains(&format!("datetime=\"{}\"", three_min_ago.to_rfc3339()))
            && archive_html.contains("(3 min ago)"),
        "{archive_html}"
    );
    assert!(!page.contains("not on any route"), "{page}");
}

#[tokio::test]
async fn an_admin_resets_a_since_mark_and_the_audit_trail_names_the_value_removed() {
    let app = TestApp::start().await;
    let at = Timestamp::now().plus_millis(-60_000);
    store_since_mark(&app, "shop", "2026-01-05T10:00:00Z", at).await;
    store_since_mark(&app, "orders", "41", at).await;

    let reset = app
        .post_ok("/api/v1/incoming/shop/reset-since", &json!({}))
        .await;
    let previous = json!({"value": "2026-01-05T10:00:00Z", "updated_at": at.to_rfc3339()});
    assert_eq!(
        reset,
        json!({"incoming": "shop", "reset": true, "previous": previous})
    );
    let store = app.state.store();
    assert_eq!(store.since_mark("shop").await.unwrap(), None);
    assert!(
        store.since_mark("orders").await.unwrap().is_some(),
        "other incoming configurations keep theirs"
    );
    let again = app
        .post_ok("/api/v1/incoming/shop/reset-since", &json!({}))
        .await;
    assert_eq!(
        again,
        json!({"incoming": "shop", "reset": false, "previous": null})
    );

    let trail = app.get_ok("/api/v1/audit?action=since.reset").await;
    assert_eq!(trail["total"], 2, "{trail}");
    let (newest, first) = (&trail["items"][0], &trail["items"][1]);
    assert_eq!(first["actor"], "token:test-admin");
    assert_eq!(first["origin"], "127.0.0.1");
    assert_eq!(
        first["target"],
        json!({"incoming": "shop", "reset": true, "previous": previous})
    );
    assert_eq!(
        newest["target"],
        json!({"incoming": "shop", "reset": false, "previous": null})
    );

    let r = app
        .post("/api/v1/incoming/nope/reset-since", &json!({}))
        .await;
    assert_error(
        r,
        StatusCode::NOT_FOUND,
        "incoming_not_found",
        "no incoming configuration is called 'nope'; the incoming configurations are: shop, orders, signed, files",
    )
    .await;
    let (_, total) = store
        .list_actions(&ferry_store::AuditQuery {
            action: Some("since.reset".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 2, "an unknown incoming configuration is not audited");
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = TestApp::start().await;
    let doc = app.get_ok("/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/counts",
        "/api/v1/tasks/{identifier}",
        "/api/v1/tasks/{identifier}/messages",
        "/api/v1/tasks/{identifier}/skip",
        "/api/v1/tasks/{identifier}/retry",
        "/api/v1/tasks/skip",
        "/api/v1/tasks/retry",
        "/api/v1/routes",
        "/api/v1/routes/{id}",
        "/api/v1/routes/{id}/run",
        "/api/v1/incoming/{id}/run",
        "/api/v1/incoming/{id}/reset-since",
        "/api/v1/webhooks/{incoming_id}",
        "/api/v1/audit",
        "/api/v1/users",
        "/api/v1/users/{name}",
        "/api/v1/tokens",
        "/api/v1/tokens/{name}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["TaskSummaryDto"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let list = &doc["paths"]["/api/v1/tasks"]["get"]["responses"];
    assert!(list["401"].is_object() && list["403"].is_object(), "{list}");
    let names = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (list, counts) = (names("/api/v1/tasks"), names("/api/v1/tasks/counts"));
    for filter in [
        "route",
        "status",
        "identifier",
        "entity_identifier_match",
        "count",
    ] {
        assert!(list.contains(&filter.to_owned()) && counts.contains(&filter.to_owned()));
    }
    for paging in ["page", "per_page", "sort", "order"] {
        assert!(list.contains(&paging.to_owned()), "{paging} in {list:?}");
        assert!(
            !counts.contains(&paging.to_owned()),
            "the counts take no {paging}"
        );
    }
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
    assert_eq!(app.get_ok("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn a_capped_count_is_exact_below_ten_thousand_and_a_bad_count_mode_is_refused() {
    let app = TestApp::start().await;
    app.populate(5, 0).await;
    let list = app.get_ok("/api/v1/tasks?count=capped&route=idle").await;
    assert_eq!(
        (&list["total"], &list["total_exact"]),
        (&json!(5), &json!(true))
    );
    let list = app.get_ok("/api/v1/tasks").await;
    assert_eq!(
        (&list["total"], &list["total_exact"]),
        (&json!(20), &json!(true))
    );
    let r = app.get("/api/v1/tasks?count=roughly").await;
    assert_error(
        r,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "use exact or capped",
    )
    .await;
    let r = app.get("/api/v1/tasks/counts?count=capped").await;
    assert_error(
        r,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        "use exact or estimate",
    )
    .await;
}

#[tokio::test]
async fn status_counts_asked_for_an_estimate_are_exact_below_ten_thousand() {
    let app = TestApp::start().await;
    app.populate(5, 0).await;
    let counts = app
        .get_ok("/api/v1/tasks/counts?count=estimate&route=idle")
        .await;
    assert_eq!(
        (
            &counts["total"],
            &counts["by_status"]["new"],
            &counts["exact"]
        ),
        (&json!(5), &json!(5), &json!(true))
    );
    assert_eq!(
        app.get_ok("/api/v1/tasks/counts").await["exact"],
        json!(true)
    );
    let r = app.get("/api/v1/tasks/counts?count=estimate&page=2").await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_parameter", "page").await;
}
