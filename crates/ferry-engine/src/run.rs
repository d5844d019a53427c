//! Tasks out: a route run claims due tasks and sends each through the outgoing
//! transformers and the publisher.

use crate::Engine;
use crate::connectors::{Delivered, Publish};
use crate::schema::SchemaCheck;
use crate::transform::Transformed;
use ferry_core::config::Route;
use ferry_core::retry::{AfterFailure, Failure};
use ferry_core::task::{Level, Message, Task, TaskSummary};
use ferry_core::{TaskId, Timestamp};
use ferry_store::{ClaimRequest, Completion, Outcome, PublishedDigest, StoreError};
use futures_util::StreamExt;
use futures_util::future::Either;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Outcomes are recorded at least this often, in tasks… (SQLite updates 200 tasks in
/// one statement at about 1.7× the cost per task of 1,000)
const FLUSH_EVERY: usize = 250;
/// …and in time.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// Chunks of outcomes waiting for the writer before publishing waits for it.
const WRITE_QUEUE: usize = 4;

/// Records the outcomes a route run sends, in order; what is queued when the store is
/// free goes in one call. A task leaves `held` once its outcome is recorded.
async fn write_outcomes(
    store: Arc<dyn ferry_store::Store>,
    worker: String,
    held: Arc<Mutex<HashSet<TaskId>>>,
    mut queued: tokio::sync::mpsc::Receiver<Vec<Completion>>,
    failed: Arc<AtomicBool>,
) -> Result<(), StoreError> {
    while let Some(mut batch) = queued.recv().await {
        while let Ok(more) = queued.try_recv() {
            batch.extend(more);
        }
        if let Err(e) = store.complete(&worker, &batch).await {
            failed.store(true, Ordering::Relaxed);
            return Err(e);
        }
        let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
        for c in &batch {
            held.remove(&c.id);
        }
    }
    Ok(())
}

/// The tasks grouped by entity identifier, each group in the order given (creation
/// order), the groups in the order of their first task.
fn by_entity<T>(tasks: impl Iterator<Item = (TaskSummary, T)>) -> Vec<Vec<(TaskSummary, T)>> {
    let mut groups: Vec<Vec<(TaskSummary, T)>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (task, value) in tasks {
        match index.get(&task.entity_identifier) {
            Some(&i) => groups[i].push((task, value)),
            None => {
                index.insert(task.entity_identifier.clone(), groups.len());
                groups.push(vec![(task, value)]);
            }
        }
    }
    groups
}

/// The first task of up to `size` waiting groups whose entity is not busy, in
/// creation order, for one batch; their entities become busy. A group's later tasks
/// keep their place.
fn take_heads<T>(
    waiting: &mut VecDeque<Vec<(TaskSummary, T)>>,
    busy: &mut HashSet<String>,
    size: usize,
) -> Vec<(TaskSummary, T)> {
    let mut heads = Vec::new();
    let mut i = 0;
    while heads.len() < size && i < waiting.len() {
        let entity = &waiting[i][0].0.entity_identifier;
        if busy.contains(entity) {
            i += 1;
            continue;
        }
        busy.insert(entity.clone());
        let head = waiting[i].remove(0);
        if waiting[i].is_empty() {
            waiting.remove(i);
        } else {
            i += 1;
        }
        heads.push(head);
    }
    heads
}

/// What one route run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub claimed: u64,
    pub finished: u64,
    pub failed: u64,
    pub skipped: u64,
    pub retry: u64,
    /// Claimed but given back unstarted because the engine is stopping.
    pub released: u64,
    /// The route is disabled: nothing was claimed.
    pub disabled: bool,
}

impl RunSummary {
    fn disabled() -> RunSummary {
        RunSummary {
            disabled: true,
            ..RunSummary::default()
        }
    }

    fn add(&mut self, other: RunSummary) {
        self.claimed += other.claimed;
        self.finished += other.finished;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.retry += other.retry;
        self.released += other.released;
        self.disabled |= other.disabled;
    }
}

/// Renews the leases of a batch's held tasks (`Engine::renew_leases`) until dropped.
struct Heartbeat(Option<tokio::task::JoinHandle<()>>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(renewing) = &self.0 {
            renewing.abort();
        }
    }
}

/// Tasks claimed by this worker, their leases renewed while `heartbeat` lives.
struct Claimed {
    tasks: Vec<Task>,
    held: Arc<Mutex<HashSet<TaskId>>>,
    heartbeat: Heartbeat,
}

impl Claimed {
    /// Gives the tasks back as `new`, unstarted (after an error elsewhere in the run).
    async fn give_back(self, engine: &Engine, route_id: &str) {
        drop(self.heartbeat);
        let ids: Vec<TaskId> = self.tasks.into_iter().map(|t| t.summary.id).collect();
        if let Err(e) = engine.store.release(&engine.worker, &ids).await {
            tracing::warn!(route = route_id, error = %e, "could not give back claimed tasks; their leases will expire");
        }
    }
}

/// A batch whose tasks are all published, while its writer may still be recording.
struct Published {
    route: String,
    summary: RunSummary,
    writer: tokio::task::JoinHandle<Result<(), StoreError>>,
    /// Set once the writer has stopped on an error.
    failed: Arc<AtomicBool>,
    heartbeat: Heartbeat,
    unstarted: Vec<TaskId>,
}

impl Published {
    /// Whether recording has already failed (`recorded` answers the error).
    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits for every outcome to be recorded, then gives back the tasks not started.
    async fn recorded(self, engine: &Engine) -> Result<RunSummary, RunError> {
        let mut summary = self.summary;
        let written = match self.writer.await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        drop(self.heartbeat);
        // Given back even when the writer failed, so they need not wait out their lease.
        let released = match self.unstarted.is_empty() {
            true => Ok(0),
            false => engine.store.release(&engine.worker, &self.unstarted).await,
        };
        match (written, released) {
            (Ok(()), Ok(n)) => summary.released = n,
            (Ok(()), Err(e)) => return Err(e.into()),
            (Err(e), released) => {
                if let Err(release) = released {
                    tracing::warn!(route = self.route, error = %release, "could not give back unstarted tasks; their leases will expire");
                }
                return Err(e.into());
            }
        }
        tracing::info!(route = self.route, ?summary, "route run");
        Ok(summary)
    }
}

/// Says what a drain did before it stopped on `e`, and answers `e`.
fn drain_stopped(route_id: &str, done: RunSummary, e: RunError) -> RunError {
    tracing::warn!(route = route_id, ?done, error = %e, "draining stopped on an error; the work before it is recorded");
    e
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no route is called '{0}'")]
    UnknownRoute(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// The JSON Schema a task's payload must match before it is sent, when its entity
    /// schema has one for the outgoing side.
    fn outgoing_schema(&self, task: &TaskSummary) -> Option<&SchemaCheck> {
        self.schemas
            .get(&task.entity_schema)
            .map(|s| s.as_ref())
            .filter(|s| s.validate.outgoing())
    }

    fn route_or_err(&self, route_id: &str) -> Result<&Route, RunError> {
        self.config
            .route(route_id)
            .ok_or_else(|| RunError::UnknownRoute(route_id.to_owned()))
    }

    /// Runs one batch of a route: claims up to its batch size of due tasks, oldest
    /// first, runs the outgoing transformers and the publisher on each in order, and
    /// records every outcome. This is the worker's single step.
    ///
    /// While the batch runs its leases are renewed, so no other worker takes the tasks;
    /// when the engine is stopping, the tasks not yet started are given back as `new`.
    pub async fn run_route(&self, route_id: &str) -> Result<RunSummary, RunError> {
        let route = self.route_or_err(route_id)?;
        if route.disabled {
            return Ok(RunSummary::disabled());
        }
        if self.outgoing[route.outgoing.as_str()].1.paused() {
            return Ok(RunSummary::default());
        }
        let _one_at_a_time = self.route_locks[route_id].lock().await;
        let claimed = self.claim_batch(route_id, route, false).await?;
        if claimed.tasks.is_empty() {
            return Ok(RunSummary::default());
        }
        self.publish_batch(route_id, route, claimed)
            .await
            .recorded(self)
            .await
    }

    /// Runs batches until the route has no due task left (or the engine stops).
    ///
    /// Three batches are in hand at once: while a full batch is published, the next one
    /// is claimed and the outcomes of the one before are still being recorded, each on
    /// its own connection. Publishing keeps creation order, since a batch is published
    /// only after the one before it; a batch's leases are renewed from the moment it is
    /// claimed until its outcomes are in. Once recording a batch has failed no further
    /// batch is published: the ones claimed are given back, and the ones published
    /// are recorded as far as the store takes them.
    pub async fn drain_route(&self, route_id: &str) -> Result<RunSummary, RunError> {
        let route = self.route_or_err(route_id)?;
        if route.disabled {
            return Ok(RunSummary::disabled());
        }
        let publisher = self.outgoing[route.outgoing.as_str()].1.clone();
        if publisher.paused() {
            return Ok(RunSummary::default());
        }
        let _one_at_a_time = self.route_locks[route_id].lock().await;
        let batch = route.batch_size as usize;
        let mut total = RunSummary::default();
        // The batch published last, its outcomes perhaps still being recorded.
        let mut recording: Option<Published> = None;
        let mut claimed = self.claim_batch(route_id, route, false).await?;
        let mut stopped = loop {
            if claimed.tasks.is_empty() {
                break None;
            }
            if recording.as_ref().is_some_and(Published::failed) {
                // Its error is answered below, once the rest of it is given back.
                claimed.give_back(self, route_id).await;
                break None;
            }
            let full = claimed.tasks.len() >= batch;
            let (published, next) = if full && !self.is_stopping() && !publisher.paused() {
                let (published, next) = tokio::join!(
                    self.publish_batch(route_id, route, claimed),
                    self.claim_batch(route_id, route, true)
                );
                (published, Some(next))
            } else {
                (self.publish_batch(route_id, route, claimed).await, None)
            };
            // The batch before this one went on recording while this one was published.
            if let Some(before) = recording.replace(published) {
                match before.recorded(self).await {
                    Ok(s) => total.add(s),
                    Err(e) => {
                        if let Some(Ok(next)) = next {
                            next.give_back(self, route_id).await;
                        }
                        break Some(e);
                    }
                }
            }
            // A circuit that opened meanwhile: what was claimed goes back for later.
            if publisher.paused() {
                if let Some(Ok(next)) = next {
                    next.give_back(self, route_id).await;
                }
                break None;
            }
            claimed = match next {
                None => break None,
                // Published next (or, when the engine is stopping, given back).
                Some(Ok(next)) => next,
                Some(Err(e)) => break Some(e.into()),
            };
        };
        if let Some(last) = recording {
            match last.recorded(self).await {
                Ok(s) => total.add(s),
                Err(e) if stopped.is_none() => stopped = Some(e),
                Err(e) => {
                    tracing::warn!(route = route_id, error = %e, "the last batch's outcomes were not all recorded either; their leases will expire")
                }
            }
        }
        match stopped {
            None => Ok(total),
            Some(e) => Err(drain_stopped(route_id, total, e)),
        }
    }

    /// Claims up to the route's batch size of due tasks, oldest first, and renews their
    /// leases from then on.
    ///
    /// `beside` a publisher, which keeps the current task busy between its awaits, the
    /// claim runs as a task of its own so that it goes on meanwhile. Such a claim
    /// completes even if its caller is dropped; only `drain_route`, which publishes or
    /// gives back every batch it claims, asks for one.
    async fn claim_batch(
        &self,
        route_id: &str,
        route: &Route,
        beside: bool,
    ) -> Result<Claimed, StoreError> {
        let (store, worker, route_id) =
            (self.store.clone(), self.worker.clone(), route_id.to_owned());
        let (limit, now, lease) = (route.batch_size, self.now(), self.config.workers.lease);
        let claim = async move {
            store
                .claim(&ClaimRequest {
                    route: &route_id,
                    limit,
                    now,
                    lease,
                    worker: &worker,
                })
                .await
        };
        let tasks = if beside {
            match tokio::spawn(claim).await {
                Ok(result) => result?,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        } else {
            claim.await?
        };
        let held: Arc<Mutex<HashSet<TaskId>>> = Arc::new(Mutex::new(
            tasks.iter().map(|t| t.summary.id.clone()).collect(),
        ));
        let heartbeat = Heartbeat((!tasks.is_empty()).then(|| self.renew_leases(held.clone())));
        Ok(Claimed {
            tasks,
            held,
            heartbeat,
        })
    }

    /// Runs the outgoing transformers and the publisher on each claimed task in order,
    /// handing the outcomes to a writer task as they come; answers once the last task
    /// is published, with the writer still at work.
    async fn publish_batch(&self, route_id: &str, route: &Route, claimed: Claimed) -> Published {
        let Claimed {
            tasks: claimed,
            held,
            heartbeat,
        } = claimed;
        let mut summary = RunSummary {
            claimed: claimed.len() as u64,
            ..RunSummary::default()
        };
        // Outcomes go to a writer task, so the store records one chunk while the next
        // is published; a task stays held (its lease renewed) until its outcome is in.
        let (outcomes, queued) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_outcomes(
            self.store.clone(),
            self.worker.clone(),
            held.clone(),
            queued,
            failed.clone(),
        ));
        let (chain, publisher) = self.outgoing[route.outgoing.as_str()].clone();
        let in_flight = publisher.max_in_flight().max(1);
        // A publisher that sends batches takes the first waiting task of up to that many
        // entities in one request (never two of one entity).
        let batch = publisher.batch_size().map(|n| n.max(1));
        // With only_changed: what the route last published per entity, from the store
        // for each chunk and from this run as it goes.
        let last = crate::transform::only_changed(&chain).then(LastSent::default);
        let mut completions = Vec::with_capacity(FLUSH_EVERY);
        let mut last_flush = std::time::Instant::now();
        let mut unstarted = Vec::new();
        let mut claimed = claimed.into_iter().peekable();
        // Once the writer has stopped (on an error, which `recorded` answers), the tasks
        // left are given back unstarted rather than published with nowhere to record.
        let mut writer_gone = false;
        // Tasks of one entity go out one after the other, in creation order; up to the
        // publisher's requests in flight go out at once, each of other entities. Groups
        // (the tasks of one entity in a chunk) wait in creation order; one whose entity
        // is in flight waits for it, the others pass it.
        let mut waiting: VecDeque<Vec<(TaskSummary, Result<Transformed, String>)>> =
            VecDeque::new();
        let mut busy: HashSet<String> = HashSet::new();
        let mut running = FuturesUnordered::new();
        loop {
            let halted = self.is_stopping() || writer_gone;
            // The outgoing transformers run on a chunk at a time (one hand-off to a
            // blocking thread), enough to keep every slot busy.
            while !halted
                && waiting.len() < in_flight * batch.unwrap_or(1)
                && claimed.peek().is_some()
            {
                let chunk: Vec<Task> = claimed.by_ref().take(FLUSH_EVERY).collect();
                let (tasks, entities): (Vec<_>, Vec<_>) = chunk
                    .into_iter()
                    .map(|t| (t.summary, t.entity_data))
                    .unzip();
                let transformed = self.transform_all(&chain, entities).await;
                if let Some(last) = &last {
                    last.load(&*self.store, route_id, &tasks).await;
                }
                waiting.extend(by_entity(tasks.into_iter().zip(transformed)));
            }
            if halted {
                let left = waiting.drain(..).flatten().map(|(t, _)| t.id);
                unstarted.extend(left.chain(claimed.by_ref().map(|t| t.summary.id)));
            }
            match batch {
                None => {
                    let mut i = 0;
                    while running.len() < in_flight && i < waiting.len() {
                        if busy.contains(&waiting[i][0].0.entity_identifier) {
                            i += 1;
                            continue;
                        }
                        let group = waiting.remove(i).expect("an index below the length");
                        busy.insert(group[0].0.entity_identifier.clone());
                        running.push(Either::Left(self.process_in_order(
                            route,
                            publisher.as_ref(),
                            group,
                            last.as_ref(),
                        )));
                    }
                }
                Some(size) => {
                    while running.len() < in_flight {
                        let heads = take_heads(&mut waiting, &mut busy, size);
                        if heads.is_empty() {
                            break;
                        }
                        running.push(Either::Right(self.process_batch(
                            route,
                            publisher.as_ref(),
                            heads,
                            last.as_ref(),
                        )));
                    }
                }
            }
            let Some((entities, done)) = running.next().await else {
                break;
            };
            for entity in &entities {
                busy.remove(entity);
            }
            for c in done {
                let c = match c {
                    Ok(c) => c,
                    Err(id) => {
                        unstarted.push(id);
                        continue;
                    }
                };
                match c.outcome {
                    Outcome::Finished => summary.finished += 1,
                    Outcome::Skipped => summary.skipped += 1,
                    Outcome::Retry { .. } => summary.retry += 1,
                    Outcome::Failed { .. } => summary.failed += 1,
                }
                completions.push(c);
            }
            // Record outcomes as they come, so a crash repeats little that was done.
            if completions.len() >= FLUSH_EVERY || last_flush.elapsed() >= FLUSH_AFTER {
                let full = std::mem::replace(&mut completions, Vec::with_capacity(FLUSH_EVERY));
                writer_gone = outcomes.send(full).await.is_err();
                last_flush = std::time::Instant::now();
            }
        }
        if !completions.is_empty() {
            // An error here means the writer stopped on one, which `recorded` answers.
            let _ = outcomes.send(completions).await;
        }
        Published {
            route: route_id.to_owned(),
            summary,
            writer,
            failed,
            heartbeat,
            unstarted,
        }
    }

    /// Publishes the tasks of one entity one after the other; once the engine is
    /// stopping, the ones not started are answered as `Err` (given back unstarted).
    async fn process_in_order(
        &self,
        route: &Route,
        publisher: &dyn Publish,
        group: Vec<(TaskSummary, Result<Transformed, String>)>,
        last: Option<&LastSent>,
    ) -> (Vec<String>, Vec<Result<Completion, TaskId>>) {
        let entity = group
            .first()
            .map(|(t, _)| t.entity_identifier.clone())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(group.len());
        for (task, transformed) in group {
            // A circuit breaker that is open keeps the task as it was (not an attempt).
            if self.is_stopping() || !publisher.may_send() {
                out.push(Err(task.id));
                continue;
            }
            out.push(Ok(self
                .process(route, publisher, task, transformed, last)
                .await));
        }
        (vec![entity], out)
    }

    /// Extends the leases of `held` every third of a lease until aborted.
    fn renew_leases(&self, held: Arc<Mutex<HashSet<TaskId>>>) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let worker = self.worker.clone();
        let clock = self.clock.clone();
        let lease = self.config.workers.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let ids: Vec<TaskId> = held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                if ids.is_empty() {
                    return;
                }
                let until = clock().plus_millis(lease.as_millis() as i64);
                if let Err(e) = store.extend_leases(&worker, &ids, until).await {
                    tracing::warn!(%worker, error = %e, "could not renew leases");
                }
            }
        })
    }

    async fn process(
        &self,
        route: &Route,
        publisher: &dyn Publish,
        task: TaskSummary,
        transformed: Result<Transformed, String>,
        last: Option<&LastSent>,
    ) -> Completion {
        let mut begun = self.begin(route, &task);
        let schema = self.outgoing_schema(&task);
        let (ready, digest) = ready(&task, transformed, &mut begun.log, self.now(), last, schema);
        let result = match ready {
            Ok(Ready::Send(entity)) => publisher
                .publish(&entity, &task.id)
                .await
                .map(Sent::Delivered),
            Ok(Ready::Done(sent)) => Ok(sent),
            Err(f) => Err(f),
        };
        self.end(route, task, begun, result, digest, last)
    }

    /// Publishes the tasks of a batch (each of another entity) in one request; those
    /// whose transformers failed or dropped the entity, or whose payload is unchanged
    /// (`only_changed`), are not sent.
    async fn process_batch(
        &self,
        route: &Route,
        publisher: &dyn Publish,
        batch: Vec<(TaskSummary, Result<Transformed, String>)>,
        last: Option<&LastSent>,
    ) -> (Vec<String>, Vec<Result<Completion, TaskId>>) {
        let entities = batch
            .iter()
            .map(|(t, _)| t.entity_identifier.clone())
            .collect();
        if self.is_stopping() || !publisher.may_send() {
            return (
                entities,
                batch.into_iter().map(|(t, _)| Err(t.id)).collect(),
            );
        }
        let mut begun = Vec::with_capacity(batch.len());
        for (task, transformed) in batch {
            let mut attempt = self.begin(route, &task);
            let schema = self.outgoing_schema(&task);
            let (ready, digest) = ready(
                &task,
                transformed,
                &mut attempt.log,
                self.now(),
                last,
                schema,
            );
            begun.push((task, attempt, ready, digest));
        }
        let items: Vec<(&Value, &TaskId)> = begun
            .iter()
            .filter_map(|(t, _, ready, _)| match ready {
                Ok(Ready::Send(entity)) => Some((entity, &t.id)),
                _ => None,
            })
            .collect();
        let mut answers = publisher.publish_many(&items).await.into_iter();
        let out = begun
            .into_iter()
            .map(|(task, attempt, ready, digest)| {
                let result = match ready {
                    Ok(Ready::Send(_)) => answers
                        .next()
                        .unwrap_or_else(|| {
                            Err(Failure {
                                message: "the publisher answered fewer outcomes than tasks".into(),
                                ..Failure::default()
                            })
                        })
                        .map(Sent::Delivered),
                    Ok(Ready::Done(sent)) => Ok(sent),
                    Err(f) => Err(f),
                };
                Ok(self.end(route, task, attempt, result, digest, last))
            })
            .collect();
        (entities, out)
    }

    /// The start of an attempt: when, and its first log line.
    fn begin(&self, route: &Route, task: &TaskSummary) -> Begun {
        let started_at = self.now();
        let log = vec![Message::new(
            started_at,
            Level::Info,
            format!(
                "attempt {} of {} by {}",
                task.attempts,
                max_label(route),
                self.worker
            ),
        )];
        Begun { started_at, log }
    }

    /// The end of an attempt: its outcome from what the publisher answered, by the
    /// route's retry policy. A delivered payload's `digest` (with only_changed) becomes
    /// the route's last for the entity.
    fn end(
        &self,
        route: &Route,
        task: TaskSummary,
        begun: Begun,
        result: Result<Sent, Failure>,
        digest: Option<String>,
        last: Option<&LastSent>,
    ) -> Completion {
        let Begun {
            started_at,
            mut log,
        } = begun;
        let attempt = task.attempts;
        let ended_at = self.now();
        let mut response = None;
        let mut published = None;
        let outcome = match result {
            Ok(Sent::Delivered(delivered)) => {
                log.push(Message::new(
                    ended_at,
                    Level::Info,
                    format!("published: {}", delivered.note),
                ));
                response = delivered.response;
                if let (Some(l), Some(d)) = (last, digest) {
                    l.sent(&task, &d);
                    published = Some(d);
                }
                Outcome::Finished
            }
            Ok(Sent::Dropped) => {
                log.push(Message::new(
                    ended_at,
                    Level::Info,
                    "skipped: an outgoing transformer dropped the entity",
                ));
                Outcome::Skipped
            }
            Ok(Sent::Unchanged(since)) => {
                log.push(Message::new(
                    ended_at,
                    Level::Info,
                    format!("skipped: unchanged since task {since}"),
                ));
                Outcome::Skipped
            }
            Err(failure) => match route.retry.after_failure(attempt, &failure, ended_at) {
                AfterFailure::Retry { at } => {
                    log.push(Message::new(
                        ended_at,
                        Level::Warn,
                        format!("{}; next attempt at {at}", failure.message),
                    ));
                    Outcome::Retry {
                        at,
                        error: failure.message,
                    }
                }
                AfterFailure::Fail => {
                    let why = if route.retry.enabled && attempt >= route.retry.max_attempts {
                        format!(
                            "{} (attempt {attempt} of {}: no retries left)",
                            failure.message, route.retry.max_attempts
                        )
                    } else {
                        failure.message.clone()
                    };
                    log.push(Message::new(ended_at, Level::Error, why));
                    Outcome::Failed {
                        error: failure.message,
                    }
                }
            },
        };
        Completion {
            id: task.id,
            attempt,
            started_at,
            ended_at,
            outcome,
            messages: log,
            response,
            published,
        }
    }
}

/// An attempt begun: when, and its log so far.
struct Begun {
    started_at: Timestamp,
    log: Vec<Message>,
}

/// What became of a task's payload, short of a failure.
enum Sent {
    Delivered(Delivered),
    /// An outgoing transformer dropped the entity.
    Dropped,
    /// The payload is the one this other task published last (only_changed).
    Unchanged(TaskId),
}

/// A task's payload, to send or settled without sending.
enum Ready {
    Send(Value),
    Done(Sent),
}

/// The payload of `task` from what the outgoing transformers made, unless they dropped
/// it or (with only_changed) it was published already; with only_changed, the digest
/// of a payload to send.
fn ready(
    task: &TaskSummary,
    transformed: Result<Transformed, String>,
    log: &mut Vec<Message>,
    now: Timestamp,
    last: Option<&LastSent>,
    schema: Option<&SchemaCheck>,
) -> (Result<Ready, Failure>, Option<String>) {
    let entity = match prepared(transformed, log, now) {
        Ok(Some(entity)) => entity,
        Ok(None) => return (Ok(Ready::Done(Sent::Dropped)), None),
        Err(f) => return (Err(f), None),
    };
    if let Some(schema) = schema {
        let violations = schema.violations(&entity);
        if !violations.is_empty() {
            // The same payload would fail the same way on every attempt.
            let failure = Failure {
                message: format!("the payload {}", schema.describe(&violations)),
                permanent: true,
                ..Failure::default()
            };
            return (Err(failure), None);
        }
    }
    let Some(last) = last else {
        return (Ok(Ready::Send(entity)), None);
    };
    let digest = LastSent::digest(&entity);
    match last.unchanged(task, &digest) {
        Some(since) => (Ok(Ready::Done(Sent::Unchanged(since))), None),
        None => (Ok(Ready::Send(entity)), Some(digest)),
    }
}

/// What a route last published per entity, for `only_changed`: the store's, loaded for
/// each chunk of claimed tasks, and this run's, as its tasks finish.
#[derive(Default)]
struct LastSent(Mutex<HashMap<String, PublishedDigest>>);

impl LastSent {
    /// The digest of a payload's value (its canonical JSON: a payload whose keys only
    /// moved is unchanged).
    fn digest(payload: &Value) -> String {
        ferry_core::digest::sha256_hex(ferry_core::digest::canonical_json(payload).as_bytes())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, PublishedDigest>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds what the store has for the entities of `tasks` that this run has not
    /// published yet. A store that cannot answer leaves them unknown: they are sent.
    async fn load(&self, store: &dyn ferry_store::Store, route: &str, tasks: &[TaskSummary]) {
        let entities: Vec<String> = {
            let known = self.map();
            let mut e: Vec<String> = tasks
                .iter()
                .filter(|t| !known.contains_key(&t.entity_identifier))
                .map(|t| t.entity_identifier.clone())
                .collect();
            e.sort_unstable();
            e.dedup();
            e
        };
        if entities.is_empty() {
            return;
        }
        match store.published_digests(route, &entities).await {
            Ok(found) => {
                let mut known = self.map();
                for (entity, d) in found {
                    known.entry(entity).or_insert(d);
                }
            }
            Err(e) => {
                tracing::warn!(route, error = %e, "only_changed: could not read what was published; these tasks are sent");
            }
        }
    }

    /// The task that last published this payload for the entity, when it was another
    /// task (a task retried by hand is sent again).
    fn unchanged(&self, task: &TaskSummary, digest: &str) -> Option<TaskId> {
        let known = self.map();
        let last = known.get(&task.entity_identifier)?;
        (last.digest == digest && last.task != task.id).then(|| last.task.clone())
    }

    fn sent(&self, task: &TaskSummary, digest: &str) {
        self.map().insert(
            task.entity_identifier.clone(),
            PublishedDigest {
                digest: digest.to_owned(),
                task: task.id.clone(),
            },
        );
    }
}

/// The entity to publish from what the outgoing transformers made (their notes go to
/// `log`): `None` when they dropped it, a failure when they failed or made several.
fn prepared(
    transformed: Result<Transformed, String>,
    log: &mut Vec<Message>,
    now: Timestamp,
) -> Result<Option<Value>, Failure> {
    let t = transformed.map_err(|message| Failure {
        message,
        ..Failure::default()
    })?;
    log.extend(
        t.notes
            .into_iter()
            .map(|n| Message::new(now, Level::Info, n)),
    );
    let mut outputs = t.outputs;
    match outputs.len() {
        0 => Ok(None),
        1 => Ok(outputs.pop()),
        n => Err(Failure {
            message: format!(
                "the outgoing transformers made {n} values of one entity; a task publishes exactly one"
            ),
            ..Failure::default()
        }),
    }
}

fn max_label(route: &Route) -> String {
    if route.retry.enabled {
        route.retry.max_attempts.to_string()
    } else {
        "1 (retry off)".to_owned()
    }
}
