//! `/api/v1/bulk-jobs`: bulk actions by filter as tracked jobs, over real HTTP on a
//! real SQLite store.

mod common;

use common::{TestApp, assert_error, client_with_token};
use ferry_core::filter::{Accept, TaskQuery};
use ferry_core::{Action, Role, Timestamp};
use ferry_store::ActionRequest;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn until_ended(app: &TestApp, id: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = app.get_ok(&format!("/api/v1/bulk-jobs/{id}")).await;
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "the job did not end: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_bulk_job_answers_at_once_counted_and_reports_its_progress_to_the_end() {
    let app = TestApp::start().await;
    // 1,500 products × 4 routes = 6,000 tasks; strict fails every one.
    for chunk in 0..3 {
        let ndjson: String = TestApp::products(500, chunk * 500)
            .iter()
            .map(|p| format!("{p}\n"))
            .collect();
        let r = app
            .post_raw("/api/v1/webhooks/shop", "application/x-ndjson", ndjson)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    app.run_route("strict").await;

    let r = app
        .post(
            "/api/v1/bulk-jobs",
            &json!({"action": "retry", "filter": {"route": ["strict", "idle"]}, "reason": "ERP is back"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/bulk-jobs/{}", job["id"]));
    assert_eq!(job["action"], "retry");
    assert_eq!(job["actor"], "token:test-admin");
    assert_eq!(job["reason"], "ERP is back");
    assert_eq!(job["filter"], json!({"route": ["strict", "idle"]}));
    // 1,500 failed on strict can be retried; 1,500 new on idle cannot.
    assert_eq!(
        (job["matched"].as_u64(), job["eligible"].as_u64()),
        (Some(3_000), Some(1_500))
    );

    let done = until_ended(&app, &job["id"]).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["changed"], 1_500);
    assert_eq!(done["progress"], 1.0);
    assert!(done["finished_at"].is_string());
    let counts = app.get_ok("/api/v1/tasks/counts?route=strict").await;
    assert_eq!(counts["by_status"]["new"], 1_500);

    // The audit trail has the action with its final counts.
    let audit = app.get_ok("/api/v1/audit?action=retry").await;
    let entry = &audit["items"][0];
    assert_eq!(
        (&entry["matched"], &entry["changed"], &entry["ineligible"]),
        (&json!(3_000), &json!(1_500), &json!(1_500)),
        "{entry}"
    );
    // And the list has the job, newest first; none is running.
    let list = app.get_ok("/api/v1/bulk-jobs").await;
    assert_eq!(list["items"][0]["id"], job["id"]);
    let running = app.get_ok("/api/v1/bulk-jobs?state=running").await;
    assert_eq!(running["items"], json!([]));

    // An ended job cannot be cancelled.
    let r = app
        .post(
            &format!("/api/v1/bulk-jobs/{}/cancel", job["id"]),
            &json!({}),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "job_ended", "nothing to cancel").await;
}

#[tokio::test]
async fn bad_bulk_job_requests_get_a_clear_error_and_change_nothing() {
    let app = TestApp::start().await;
    app.populate(20, 0).await;
    let before = app.get_ok("/api/v1/tasks/counts").await;
    for (body, code, needle) in [
        (
            json!({"action": "delete", "filter": {}}),
            "invalid_action",
            "use skip or retry",
        ),
        (
            json!({"action": "skip"}),
            "invalid_json",
            "missing field `filter`",
        ),
        (
            json!({"action": "skip", "filter": {"status": ["done"]}}),
            "invalid_parameter",
            "done",
        ),
        (
            json!({"action": "skip", "filter": {}, "limit": 5}),
            "invalid_json",
            "unknown field `limit`",
        ),
        (
            json!({"action": "skip", "filter": {"route": 5}}),
            "invalid_parameter",
            "filter.route",
        ),
    ] {
        let r = app.post("/api/v1/bulk-jobs", &body).await;
        assert_error(r, StatusCode::BAD_REQUEST, code, needle).await;
    }
    let r = app
        .post_raw("/api/v1/bulk-jobs", "application/json", "")
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "missing_body", "action").await;
    for path in ["/api/v1/bulk-jobs/abc", "/api/v1/bulk-jobs/999999"] {
        assert_error(
            app.get(path).await,
            StatusCode::NOT_FOUND,
            "unknown_job",
            "GET /api/v1/bulk-jobs",
        )
        .await;
    }
    let r = app.post("/api/v1/bulk-jobs/42/cancel", &json!({})).await;
    assert_error(r, StatusCode::NOT_FOUND, "unknown_job", "42").await;
    for query in ["state=done", "limit=0", "limit=101", "page=2"] {
        let r = app.get(&format!("/api/v1/bulk-jobs?{query}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    assert_eq!(app.get_ok("/api/v1/tasks/counts").await, before);
    assert_eq!(app.get_ok("/api/v1/bulk-jobs").await["items"], json!([]));
}

#[tokio::test]
async fn viewers_follow_bulk_jobs_but_only_operators_start_or_cancel_them() {
    let app = TestApp::start().await;
    app.populate(10, 0).await;
    let viewer = client_with_token(&app.token("watcher", Role::Viewer).await);
    let r = viewer
        .post(app.url("/api/v1/bulk-jobs"))
        .json(&json!({"action": "skip", "filter": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let operator = client_with_token(&app.token("night-shift", Role::Operator).await);
    let r = operator
        .post(app.url("/api/v1/bulk-jobs"))
        .json(&json!({"action": "skip", "filter": {"route": "idle"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["actor"], "token:night-shift");
    let seen = viewer
        .get(app.url(&format!("/api/v1/bulk-jobs/{}", job["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), StatusCode::OK);
    let r = viewer
        .post(app.url(&format!("/api/v1/bulk-jobs/{}/cancel", job["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let done = until_ended(&app, &job["id"]).await;
    assert_eq!(done["state"], "done");
}

#[tokio::test]
async fn an_interrupted_job_is_resumed_to_its_end_and_a_done_or_unknown_one_is_refused() {
    let app = TestApp::start().await;
    app.populate(10, 0).await;
    // A node began the job long ago and stopped before its first batch.
    let store = app.state.store().clone();
    let filter = TaskQuery::parse([("route", "idle")], Accept::FiltersOnly)
        .unwrap()
        .filter;
    let request = ActionRequest {
        action: Action::Skip,
        actor: "alice".into(),
        reason: Some("range withdrawn".into()),
        at: Timestamp::now(),
        origin: None,
    };
    let begun = store.begin_filter_action(&filter, &request).await.unwrap();
    assert!(begun.eligible > 0);
    let long_ago = Timestamp::from_millis(request.at.millis() - 60_000);
    let id = store
        .add_bulk_job(begun.action_id, begun.matched, begun.eligible, long_ago)
        .await
        .unwrap();
    let job = app.get_ok(&format!("/api/v1/bulk-jobs/{id}")).await;
    assert_eq!(job["state"], "interrupted", "{job}");
    assert_eq!(
        job["seconds_left"],
        Value::Null,
        "no time left shown: {job}"
    );

    let r = app
        .post(&format!("/api/v1/bulk-jobs/{id}/resume"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/api/v1/bulk-jobs/{id}")
    );
    let resumed: Value = r.json().await.unwrap();
    assert_eq!(resumed["state"], "running", "{resumed}");
    let done = until_ended(&app, &json!(id)).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["changed"], begun.eligible);
    let audit = app.get_ok("/api/v1/audit?action=skip").await;
    let entry = &audit["items"][0];
    assert_eq!(entry["changed"], begun.eligible, "{entry}");
    let resumes = app.get_ok("/api/v1/audit?action=bulk.resume").await;
    assert_eq!(resumes["items"].as_array().unwrap().len(), 1, "{resumes}");

    let r = app
        .post(&format!("/api/v1/bulk-jobs/{id}/resume"), &json!({}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "job_not_interrupted", "is done").await;
    let r = app
        .post("/api/v1/bulk-jobs/999999/resume", &json!({}))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "unknown_job", "999999").await;
}
