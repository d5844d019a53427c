//! Who may do what, over real HTTP: each role against each endpoint and page action,
//! sign-in and sessions, CSRF, token revocation, webhook credentials and the audit
//! trail of all of it.

mod common;

use common::{TestApp, client_with_token};
use ferry_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every endpoint and page action, with what it needs: R read, O operate, A administer.
/// `{task}` is replaced by a task in status `new`; bodies are valid, so an allowed call
/// succeeds or fails for reasons of its own, never with 401 or 403.
fn endpoints() -> Vec<(Method, &'static str, Option<Value>, char)> {
    use Method as M;
    vec![
        (M::GET, "/api/v1/tasks", None, 'R'),
        (M::GET, "/api/v1/tasks/counts", None, 'R'),
        (M::GET, "/api/v1/tasks/{task}", None, 'R'),
        (
            M::GET,
            "/api/v1/tasks/{task}/messages?phase=import",
            None,
            'R',
        ),
        (M::GET, "/api/v1/tasks/{task}/history", None, 'R'),
        (M::GET, "/api/v1/routes", None, 'R'),
        (M::GET, "/api/v1/routes/archive", None, 'R'),
        (M::GET, "/api/v1/retention", None, 'R'),
        (M::GET, "/api/v1/audit", None, 'R'),
        (M::GET, "/tasks", None, 'R'),
        (M::GET, "/tasks/{task}", None, 'R'),
        (M::GET, "/routes", None, 'R'),
        (M::GET, "/audit", None, 'R'),
        (M::POST, "/api/v1/tasks/{task}/retry", Some(json!({})), 'O'),
        (
            M::POST,
            "/api/v1/tasks/{task}/skip",
            Some(json!({"reason": "matrix"})),
            'O',
        ),
        (
            M::POST,
            "/api/v1/tasks/retry",
            Some(json!({"identifiers": ["01JAAAAAAAAAAAAAAAAAAAAAAA"]})),
            'O',
        ),
        (
            M::POST,
            "/api/v1/tasks/skip",
            Some(json!({"filter": {"route": ["idle"]}})),
            'O',
        ),
        (M::POST, "/api/v1/routes/idle/run", Some(json!({})), 'O'),
        (M::POST, "/api/v1/incoming/files/run", Some(json!({})), 'O'),
        (
            M::POST,
            "/api/v1/incoming/files/reset-since",
            Some(json!({})),
            'A',
        ),
        (
            M::POST,
            "/api/v1/webhooks/shop",
            Some(json!({"sku": "M-1", "price": "1"})),
            'O',
        ),
        (M::GET, "/api/v1/users", None, 'A'),
        (
            M::POST,
            "/api/v1/users",
            Some(
                json!({"name": "new-{role}", "role": "viewer", "password": "long enough password"}),
            ),
            'A',
        ),
        (
            M::PATCH,
            "/api/v1/users/victim",
            Some(json!({"role": "viewer"})),
            'A',
        ),
        (M::GET, "/api/v1/tokens", None, 'A'),
        (
            M::POST,
            "/api/v1/tokens",
            Some(json!({"name": "t-{role}", "role": "viewer"})),
            'A',
        ),
        (M::DELETE, "/api/v1/tokens/spare-{role}", None, 'A'),
    ]
}

fn allowed(role: Option<Role>, need: char) -> bool {
    let Some(role) = role else { return false };
    match need {
        'R' => true,
        'O' => role >= Role::Operator,
        _ => role == Role::Admin,
    }
}

#[tokio::test]
async fn each_role_can_do_exactly_what_it_should_on_every_endpoint() {
    let app = TestApp::start().await;
    app.user("victim", Role::Operator, "victim password 1")
        .await;
    let roles = [
        None,
        Some(Role::Viewer),
        Some(Role::Operator),
        Some(Role::Admin),
    ];
    let mut checked = 0;
    for role in roles {
        let label = role.map_or("anonymous".to_owned(), |r| r.to_string());
        let client = match role {
            Some(r) => client_with_token(&app.token(&format!("matrix-{label}"), r).await),
            None => app.anonymous.clone(),
        };
        app.token(&format!("spare-{label}"), Role::Viewer).await;
        for (method, path, body, need) in endpoints() {
            let task = app
                .push_products(&TestApp::products(1, 900 + checked))
                .await[0]
                .clone();
            let path = path.replace("{task}", &task).replace("{role}", &label);
            let mut request = client.request(method.clone(), app.url(&path));
            if let Some(body) = &body {
                let text = body.to_string().replace("{role}", &label);
                request = request
                    .header("content-type", "application/json")
                    .body(text);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let is_page = !path.starts_with("/api/");
            if allowed(role, need) {
                assert!(
                    status.is_success() || status == StatusCode::CONFLICT,
                    "{label} {method} {path}: expected to be allowed, got {status}: {text}"
                );
            } else if role.is_none() && is_page {
                assert_eq!(status, StatusCode::SEE_OTHER, "{method} {path}: {text}");
            } else {
                let expected = if role.is_none() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(status, expected, "{label} {method} {path}: {text}");
                let error: Value = serde_json::from_str(&text).expect("JSON error");
                assert!(
                    error["error"]["message"].as_str().unwrap().len() > 20,
                    "the refusal says why: {text}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * endpoints().len());
}

#[tokio::test]
async fn anyone_may_reach_liveness_the_api_index_the_openapi_document_and_the_sign_in_page() {
    let app = TestApp::start().await;
    for path in [
        "/healthz",
        "/api/v1",
        "/api/v1/openapi.json",
        "/login",
        "/assets/app.css",
    ] {
        let r = app.anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = app
        .anonymous
        .get(app.url("/tasks?status=failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Ftasks%3Fstatus%3Dfailed",
        "after signing in, the user lands where they were going"
    );
    let r = app
        .anonymous
        .get(app.url("/api/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_bad_or_revoked_token_is_refused_at_once() {
    let app = TestApp::start().await;
    let token = app.token("ci", Role::Operator).await;
    let ci = client_with_token(&token);
    assert_eq!(
        ci.get(app.url("/api/v1/tasks"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let r = app
        .http
        .delete(app.url("/api/v1/tokens/ci"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = ci.get(app.url("/api/v1/tasks")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );

    let forged = format!("{}0", &token[..token.len() - 1]);
    let r = client_with_token(&forged)
        .get(app.url("/api/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .http
        .delete(app.url("/api/v1/tokens/ci"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "already revoked");
}

#[tokio::test]
async fn a_token_is_shown_once_and_listed_without_its_secret() {
    let app = TestApp::start().await;
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "deploy", "role": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ferry_"));
    let listed = app.get_ok("/api/v1/tokens").await;
    let text = listed.to_string();
    assert!(text.contains("deploy") && !text.contains(&secret), "{text}");
    let r = client_with_token(&secret)
        .post(app.url("/api/v1/routes/idle/run"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .http
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "deploy", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    for bad in [
        json!({"name": "no spaces", "role": "viewer"}),
        json!({"name": "x", "role": "root"}),
    ] {
        let r = app
            .http
            .post(app.url("/api/v1/tokens"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 400 || r.status() == 422,
            "{bad}: {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn signing_in_gives_a_session_that_pages_and_the_api_accept_until_sign_out() {
    let app = TestApp::start().await;
    app.user("alice", Role::Operator, "alice password 1").await;
    let (cookie, csrf) = app
        .sign_in("alice", "alice password 1")
        .await
        .expect("signed in");
    let page = app
        .anonymous
        .get(app.url("/tasks"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"me-name\">alice<"),
        "the page names the user"
    );

    let r = app
        .anonymous
        .get(app.url("/api/v1/tasks"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = app
        .anonymous
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = app
        .anonymous
        .get(app.url("/api/v1/tasks"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the session ended");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_and_secure() {
    let app = TestApp::start().await;
    app.user("alice", Role::Viewer, "alice password 1").await;
    let r = app.submit_sign_in("alice", "alice password 1").await;
    let header = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("ferry_session="))
        .unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(header.contains(part), "{header} lacks {part}");
    }
}

#[tokio::test]
async fn a_change_by_session_without_the_pages_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::start().await;
    app.user("alice", Role::Operator, "alice password 1").await;
    let (cookie, csrf) = app.sign_in("alice", "alice password 1").await.unwrap();
    let task = app.push_products(&TestApp::products(1, 0)).await[0].clone();
    let skip = |token: Option<&str>| {
        let mut r = app
            .anonymous
            .post(app.url(&format!("/api/v1/tasks/{task}/skip")))
            .header("cookie", &cookie)
            .json(&json!({}));
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    for token in [None, Some("wrong"), Some("")] {
        let r = skip(token).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf_failed");
    }
    let detail = app.get_ok(&format!("/api/v1/tasks/{task}")).await;
    assert_eq!(detail["status"], "new", "nothing changed");

    let r = skip(Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The sign-in form is protected too: a post without the form's token is refused.
    let r = app
        .anonymous
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=alice&password=alice+password+1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(common::set_cookie(&r, "ferry_session").is_none());
}

#[tokio::test]
async fn a_session_expires_after_its_lifetime() {
    let app = TestApp::with_config(
        &common::CONFIG.replace("[server]\n", "[server]\nsession_lifetime = \"1s\"\n"),
    )
    .await;
    app.user("alice", Role::Viewer, "alice password 1").await;
    let (cookie, _) = app.sign_in("alice", "alice password 1").await.unwrap();
    let get = || {
        app.anonymous
            .get(app.url("/api/v1/tasks"))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    let r = get().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn wrong_names_wrong_passwords_and_disabled_users_get_the_same_answer() {
    let app = TestApp::start().await;
    app.user("alice", Role::Viewer, "alice password 1").await;
    app.user("bob", Role::Viewer, "bob password 12").await;
    app.http
        .patch(app.url("/api/v1/users/bob"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    let mut answers = Vec::new();
    for (user, password) in [
        ("alice", "not her password"),
        ("nobody", "alice password 1"),
        ("bob", "bob password 12"),
    ] {
        let r = app.submit_sign_in(user, password).await;
        let status = r.status();
        let html = r.text().await.unwrap();
        let start = html.find("role=\"alert\"").expect("an error shown");
        let message = html[start..start + 120].to_owned();
        answers.push((status, message));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled() {
    let app = TestApp::start().await;
    app.user("alice", Role::Viewer, "alice password 1").await;
    let mut statuses = Vec::new();
    for attempt in 0..7 {
        let password = if attempt == 6 {
            "alice password 1"
        } else {
            "wrong password"
        };
        let r = app.submit_sign_in("alice", password).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429, 429],
        "even the right password waits once the limit is reached"
    );
}

#[tokio::test]
async fn webhooks_take_their_secret_its_signature_or_an_operator_token() {
    let app = TestApp::start().await;
    let body = json!({"sku": "W-1", "price": "3"}).to_string();
    let post = |client: &reqwest::Client, path: &str, headers: &[(&str, String)]| {
        let mut r = client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body.clone());
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.send()
    };
    let anon = app.anonymous.clone();
    let viewer = client_with_token(&app.token("v", Role::Viewer).await);
    let operator = client_with_token(&app.token("o", Role::Operator).await);
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-value").unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let bearer = |v: &str| vec![("authorization", format!("Bearer {v}"))];
    let signature = |v: String| vec![("x-ferry-signature", format!("sha256={v}"))];
    let cases = [
        // No secret configured: only an operator (or admin) may push.
        (&anon, "shop", vec![], 401),
        (&viewer, "shop", vec![], 403),
        (&operator, "shop", vec![], 201),
        // With a secret: the secret, a signature made with it, or an operator token.
        (&anon, "signed", bearer("s3cret-value"), 201),
        (&anon, "signed", signature(hex), 201),
        (&anon, "signed", signature("0".repeat(64)), 401),
        (&anon, "signed", bearer("not-the-secret"), 401),
        (&operator, "signed", vec![], 201),
        (&viewer, "signed", vec![], 403),
    ];
    for (client, incoming, headers, expected) in cases {
        let path = format!("/api/v1/webhooks/{incoming}");
        let status = post(client, &path, &headers).await.unwrap().status();
        assert_eq!(status, expected, "{incoming} with {headers:?}");
    }

    let total = app.get_ok("/api/v1/tasks/counts").await["total"]
        .as_u64()
        .unwrap();
    // One delivery to `shop` (four routes) and three to `signed` (one route).
    assert_eq!(total, 4 + 3);
}

#[tokio::test]
async fn every_operator_action_lands_in_the_audit_trail_with_who_and_from_where() {
    let app = TestApp::start().await;
    let ops = client_with_token(&app.token("nightly", Role::Operator).await);
    app.user("alice", Role::Admin, "alice password 1").await;
    let tasks = app.push_products(&TestApp::products(3, 0)).await;
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{}", r.status());
    };
    ok(ops
        .post(app.url(&format!("/api/v1/tasks/{}/skip", tasks[0])))
        .json(&json!({"reason": "dup"}))
        .send()
        .await
        .unwrap());
    ok(ops
        .post(app.url("/api/v1/tasks/retry"))
        .json(&json!({"filter": {"status": ["skipped"]}}))
        .send()
        .await
        .unwrap());
    ok(ops
        .post(app.url("/api/v1/routes/archive/run"))
        .json(&json!({}))
        .send()
        .await
        .unwrap());
    ok(ops
        .post(app.url("/api/v1/incoming/files/run"))
        .json(&json!({}))
        .send()
        .await
        .unwrap());
    app.sign_in("alice", "alice password 1").await.unwrap();
    assert!(app.sign_in("alice", "wrong password!").await.is_none());
    ok(app
        .http
        .post(app.url("/api/v1/users"))
        .json(&json!({"name": "carol", "role": "viewer", "password": "carol password"}))
        .send()
        .await
        .unwrap());
    ok(app
        .http
        .patch(app.url("/api/v1/users/carol"))
        .json(&json!({"role": "operator"}))
        .send()
        .await
        .unwrap());
    ok(app
        .http
        .delete(app.url("/api/v1/tokens/nightly"))
        .send()
        .await
        .unwrap());

    let trail = app.get_ok("/api/v1/audit?per_page=100").await;
    let entries: Vec<(String, String, String)> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["origin"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let has = |action: &str, actor: &str| {
        entries
            .iter()
            .any(|(a, who, from)| a == action && who == actor && from == "127.0.0.1")
    };
    for (action, actor) in [
        ("skip", "token:nightly"),
        ("retry", "token:nightly"),
        ("run", "token:nightly"),
        ("run.incoming", "token:nightly"),
        ("login", "alice"),
        ("login.failed", "alice"),
        ("user.add", "token:test-admin"),
        ("user.change", "token:test-admin"),
        ("token.revoke", "token:test-admin"),
    ] {
        assert!(has(action, actor), "no {action} by {actor} in {entries:?}");
    }
    let skip = &trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "skip")
        .unwrap();
    assert_eq!(skip["reason"], "dup");
    assert_eq!(skip["target"]["identifiers"][0], tasks[0].as_str());

    // Filters, and the page.
    let only = app.get_ok("/api/v1/audit?action=login&actor=alice").await;
    assert_eq!(only["total"], 1);
    let r = app.get(&format!("/api/v1/audit?task={}", tasks[0])).await;
    let by_task: Value = r.json().await.unwrap();
    assert_eq!(
        by_task["total"], 2,
        "skipped, then retried by filter: {by_task}"
    );
    let r = app
        .http
        .get(app.url("/audit?action=skip"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("token:nightly") && html.contains("127.0.0.1") && html.contains("dup"));
    assert_eq!(
        app.get("/api/v1/audit?action=drop-table").await.status(),
        400
    );
}

#[tokio::test]
async fn only_an_admin_may_reset_a_since_mark() {
    let app = TestApp::start().await;
    let at = ferry_core::Timestamp::now();
    let store = app.state.store();
    store
        .set_since_mark("shop", "2026-01-05T10:00:00Z", at)
        .await
        .unwrap();
    for role in [Role::Viewer, Role::Operator] {
        let client = client_with_token(&app.token(&format!("reset-{role}"), role).await);
        let r = client
            .post(app.url("/api/v1/incoming/shop/reset-since"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{role}");
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("the {role} role"))
                && message.contains("resetting since marks need the admin role"),
            "{message}"
        );
    }
    assert_eq!(
        store.since_mark("shop").await.unwrap().map(|m| m.value),
        Some("2026-01-05T10:00:00Z".to_owned()),
        "a refused reset leaves the mark"
    );
    let trail = app.get_ok("/api/v1/audit?action=since.reset").await;
    assert_eq!(trail["total"], 0, "{trail}");
    let r = app
        .anonymous
        .post(app.url("/api/v1/incoming/shop/reset-since"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_viewer_sees_the_pages_without_action_buttons() {
    let app = TestApp::start().await;
    let tasks = app.push_products(&TestApp::products(2, 0)).await;
    app.user("vera", Role::Viewer, "vera password 1").await;
    app.user("otto", Role::Operator, "otto password 1").await;
    for (user, password, can_act) in [
        ("vera", "vera password 1", false),
        ("otto", "otto password 1", true),
    ] {
        let (cookie, _) = app.sign_in(user, password).await.unwrap();
        for path in [
            "/tasks".to_owned(),
            format!("/tasks/{}", tasks[0]),
            "/routes".to_owned(),
        ] {
            let html = app
                .anonymous
                .get(app.url(&path))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let buttons =
                html.contains("data-action=\"skip\"") || html.contains("class=\"run primary\"");
            assert_eq!(buttons, can_act, "{user} on {path}");
        }
    }
}
