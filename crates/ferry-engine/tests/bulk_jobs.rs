//! Bulk actions by filter as tracked jobs, on the engine and a real SQLite store.

mod common;

use common::{Harness, eventually, products};
use ferry_core::bulk::STALE_AFTER_MS;
use ferry_core::{Action, JobState, Status, TaskFilter};
use ferry_engine::ResumeError;
use ferry_store::{ActionRequest, BulkJob};
use std::time::Duration;

const CONFIG: &str = r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = { type = "webhook" }

[[outgoing]]
id = "archive"
publisher = { type = "file", path = "out/archive.ndjson" }

[[routes]]
id = "archive"
incoming = ["in"]
outgoing = "archive"
"#;

fn skip_by(h: &Harness, actor: &str) -> ActionRequest {
    ActionRequest {
        action: Action::Skip,
        actor: actor.into(),
        reason: Some("supplier withdrew the range".into()),
        at: h.clock.now(),
        origin: None,
    }
}

async fn when_ended(h: &Harness, id: i64) -> BulkJob {
    let store = h.engine.store().clone();
    eventually(Duration::from_secs(30), "the bulk job ends", || {
        let store = store.clone();
        async move {
            let job = store.bulk_job(id).await.unwrap().unwrap();
            job.state.is_finished()
        }
    })
    .await;
    h.engine.store().bulk_job(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_bulk_job_works_through_every_batch_and_records_its_counts_in_the_audit_trail() {
    let h = Harness::new(CONFIG).await;
    h.push("in", products(1_000)).await;
    h.clock.advance(Duration::from_secs(1));
    let job = h
        .engine
        .start_bulk_job_in_batches(TaskFilter::default(), skip_by(&h, "alice"), 64)
        .await
        .unwrap();
    assert_eq!((job.matched, job.eligible), (1_000, 1_000));
    assert_eq!(job.action.actor, "alice");

    let job = when_ended(&h, job.id).await;
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.changed, 1_000);
    assert!(job.finished_at.is_some());
    assert_eq!(h.counts().await.get(Status::Skipped), 1_000);
    let o = job.action.outcome;
    assert_eq!((o.matched, o.changed, o.ineligible), (1_000, 1_000, 0));
}

#[tokio::test]
async fn a_cancelled_bulk_job_stops_between_batches_and_keeps_what_it_did() {
    let h = Harness::new(CONFIG).await;
    h.push("in", products(2_000)).await;
    h.clock.advance(Duration::from_secs(1));
    let job = h
        .engine
        .start_bulk_job_in_batches(TaskFilter::default(), skip_by(&h, "alice"), 10)
        .await
        .unwrap();
    let asked = h
        .engine
        .store()
        .cancel_bulk_job(job.id, "bob")
        .await
        .unwrap()
        .unwrap();
    assert!(asked.cancel_requested);

    let job = when_ended(&h, job.id).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.cancelled_by.as_deref(), Some("bob"));
    assert!(
        job.changed > 0 && job.changed < 2_000 && job.changed % 10 == 0,
        "stopped after whole batches: {}",
        job.changed
    );
    // Exactly the batches done stay done.
    assert_eq!(h.counts().await.get(Status::Skipped), job.changed);
    assert_eq!(h.counts().await.get(Status::New), 2_000 - job.changed);
    let o = job.action.outcome;
    assert_eq!(
        (o.matched, o.changed, o.ineligible),
        (2_000, job.changed, 0)
    );
}

#[tokio::test]
async fn a_bulk_job_with_nothing_eligible_is_done_at_once() {
    let h = Harness::new(CONFIG).await;
    h.push("in", products(5)).await;
    let retry = ActionRequest {
        action: Action::Retry,
        ..skip_by(&h, "alice")
    };
    let job = h
        .engine
        .start_bulk_job(TaskFilter::default(), retry)
        .await
        .unwrap();
    assert_eq!((job.matched, job.eligible), (5, 0));
    let job = when_ended(&h, job.id).await;
    assert_eq!((job.state, job.changed), (JobState::Done, 0));
    let o = job.action.outcome;
    assert_eq!((o.matched, o.changed, o.ineligible), (5, 0, 5));
}

#[tokio::test]
async fn a_job_whose_node_is_gone_is_interrupted_and_resumed_finishes_only_what_is_left() {
    let h = Harness::new(CONFIG).await;
    h.push("in", products(300)).await;
    h.clock.advance(Duration::from_secs(1));
    // A node began the job and ran one batch, then stopped: nothing renews the job.
    let store = h.engine.store().clone();
    let filter = TaskFilter::default();
    let request = skip_by(&h, "alice");
    let begun = store.begin_filter_action(&filter, &request).await.unwrap();
    let id = store
        .add_bulk_job(begun.action_id, begun.matched, begun.eligible, request.at)
        .await
        .unwrap();
    let step = store
        .step_filter_action(&filter, &request, begun.action_id, None, 100)
        .await
        .unwrap();
    assert_eq!(step.changed, 100);
    let refused = h.engine.resume_bulk_job_in_batches(id, 64).await;
    assert!(
        matches!(
            refused,
            Err(ResumeError::NotInterrupted {
                state: JobState::Running,
                ..
            })
        ),
        "a job still alive is not resumed: {refused:?}"
    );

    h.clock
        .advance(Duration::from_millis(STALE_AFTER_MS as u64 + 1));
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(job.state_at(h.clock.now()), JobState::Interrupted);
    assert_eq!(job.action.outcome.changed, 100, "the batch that committed");

    let resumed = h.engine.resume_bulk_job_in_batches(id, 64).await.unwrap();
    assert_eq!(resumed.state_at(h.clock.now()), JobState::Running);
    assert_eq!(resumed.runner.as_deref(), Some(h.engine.worker()));
    let again = h.engine.resume_bulk_job(id).await;
    assert!(
        matches!(again, Err(ResumeError::NotInterrupted { .. })),
        "resumed once only: {again:?}"
    );

    let job = when_ended(&h, id).await;
    assert_eq!((job.state, job.changed), (JobState::Done, 300));
    let o = job.action.outcome;
    assert_eq!((o.matched, o.changed, o.ineligible), (300, 300, 0));
    assert_eq!(h.counts().await.get(Status::Skipped), 300);
    let tasks = store.tasks_after(None, 1_000).await.unwrap();
    assert_eq!(tasks.len(), 300);
    for task in &tasks {
        let actions = store.task_actions(&task.summary.id).await.unwrap();
        assert_eq!(
            actions.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![begun.action_id],
            "acted on once"
        );
    }
    assert!(matches!(
        h.engine.resume_bulk_job(id + 1_000).await,
        Err(ResumeError::Unknown(_))
    ));
}
