//! Bulk actions by filter as tracked jobs: the action is recorded and counted at once,
//! then worked through in the background in batches of
//! [`FILTER_ACTION_BATCH`](ferry_store::FILTER_ACTION_BATCH), each its own short
//! transaction, so workers and the pages keep the database between two batches. After
//! every batch the job's progress is stored (any node can show it) and a request to
//! cancel is honoured. Beside the batches, a heartbeat renews the job's sign of life
//! every [`JOB_HEARTBEAT_MS`], so a job whose node stopped shows as interrupted within
//! [`STALE_AFTER_MS`](ferry_core::bulk::STALE_AFTER_MS); such a job can be resumed by
//! one node ([`Engine::resume_bulk_job`]), which reruns the same action and so changes
//! only what is left.

use crate::Engine;
use crate::engine::Clock;
use ferry_core::bulk::JOB_HEARTBEAT_MS;
use ferry_core::filter::{Accept, TaskQuery};
use ferry_core::{Action, JobState, TaskFilter, TaskId};
use ferry_store::{
    ActionRequest, BulkJob, FILTER_ACTION_BATCH, FilterAction, FilterStep, Store, StoreError,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
        let runner = Runner {
            store,
            id,
            name: self.worker.clone(),
            clock: self.clock.clone(),
        };
        tokio::spawn(runner.work_through(begun, filter, request, batch, 0));
        Ok(job)
    }

    /// Resumes an interrupted job on this node: takes it over (one node wins; the others
    /// are refused as if it were running) and reruns the same operator action from the
    /// start, which changes only what is left (the tasks it changed were updated after
    /// the action began), adding to the same counts. Answers the job, running again.
    pub async fn resume_bulk_job(&self, id: i64) -> Result<BulkJob, ResumeError> {
        self.resume_bulk_job_in_batches(id, FILTER_ACTION_BATCH)
            .await
    }

    /// [`Engine::resume_bulk_job`] with batches of `batch` tasks.
    pub async fn resume_bulk_job_in_batches(
        &self,
        id: i64,
        batch: u32,
    ) -> Result<BulkJob, ResumeError> {
        let store = self.store.clone();
        let job = store.bulk_job(id).await?.ok_or(ResumeError::Unknown(id))?;
        let now = self.now();
        let state = job.state_at(now);
        if state != JobState::Interrupted {
            return Err(ResumeError::NotInterrupted { id, state });
        }
        let (filter, request) = stored_action(&job)?;
        if !store.take_over_bulk_job(id, &self.worker, now).await? {
            // Another node took it over in between: it runs again.
            return Err(ResumeError::NotInterrupted {
                id,
                state: JobState::Running,
            });
        }
        let begun = FilterAction {
            action_id: job.action.id,
            matched: job.matched,
            eligible: job.eligible,
        };
        // The entry's count is that of the batches that committed (each adds its own in
        // its transaction); the job's may lag behind it by the last batch.
        let changed = job.action.outcome.changed.max(job.changed);
        let job = store.bulk_job(id).await?.ok_or(ResumeError::Unknown(id))?;
        tracing::info!(job = id, changed, runner = %self.worker, "bulk job resumed");
        let runner = Runner {
            store,
            id,
            name: self.worker.clone(),
            clock: self.clock.clone(),
        };
        tokio::spawn(runner.work_through(begun, filter, request, batch.max(1), changed));
        Ok(job)
    }
}

/// Why a bulk job could not be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("no bulk job {0}")]
    Unknown(i64),
    #[error("bulk job {id} is {state}, not interrupted: only an interrupted job can be resumed")]
    NotInterrupted { id: i64, state: JobState },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The filter and the request of a job's operator action, as its audit entry has them.
fn stored_action(job: &BulkJob) -> Result<(TaskFilter, ActionRequest), StoreError> {
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!(
            "bulk job {}: the audit entry's {what} cannot be read back",
            job.id
        ))
    };
    let mut pairs = Vec::new();
    let object = job.action.target.get("filter").and_then(|f| f.as_object());
    for (k, v) in object.ok_or_else(|| corrupt("filter"))? {
        match v {
            serde_json::Value::String(s) => pairs.push((k.as_str(), s.as_str())),
            serde_json::Value::Array(items) => {
                for item in items {
                    pairs.push((k.as_str(), item.as_str().ok_or_else(|| corrupt("filter"))?));
                }
            }
            _ => return Err(corrupt("filter")),
        }
    }
    let filter = TaskQuery::parse(pairs, Accept::FiltersOnly)
        .map_err(|_| corrupt("filter"))?
        .filter;
    let action = match job.action.action.as_str() {
        "skip" => Action::Skip,
        "retry" => Action::Retry,
        _ => return Err(corrupt("action")),
    };
    let request = ActionRequest {
        action,
        actor: job.action.actor.clone(),
        reason: job.action.reason.clone(),
        // The same moment: tasks changed since (by its earlier batches) are left out.
        at: job.action.at,
        origin: job.action.origin.clone(),
    };
    Ok((filter, request))
}

/// The node working one job.
struct Runner {
    store: Arc<dyn Store>,
    id: i64,
    /// This engine's worker name, stored as the job's runner.
    name: String,
    clock: Clock,
}

/// Renews a job's sign of life every [`JOB_HEARTBEAT_MS`] until dropped; `lost` is set
/// once the store answers that the job is no longer this node's.
struct Heartbeat {
    renewing: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

impl Runner {
    fn heartbeat(&self) -> Heartbeat {
        let lost = Arc::new(AtomicBool::new(false));
        let (store, id, name, clock) = (
            self.store.clone(),
            self.id,
            self.name.clone(),
            self.clock.clone(),
        );
        let flag = lost.clone();
        let renewing = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(JOB_HEARTBEAT_MS as u64));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match store.renew_bulk_job(id, &name, clock()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(job = id, error = %e, "could not renew a bulk job's sign of life");
                    }
                }
            }
        });
        Heartbeat { renewing, lost }
    }

    /// Runs a started job's batches to the end, then ends it and records its counts;
    /// `changed` is what earlier runs of it did.
    async fn work_through(
        self,
        begun: FilterAction,
        filter: TaskFilter,
        request: ActionRequest,
        batch: u32,
        mut changed: u64,
    ) {
        let (store, id) = (self.store.clone(), self.id);
        let heartbeat = self.heartbeat();
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
            if heartbeat.lost.load(Ordering::SeqCst) {
                // Taken over by another node (this one was silent too long): it goes on.
                tracing::warn!(
                    job = id,
                    changed,
                    "bulk job taken over by another node; stopping here"
                );
                return;
            }
            match store.bulk_job_progress(id, changed, (self.clock)()).await {
                Ok(false) => {}
                Ok(true) => break (JobState::Cancelled, None),
                Err(e) => break (JobState::Failed, Some(e.to_string())),
            }
            // Let other requests on this runtime in between two batches.
            tokio::task::yield_now().await;
        };
        drop(heartbeat);
        let outcome = match state {
            JobState::Done => begun.outcome(changed),
            _ => begun.stopped_outcome(changed),
        };
        if let Err(e) = store.finish_filter_action(begun.action_id, &outcome).await {
            tracing::error!(job = id, error = %e, "could not record the bulk job's counts in the audit trail");
        }
        if let Err(e) = store
            .end_bulk_job(id, state, changed, error.as_deref(), (self.clock)())
            .await
        {
            tracing::error!(job = id, error = %e, "could not record the end of the bulk job");
        }
        match &error {
            None => tracing::info!(job = id, %state, changed, "bulk job ended"),
            Some(e) => tracing::error!(job = id, changed, error = %e, "bulk job failed"),
        }
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
