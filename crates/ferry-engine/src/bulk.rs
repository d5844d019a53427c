//! Bulk actions by filter as tracked jobs: the action is recorded and counted at once,
//! then worked through in the background in batches of
//! [`FILTER_ACTION_BATCH`](ferry_store::FILTER_ACTION_BATCH), each its own short
//! transaction, so workers and the pages keep the database between two batches. After
//! every batch the job's progress is stored (any node can show it) and a request to
//! cancel is honoured.

use crate::Engine;
use ferry_core::{JobState, TaskFilter, TaskId, Timestamp};
use ferry_store::{
    ActionRequest, BulkJob, FILTER_ACTION_BATCH, FilterAction, FilterStep, Store, StoreError,
};
use std::sync::Arc;
use std::time::Duration;

/// Tries of one batch before a job fails: a busy database or a dropped connection
/// gets a second chance.
const BATCH_TRIES: u32 = 3;

impl Engine {
    /// Starts skipping or retrying every task that matches `filter` in the background;
    /// answers the job as stored, already counted.
    pub async fn start_bulk_job(
        &self,
        filter: TaskFilter,
        request: ActionRequest,
    ) -> Result<BulkJob, StoreError> {
        self.start_bulk_job_in_batches(filter, request, FILTER_ACTION_BATCH)
            .await
    }

    /// [`Engine::start_bulk_job`] with batches of `batch` tasks.
    pub async fn start_bulk_job_in_batches(
        &self,
        filter: TaskFilter,
        request: ActionRequest,
        batch: u32,
    ) -> Result<BulkJob, StoreError> {
        let batch = batch.max(1);
        let store = self.store.clone();
        let begun = store.begin_filter_action(&filter, &request).await?;
        let id = store
            .add_bulk_job(begun.action_id, begun.matched, begun.eligible, request.at)
            .await?;
        let job = store
            .bulk_job(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("bulk job {id} was not recorded")))?;
        tracing::info!(
            job = id,
            action = request.action.as_str(),
            actor = %request.actor,
            matched = begun.matched,
            eligible = begun.eligible,
            "bulk job started"
        );
        tokio::spawn(work_through(store, id, begun, filter, request, batch));
        Ok(job)
    }
}

/// Runs a started job's batches to the end, then ends it and records its counts.
async fn work_through(
    store: Arc<dyn Store>,
    id: i64,
    begun: FilterAction,
    filter: TaskFilter,
    request: ActionRequest,
    batch: u32,
) {
    let mut changed = 0u64;
    let mut after = None;
    let (state, error) = loop {
        let done = match step(
            &*store,
            &filter,
            &request,
            begun.action_id,
            after.as_ref(),
            batch,
        )
        .await
        {
            Ok(done) => done,
            Err(e) => break (JobState::Failed, Some(e.to_string())),
        };
        changed += u64::from(done.changed);
        if !done.more {
            break (JobState::Done, None);
        }
        after = done.resume_after;
        match store.bulk_job_progress(id, changed, Timestamp::now()).await {
            Ok(false) => {}
            Ok(true) => break (JobState::Cancelled, None),
            Err(e) => break (JobState::Failed, Some(e.to_string())),
        }
        // Let other requests on this runtime in between two batches.
        tokio::task::yield_now().await;
    };
    let outcome = match state {
        JobState::Done => begun.outcome(changed),
        _ => begun.stopped_outcome(changed),
    };
    if let Err(e) = store.finish_filter_action(begun.action_id, &outcome).await {
        tracing::error!(job = id, error = %e, "could not record the bulk job's counts in the audit trail");
    }
    if let Err(e) = store
        .end_bulk_job(id, state, changed, error.as_deref(), Timestamp::now())
        .await
    {
        tracing::error!(job = id, error = %e, "could not record the end of the bulk job");
    }
    match &error {
        None => tracing::info!(job = id, %state, changed, "bulk job ended"),
        Some(e) => tracing::error!(job = id, changed, error = %e, "bulk job failed"),
    }
}

/// One batch, tried again after a pause when the database is briefly unavailable.
async fn step(
    store: &dyn Store,
    filter: &TaskFilter,
    request: &ActionRequest,
    action_id: i64,
    after: Option<&TaskId>,
    batch: u32,
) -> Result<FilterStep, StoreError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match store
            .step_filter_action(filter, request, action_id, after, batch)
            .await
        {
            Ok(done) => return Ok(done),
            Err(e) if tries < BATCH_TRIES => {
                tracing::warn!(error = %e, tries, "a bulk job's batch failed; trying again");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(tries))).await;
            }
            Err(e) => return Err(e),
        }
    }
}
