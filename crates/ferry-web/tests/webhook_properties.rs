//! Property: whatever body and content type reach a webhook, the answer is a 201 that
//! created exactly the tasks it lists, or a 4xx that created none; never a 5xx, and no
//! task is lost or half-made. Also raw query strings thrown at the task list: 200 or 400,
//! never a 5xx.

mod common;

use common::TestApp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// JSON values of any shape, small enough to post many of.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("SKU-1"),
            Just(""),
            Just("0"),
            Just("12.5"),
            Just("abc")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sku".to_owned()),
                    Just("price".to_owned()),
                    Just("active".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: JSON (often product-like), NDJSON lines, or arbitrary bytes.
fn body() -> impl Strategy<Value = (Option<&'static str>, Vec<u8>)> {
    let content_type = prop::option::of(prop_oneof![
        Just("application/json"),
        Just("application/x-ndjson"),
        Just("text/plain"),
        Just("application/json; charset=utf-8"),
    ]);
    let product = || {
        ("\\PC{0,10}", json_value(), any::<bool>())
            .prop_map(|(sku, price, active)| json!({"sku": sku, "price": price, "active": active}))
    };
    let payload = prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        product().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(product(), 0..8)
            .prop_map(|v| Value::Array(v).to_string().into_bytes()),
        prop::collection::vec(json_value(), 0..6).prop_map(|lines| lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
    ];
    (content_type, payload)
}

async fn total(app: &TestApp) -> u64 {
    app.get_ok("/api/v1/tasks/counts").await["total"]
        .as_u64()
        .unwrap()
}

#[test]
fn any_webhook_body_creates_all_its_tasks_or_none_and_never_fails_the_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::start());
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let accepted = std::cell::Cell::new(0u64);
    runner
        .run(&body(), |(content_type, bytes)| {
            let (status, answer, before, after) = rt.block_on(async {
                let before = total(&app).await;
                let mut request = app
                    .http
                    .post(app.url("/api/v1/webhooks/shop"))
                    .body(bytes.clone());
                if let Some(ct) = content_type {
                    request = request.header("content-type", ct);
                }
                let r = request.send().await.unwrap();
                let status = r.status();
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                (status, answer, before, total(&app).await)
            });
            prop_assert!(!status.is_server_error(), "{status}: {answer}");
            prop_assert!(answer.is_object(), "every answer is JSON: {status}");
            if status.is_success() {
                let created = answer["tasks"].as_array().unwrap().len() as u64;
                prop_assert_eq!(created, answer["created"].as_u64().unwrap());
                prop_assert_eq!(after, before + created, "{}", answer);
                accepted.set(accepted.get() + 1);
            } else {
                prop_assert!(status.is_client_error());
                prop_assert_eq!(
                    after,
                    before,
                    "a refused delivery created tasks: {}",
                    answer
                );
                prop_assert!(
                    answer["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
                );
            }
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() > 0,
        "some generated deliveries must be valid"
    );
}

#[test]
fn any_query_string_on_the_list_is_answered_with_200_or_400() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(async {
        let app = TestApp::start().await;
        app.push_products(&TestApp::products(5, 0)).await;
        app
    });
    let key = prop_oneof![
        Just("route"),
        Just("status"),
        Just("created_from"),
        Just("updated_to"),
        Just("identifier"),
        Just("identifier_match"),
        Just("entity_identifier"),
        Just("page"),
        Just("per_page"),
        Just("sort"),
        Just("order"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        "\\PC{0,20}",
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("2026-13-40T99:99:99Z".to_owned()),
        Just("%".to_owned()),
        Just("_".to_owned()),
        Just("'; DROP TABLE tasks; --".to_owned()),
    ];
    let pairs = prop::collection::vec((key, value), 0..6);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(&pairs, |pairs| {
            let status = rt.block_on(async {
                for path in ["/api/v1/tasks", "/api/v1/tasks/counts", "/tasks"] {
                    let s = app
                        .http
                        .get(app.url(path))
                        .query(&pairs)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if s != 200 {
                        return s;
                    }
                }
                reqwest::StatusCode::OK
            });
            prop_assert!(status == 200 || status == 400, "{status} for {pairs:?}");
            Ok(())
        })
        .unwrap();
    assert_eq!(rt.block_on(total(&app)), 5 * 4, "queries changed nothing");
}
