//! The attacks of issue 18, tried on every change against the real server on both
//! stores: concurrent sign-ins, a large webhook call beside small ones, webhooks probed
//! without credentials, replayed signatures, NUL bytes everywhere, and caching.
//! Bounded in count and time. PostgreSQL cases print SKIPPED without a server, and
//! fail under CI=true.

mod common;

use common::{CONFIG, TestApp};
use ferry_core::Role;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps a PostgreSQL schema for as long as the test runs, and drops it after.
struct Schema {
    base: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {name} CASCADE"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// The server on `backend` with `config`; `None` (after printing SKIPPED) when
/// PostgreSQL is not reachable outside CI.
async fn app(backend: Backend, config: &str) -> Option<(TestApp, Option<Schema>)> {
    match backend {
        Backend::Sqlite => Some((TestApp::with_config(config).await, None)),
        Backend::Postgres => {
            use sqlx::Connection;
            let base = std::env::var("FERRY_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let mut conn = match sqlx::PgConnection::connect(&base).await {
                Ok(c) => c,
                Err(e) => {
                    let reason = format!("PostgreSQL is not reachable at {base} ({e})");
                    if std::env::var("CI").is_ok_and(|v| v == "true") {
                        panic!("{reason}; .ci/run starts the local server");
                    }
                    eprintln!("SKIPPED: {reason}");
                    return None;
                }
            };
            let name = format!(
                "ferry_adv_{}",
                ferry_core::TaskId::generate(ferry_core::Timestamp::now())
                    .as_str()
                    .to_lowercase()
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut conn)
                .await
                .expect("create a schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
            let app = TestApp::with_config_on(config, Some(&url)).await;
            Some((app, Some(Schema { base, name })))
        }
    }
}

/// Each case once on SQLite and once on PostgreSQL.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_stores!(
    concurrent_wrong_passwords_get_at_most_five_checks_and_the_right_one_after_them_is_refused,
    sign_ins_for_one_name_from_many_addresses_get_at_most_five_checks,
    a_webhook_call_over_the_entity_cap_is_refused_with_413_and_creates_nothing,
    small_webhook_calls_beside_a_large_one_are_answered_2xx_or_503_never_500,
    callers_without_credentials_get_401_whatever_the_webhook_and_learn_no_ids,
    a_webhook_without_credentials_is_answered_before_its_body_is_sent,
    a_signed_delivery_older_than_the_signature_max_age_is_refused,
    nul_bytes_in_filters_reasons_and_sign_ins_are_400_or_401_never_500,
    nul_bytes_inside_entity_strings_are_kept_and_in_identifiers_refused_with_422,
    authenticated_answers_are_not_stored_by_caches,
    twenty_digit_numbers_keep_every_digit_from_webhook_to_identifier_storage_and_target,
    user_names_differing_only_in_case_cannot_both_exist_and_either_spelling_signs_in,
);

/// The sign-in form's cookie and CSRF token, fetched once for many posts.
async fn sign_in_form(app: &TestApp) -> (String, String) {
    let form = app.anonymous.get(app.url("/login")).send().await.unwrap();
    let cookie = common::set_cookie(&form, "ferry_login").expect("sign-in form cookie");
    let csrf = common::hidden_field(&form.text().await.unwrap(), "csrf").expect("csrf");
    (cookie, csrf)
}

async fn post_sign_in(
    client: &reqwest::Client,
    app: &TestApp,
    form: &(String, String),
    user: &str,
    password: &str,
) -> StatusCode {
    let field = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    client
        .post(app.url("/login"))
        .header("cookie", format!("ferry_login={}", form.0))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={}&next=%2Ftasks&user={}&password={}",
            form.1,
            field(user),
            field(password)
        ))
        .send()
        .await
        .unwrap()
        .status()
}

async fn concurrent_wrong_passwords_get_at_most_five_checks_and_the_right_one_after_them_is_refused(
    backend: Backend,
) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    app.user("alice", Role::Operator, "the-right-password")
        .await;
    let form = sign_in_form(&app).await;
    let attempts = (0..100).map(|i| {
        let (app, form) = (&app, &form);
        async move { post_sign_in(&app.anonymous, app, form, "alice", &format!("wrong-{i}")).await }
    });
    let answers = futures_join_all(attempts).await;
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + throttled, 100, "{answers:?}");
    assert!(
        (1..=5).contains(&checked),
        "{checked} passwords were checked"
    );
    let last = post_sign_in(&app.anonymous, &app, &form, "alice", "the-right-password").await;
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

async fn sign_ins_for_one_name_from_many_addresses_get_at_most_five_checks(backend: Backend) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    app.user("bob", Role::Viewer, "bobs-password").await;
    let form = sign_in_form(&app).await;
    let attempts = (2..22u8).map(|i| {
        let (app, form) = (&app, &form);
        async move {
            // Each from another loopback address: only the name's limit applies.
            let client = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, i]))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            post_sign_in(&client, app, form, "bob", "wrong").await
        }
    });
    let answers = futures_join_all(attempts).await;
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(checked <= 5, "{checked} checks for one name: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|s| matches!(*s, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS)),
        "{answers:?}"
    );
}

/// Runs the futures at once and answers their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let mut set = Vec::new();
    for f in futures {
        set.push(f);
    }
    let mut pinned: Vec<_> = set.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("polled to the end"))
        .collect()
}

/// One webhook feeding three routes, with a cap of `cap` entities per call.
fn capped_config(cap: usize) -> String {
    format!(
        r#"
[server]
max_entities_per_request = {cap}

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[incoming]]
id = "signed"
entity_schema = "product"
subscriber = {{ type = "webhook", secret = "s3cret-value", signature_max_age = "5m" }}

[[outgoing]]
id = "archive"
publisher = {{ type = "file", path = "out/archive.ndjson" }}

[[routes]]
id = "one"
incoming = ["shop", "signed"]
outgoing = "archive"

[[routes]]
id = "two"
incoming = ["shop"]
outgoing = "archive"

[[routes]]
id = "three"
incoming = ["shop"]
outgoing = "archive"
"#
    )
}

fn ndjson(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| format!("{{\"sku\":\"{prefix}-{i}\"}}\n"))
        .collect()
}

async fn total(app: &TestApp) -> u64 {
    app.get_ok("/api/v1/tasks/counts").await["total"]
        .as_u64()
        .unwrap()
}

async fn a_webhook_call_over_the_entity_cap_is_refused_with_413_and_creates_nothing(
    backend: Backend,
) {
    let Some((app, _schema)) = app(backend, &capped_config(1_000)).await else {
        return;
    };
    let r = app
        .post_raw(
            "/api/v1/webhooks/shop",
            "application/x-ndjson",
            ndjson(1_001, "big"),
        )
        .await;
    common::assert_error(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_entities",
        "server.max_entities_per_request",
    )
    .await;
    assert_eq!(total(&app).await, 0);
    let r = app
        .post_raw(
            "/api/v1/webhooks/shop",
            "application/x-ndjson",
            ndjson(1_000, "ok"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(total(&app).await, 3_000, "1,000 entities on three routes");
}

async fn small_webhook_calls_beside_a_large_one_are_answered_2xx_or_503_never_500(
    backend: Backend,
) {
    let Some((app, _schema)) = app(backend, &capped_config(20_000)).await else {
        return;
    };
    let large = async {
        app.post_raw(
            "/api/v1/webhooks/shop",
            "application/x-ndjson",
            ndjson(20_000, "large"),
        )
        .await
        .status()
    };
    let small = async {
        let mut answers = Vec::new();
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = app
                .post(
                    "/api/v1/webhooks/shop",
                    &json!({"sku": format!("small-{i}")}),
                )
                .await;
            let retry_after = r.headers().contains_key("retry-after");
            answers.push((r.status(), retry_after));
        }
        answers
    };
    let (large, small) = tokio::join!(large, small);
    assert!(
        large == StatusCode::CREATED || large == StatusCode::SERVICE_UNAVAILABLE,
        "{large}"
    );
    for (status, retry_after) in small {
        assert!(
            status == StatusCode::CREATED
                || (status == StatusCode::SERVICE_UNAVAILABLE && retry_after),
            "a small call beside the large one got {status}"
        );
    }
}

async fn callers_without_credentials_get_401_whatever_the_webhook_and_learn_no_ids(
    backend: Backend,
) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    let mut messages = Vec::new();
    for id in ["nonexistent", "shop", "signed", "files"] {
        let r = app
            .anonymous
            .post(app.url(&format!("/api/v1/webhooks/{id}")))
            .json(&json!({"sku": "X"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{id}");
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        for other in ["shop", "orders", "signed", "files"] {
            if other != id {
                assert!(!message.contains(&format!("'{other}'")), "{id}: {message}");
            }
        }
        messages.push(message.replace(id, "ID"));
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "one answer for every id: {messages:?}");
    // An operator still learns what exists.
    let r = app.post("/api/v1/webhooks/nonexistent", &json!({})).await;
    common::assert_error(r, StatusCode::NOT_FOUND, "incoming_not_found", "shop").await;
}

async fn a_webhook_without_credentials_is_answered_before_its_body_is_sent(backend: Backend) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    let addr = app.base.trim_start_matches("http://").to_owned();
    for id in ["nonexistent", "shop"] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // Headers announcing 900 KB, and not a byte of it.
        let head = format!(
            "POST /api/v1/webhooks/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 401"), "{id}: {text}");
    }
}

fn signature(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn a_signed_delivery_older_than_the_signature_max_age_is_refused(backend: Backend) {
    let Some((app, _schema)) = app(backend, &capped_config(100)).await else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = br#"{"sku":"SIGNED-1"}"#.to_vec();
    let send = |timestamp: Option<u64>, signed_over: Vec<u8>| {
        let mut req = app
            .anonymous
            .post(app.url("/api/v1/webhooks/signed"))
            .header("content-type", "application/json")
            .header("x-ferry-signature", signature("s3cret-value", &signed_over))
            .body(body.clone());
        if let Some(t) = timestamp {
            req = req.header("x-ferry-timestamp", t.to_string());
        }
        async move { req.send().await.unwrap().status() }
    };
    let with_ts = |t: u64| [format!("{t}.").into_bytes(), body.clone()].concat();
    assert_eq!(send(Some(now), with_ts(now)).await, StatusCode::CREATED);
    // The same delivery captured and sent again ten minutes on.
    let old = now - 600;
    assert_eq!(
        send(Some(old), with_ts(old)).await,
        StatusCode::UNAUTHORIZED
    );
    // Without a timestamp, or with one the signature does not cover.
    assert_eq!(send(None, body.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(Some(now), body.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(total(&app).await, 1);
}

async fn nul_bytes_in_filters_reasons_and_sign_ins_are_400_or_401_never_500(backend: Backend) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    let ids = app
        .push_products(&[json!({"sku": "N-1", "price": "2"})])
        .await;
    for parameter in [
        "identifier",
        "entity_schema",
        "entity_identifier",
        "route",
        "status",
    ] {
        for path in ["/api/v1/tasks", "/api/v1/tasks/counts"] {
            let r = app.get(&format!("{path}?{parameter}=a%00b")).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {parameter}");
        }
        let r = app
            .post(
                "/api/v1/tasks/skip",
                &json!({"filter": {parameter: ["a\u{0}b"]}}),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "bulk filter {parameter}"
        );
    }
    for body in [
        json!({"identifiers": [ids[0]], "reason": "why\u{0}not"}),
        json!({"filter": {}, "reason": "why\u{0}not"}),
    ] {
        let r = app.post("/api/v1/tasks/skip", &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let r = app
        .post(
            &format!("/api/v1/tasks/{}/skip", ids[0]),
            &json!({"reason": "a\u{0}b"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    for query in ["actor=a%00b", "action=a%00b", "task=a%00b"] {
        let r = app.get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let form = sign_in_form(&app).await;
    let status = post_sign_in(&app.anonymous, &app, &form, "ad\u{0}min", "x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing changed.
    assert_eq!(app.status_of(&ids[0]).await, "new");
}

async fn nul_bytes_inside_entity_strings_are_kept_and_in_identifiers_refused_with_422(
    backend: Backend,
) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    let entity = json!({"sku": "NUL-1", "name": "half\u{0}way", "price": "1", "\u{0}key": 1});
    let r = app.post("/api/v1/webhooks/orders", &entity).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id = created["tasks"][0].as_str().unwrap();
    let task = app.get_ok(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["entity_data"], entity, "stored and returned intact");

    let r = app
        .post(
            "/api/v1/webhooks/shop",
            &json!({"sku": "bad\u{0}sku", "price": "1"}),
        )
        .await;
    common::assert_error(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "entities_rejected",
        "NUL",
    )
    .await;
    assert_eq!(total(&app).await, 1);
}

async fn authenticated_answers_are_not_stored_by_caches(backend: Backend) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    for path in ["/api/v1/tasks", "/api/v1/audit", "/tasks"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(
            r.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{path}"
        );
    }
}

async fn twenty_digit_numbers_keep_every_digit_from_webhook_to_identifier_storage_and_target(
    backend: Backend,
) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    // Through the `shop` webhook, whose jq transformer rewrites the entity.
    let body = r#"[{"sku": 12345678901234567890, "price": "1", "stock": 123456789012345678901234567890},
                   {"sku": 12345678901234567891, "price": "1", "weight": 0.10000000000000000001}]"#;
    let r = app
        .post_raw("/api/v1/webhooks/shop", "application/json", body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for (sku, digits) in [
        ("12345678901234567890", "123456789012345678901234567890"),
        ("12345678901234567891", "0.10000000000000000001"),
    ] {
        let page = app
            .get_ok(&format!(
                "/api/v1/tasks?route=archive&entity_identifier={sku}&entity_identifier_match=equals"
            ))
            .await;
        assert_eq!(page["total"], 1, "{sku}: {page}");
        let id = page["items"][0]["identifier"].as_str().unwrap();
        let raw = app
            .get(&format!("/api/v1/tasks/{id}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(raw.contains(&format!("\"sku\":{sku}")), "{raw}");
        assert!(raw.contains(digits), "{raw}");
    }
    app.run_route("archive").await;
    let out = std::fs::read_to_string(app.dir.path().join("out/archive.ndjson")).unwrap();
    for digits in [
        "12345678901234567890",
        "12345678901234567891",
        "123456789012345678901234567890",
        "0.10000000000000000001",
    ] {
        assert!(out.contains(digits), "{digits} in {out}");
    }
}

async fn user_names_differing_only_in_case_cannot_both_exist_and_either_spelling_signs_in(
    backend: Backend,
) {
    let Some((app, _schema)) = app(backend, CONFIG).await else {
        return;
    };
    app.user("Olga", Role::Operator, "olgas-password").await;
    let again = ferry_store::accounts::add_user(
        &**app.state.store(),
        &common::test_setup(),
        "olga",
        Role::Admin,
        "another-password",
    )
    .await;
    assert!(
        matches!(again, Err(ferry_store::accounts::AccountError::Taken(_))),
        "{again:?}"
    );
    let (session, _) = app
        .sign_in("OLGA", "olgas-password")
        .await
        .expect("either spelling signs in");
    let me = app
        .anonymous
        .get(app.url("/tasks"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(me.contains("Olga"), "the stored name is shown");
}
