use async_trait::async_trait;
use ferry_core::task::{Message, NewTask, Phase, Task, TaskSummary};
use ferry_core::{Action, NotEligible, Status, TaskFilter, TaskId, TaskQuery, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
}

impl StoreError {
    /// The store could not be had in time (every connection in use, or SQLite's
    /// writer held past the busy timeout): the request may succeed if sent again.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::PoolTimedOut) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes.
                e.try_downcast_ref::<sqlx::sqlite::SqliteError>()
                    .and_then(sqlx::error::DatabaseError::code)
                    .is_some_and(|c| c.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6)))
            }
            _ => false,
        }
    }

    /// PostgreSQL refused a text value it cannot hold (a NUL character): bad input
    /// that got past the checks at the edge, never a fault of the store.
    pub fn is_unstorable_text(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e))
            if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some_and(|e| matches!(e.code(), "22021" | "22P05")))
    }
}

/// Why a single-task action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no task has the identifier {0}")]
    NotFound(TaskId),
    #[error("task {id}: {reason}")]
    NotEligible { id: TaskId, reason: NotEligible },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of the list with the total of matching tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    pub items: Vec<TaskSummary>,
    /// Every match when `total_exact`; otherwise a lower bound (a capped count stopped
    /// at [`COUNT_CAP`]) or, for a list not counted, 0.
    pub total: u64,
    pub total_exact: bool,
}

/// Where a capped count (`count=capped`) stops: counting 10,000 index entries takes a
/// millisecond or two on any number of tasks.
pub const COUNT_CAP: u64 = 10_000;

/// Status counts that may be an estimate (`count=estimate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedTasks {
    pub counts: StatusCounts,
    /// Whether every match was counted; otherwise the counts are the store's estimate
    /// and more than [`COUNT_CAP`] tasks match.
    pub exact: bool,
}

impl CountedTasks {
    /// Counts of every match.
    pub fn exact(counts: StatusCounts) -> CountedTasks {
        CountedTasks {
            counts,
            exact: true,
        }
    }
}

/// Tasks per status; statuses without tasks are present with 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCounts(pub BTreeMap<Status, u64>);

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts(Status::ALL.into_iter().map(|s| (s, 0)).collect())
    }
}

impl StatusCounts {
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn get(&self, s: Status) -> u64 {
        self.0.get(&s).copied().unwrap_or(0)
    }

    /// The tasks in any of `statuses`.
    pub fn within(&self, statuses: &[Status]) -> u64 {
        statuses.iter().map(|s| self.get(*s)).sum()
    }
}

/// Who did an operator action, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    pub action: Action,
    pub actor: String,
    pub reason: Option<String>,
    pub at: Timestamp,
    /// From where: the client's address.
    pub origin: Option<String>,
}

/// Result of a bulk action: `matched = changed + ineligible`; unknown identifiers are
/// counted apart in `not_found`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkOutcome {
    pub matched: u64,
    pub changed: u64,
    pub ineligible: u64,
    pub not_found: u64,
}

/// Tasks per transaction of a bulk action by filter: small enough that workers and
/// the pages get the database between two batches, large enough to be quick.
pub const FILTER_ACTION_BATCH: u32 = 10_000;

/// What one step of a bulk action by filter may act on: tasks that match, whose status
/// allows the action, and that were last updated no later than the action began.
/// `None` when the filter's statuses leave nothing eligible.
pub fn step_filter(filter: &TaskFilter, request: &ActionRequest) -> Option<TaskFilter> {
    let mut eligible = filter.with_statuses_within(request.action.allowed_from())?;
    eligible.updated_to = Some(match eligible.updated_to {
        Some(to) if to < request.at => to,
        _ => request.at,
    });
    Some(eligible)
}

/// What one batch of a bulk action by filter did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterStep {
    /// Tasks it changed.
    pub changed: u32,
    /// Where the next batch starts, for a store that walks the tasks in identifier order:
    /// every task up to this identifier that the action may change has been changed
    /// (or was held by another transaction at that moment: being changed anyway).
    /// PostgreSQL walks so, since an index there keeps the row versions a batch left
    /// behind, and each batch would otherwise step over all of them again. `None` from
    /// a store that finds what is left without it (SQLite).
    pub resume_after: Option<TaskId>,
    /// Whether tasks may be left for another step: false once a step saw the end of
    /// what is eligible.
    pub more: bool,
}

/// A bulk action by filter that has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterAction {
    /// Its row in the audit trail.
    pub action_id: i64,
    /// Tasks that matched the filter when it began.
    pub matched: u64,
    /// Of them, those whose status allows the action.
    pub eligible: u64,
}

impl FilterAction {
    /// A begun action with the status counts of what matched when it began.
    pub fn counted(action_id: i64, counts: &StatusCounts, action: Action) -> FilterAction {
        FilterAction {
            action_id,
            matched: counts.total(),
            eligible: counts.within(action.allowed_from()),
        }
    }

    /// The outcome once `changed` tasks were acted on and the action ran to its end.
    pub fn outcome(&self, changed: u64) -> BulkOutcome {
        // Workers may have moved tasks into the set meanwhile: never fewer matched than
        // changed.
        let matched = self.matched.max(changed);
        BulkOutcome {
            matched,
            changed,
            ineligible: matched - changed,
            not_found: 0,
        }
    }

    /// The outcome of an action stopped before its end (cancelled, or by an error): the
    /// tasks it did not reach were eligible, so only those that were not count as such.
    pub fn stopped_outcome(&self, changed: u64) -> BulkOutcome {
        let matched = self.matched.max(changed);
        BulkOutcome {
            matched,
            changed,
            ineligible: matched - self.eligible.clamp(changed, matched),
            not_found: 0,
        }
    }
}

/// How one processing attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished,
    Skipped,
    Retry { at: Timestamp, error: String },
    Failed { error: String },
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Finished => Status::Finished,
            Outcome::Skipped => Status::Skipped,
            Outcome::Retry { .. } => Status::Retry,
            Outcome::Failed { .. } => Status::Failed,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Retry { error, .. } | Outcome::Failed { error } => Some(error),
            _ => None,
        }
    }
}

/// The end of one attempt on a claimed task.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub id: TaskId,
    pub attempt: u32,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub outcome: Outcome,
    /// Export messages of this attempt, in order.
    pub messages: Vec<Message>,
    /// What the publisher's `response` expression picked from the answer; kept on
    /// the task (a `None` leaves the one an earlier attempt kept).
    pub response: Option<serde_json::Value>,
    /// With `only_changed`: the digest of the payload a finished task published, kept
    /// as its route's last for its entity.
    pub published: Option<String>,
}

/// What a route last published for an entity (`only_changed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedDigest {
    pub digest: String,
    pub task: TaskId,
}

/// A past processing attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: u32,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub outcome: Status,
    pub error: Option<String>,
}

/// A recorded operator action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub reason: Option<String>,
    /// From where: the client's address, when known.
    pub origin: Option<String>,
    /// What it acted on: task identifiers, a filter, a route, a user or a token.
    pub target: serde_json::Value,
    pub outcome: BulkOutcome,
}

/// Everything about one task, for moving it between stores.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task: Task,
    pub messages: Vec<(Phase, Message)>,
    pub attempts: Vec<Attempt>,
    /// Operator actions (ids in the target store) that changed the task.
    pub action_ids: Vec<i64>,
}

/// Which operator actions to list: every condition set must hold; newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only actions that changed this task.
    pub task: Option<TaskId>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub page: ferry_core::Page,
}

/// A cron schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEntry {
    pub name: String,
    pub expression: String,
    pub next_run_at: Timestamp,
}

/// Where an incremental (`since`) subscriber got to: the greatest `from` value of its
/// last successful run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinceMark {
    pub value: String,
    pub updated_at: Timestamp,
}

/// What retention lets go: final tasks last updated before `updated_before`, and the
/// oldest final tasks while there are more than `max_tasks` tasks in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRule {
    pub updated_before: Timestamp,
    pub max_tasks: Option<u64>,
}

impl PruneRule {
    /// Whether a batch that took `chosen` tasks by age must count all tasks to see if
    /// `max_tasks` lets more go: there is such a limit and room left in the batch.
    pub fn counts(&self, chosen: usize, batch: u32) -> bool {
        self.max_tasks.is_some() && (chosen as u64) < u64::from(batch)
    }

    /// How many of the oldest final tasks a batch of `batch` takes beyond the `chosen`
    /// by age, with `total` tasks stored: those over `max_tasks`, as far as there is room.
    pub fn over_limit(&self, total: u64, chosen: usize, batch: u32) -> u64 {
        let Some(max) = self.max_tasks else {
            return 0;
        };
        let excess = total.saturating_sub(max).saturating_sub(chosen as u64);
        excess.min(u64::from(batch).saturating_sub(chosen as u64))
    }
}

/// A claim on a route's due tasks for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest<'a> {
    pub route: &'a str,
    pub limit: u32,
    pub now: Timestamp,
    pub lease: Duration,
    pub worker: &'a str,
}

/// The task store. Every backend passes the [`crate::conformance`] suite.
///
/// Contract: writes are atomic; a task is never deleted by an action; a claimed task is
/// held by one worker until completed or its lease expires.
#[async_trait]
pub trait Store:
    crate::access::AccessStore + crate::jobs::JobStore + Send + Sync + 'static
{
    /// Creates tasks (status `new`) with their import messages, all or none.
    async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<(), StoreError>;

    async fn list_tasks(&self, query: &TaskQuery) -> Result<TaskPage, StoreError>;

    async fn count_tasks(&self, filter: &TaskFilter) -> Result<StatusCounts, StoreError>;

    /// Status counts, exact up to [`COUNT_CAP`] matches; above it a store may answer
    /// with an estimate from its statistics (and says so). This one counts exactly.
    async fn estimate_counts(&self, filter: &TaskFilter) -> Result<CountedTasks, StoreError> {
        self.count_tasks(filter).await.map(CountedTasks::exact)
    }

    /// Status counts of every route that has tasks.
    async fn counts_by_route(&self) -> Result<BTreeMap<String, StatusCounts>, StoreError>;

    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>, StoreError>;

    /// A task's messages of one phase, oldest first; `None` when the task is unknown.
    async fn messages(&self, id: &TaskId, phase: Phase)
    -> Result<Option<Vec<Message>>, StoreError>;

    /// A task's processing attempts, oldest first.
    async fn attempts(&self, id: &TaskId) -> Result<Vec<Attempt>, StoreError>;

    /// The operator actions that changed a task, oldest first.
    async fn task_actions(&self, id: &TaskId) -> Result<Vec<ActionRecord>, StoreError>;

    /// Skip or retry one task; refused when its status does not allow it.
    async fn act_on_task(&self, id: &TaskId, request: &ActionRequest) -> Result<Task, ActionError>;

    /// Skip or retry the listed tasks (duplicates count once).
    async fn act_on_ids(
        &self,
        ids: &[TaskId],
        request: &ActionRequest,
    ) -> Result<BulkOutcome, StoreError>;

    /// Skip or retry every task that matches, however many, in bounded memory: the
    /// steps of [`Store::begin_filter_action`] run to the end at once.
    async fn act_on_filter(
        &self,
        filter: &TaskFilter,
        request: &ActionRequest,
    ) -> Result<BulkOutcome, StoreError> {
        let begun = self.begin_filter_action(filter, request).await?;
        let mut changed = 0;
        let mut after = None;
        loop {
            let step = self
                .step_filter_action(
                    filter,
                    request,
                    begun.action_id,
                    after.as_ref(),
                    FILTER_ACTION_BATCH,
                )
                .await?;
            changed += u64::from(step.changed);
            if !step.more {
                break;
            }
            after = step.resume_after;
        }
        let outcome = begun.outcome(changed);
        self.finish_filter_action(begun.action_id, &outcome).await?;
        Ok(outcome)
    }

    /// Starts a bulk action by filter: records it in the audit trail and counts the
    /// tasks that match now, and those of them the action may change; the entry shows
    /// `matched` and `ineligible` (matched but not eligible) from then on, `changed` 0.
    async fn begin_filter_action(
        &self,
        filter: &TaskFilter,
        request: &ActionRequest,
    ) -> Result<FilterAction, StoreError>;

    /// One batch of a bulk action by filter, in its own transaction (or, on PostgreSQL,
    /// two side by side, each with half of the batch): acts on at most
    /// `limit` tasks that match, are eligible and were last updated no later than the
    /// action began (so a task a worker finished again meanwhile is not acted on twice);
    /// links and logs each, and adds the count it changed to the entry's `changed` in
    /// the same transaction (each lane its own), so the entry counts exactly the batches
    /// that committed, however the action ends. Running the steps again from the start
    /// with the same `request` (a resumed job) changes only what is left. `after` is the previous batch's
    /// [`resume_after`](FilterStep::resume_after) (`None` for the first). The action is
    /// done once a step answers [`more`](FilterStep::more) false.
    async fn step_filter_action(
        &self,
        filter: &TaskFilter,
        request: &ActionRequest,
        action_id: i64,
        after: Option<&TaskId>,
        limit: u32,
    ) -> Result<FilterStep, StoreError>;

    /// Records a bulk action's final counts in the audit trail, replacing those kept
    /// while it ran.
    async fn finish_filter_action(
        &self,
        action_id: i64,
        outcome: &BulkOutcome,
    ) -> Result<(), StoreError>;

    /// Claims the route's `new` tasks and due `retry` tasks, oldest first, sets them
    /// `processing` with one more attempt, and returns them in creation order.
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Task>, StoreError>;

    /// Records the end of attempts on tasks `worker` claimed. A completion for a task the
    /// worker no longer holds (its lease expired and it was recovered, maybe claimed by
    /// another worker) is ignored; answers how many were recorded.
    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<u64, StoreError>;

    /// Gives back claimed tasks that were never started (shutdown): `processing` → `new`,
    /// the attempt undone. Answers how many.
    async fn release(&self, worker: &str, ids: &[TaskId]) -> Result<u64, StoreError>;

    /// Extends the leases of the tasks `worker` still holds to `until`.
    async fn extend_leases(
        &self,
        worker: &str,
        ids: &[TaskId],
        until: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Makes the stored schedules the given ones: new ones are added, removed ones
    /// dropped, and a schedule whose expression changed takes the new next run time;
    /// an unchanged schedule keeps its stored next run time.
    async fn sync_schedules(&self, schedules: &[ScheduleEntry]) -> Result<(), StoreError>;

    /// What `route` last published for each of `entities` that it published before
    /// (`only_changed`), by entity identifier.
    async fn published_digests(
        &self,
        route: &str,
        entities: &[String],
    ) -> Result<HashMap<String, PublishedDigest>, StoreError>;

    /// The `since` mark of an incoming configuration, if one is stored.
    async fn since_mark(&self, incoming: &str) -> Result<Option<SinceMark>, StoreError>;

    /// Every stored `since` mark, by incoming configuration.
    async fn since_marks(&self) -> Result<BTreeMap<String, SinceMark>, StoreError>;

    /// Stores (or replaces) the `since` mark of an incoming configuration.
    async fn set_since_mark(
        &self,
        incoming: &str,
        value: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Forgets the mark, so the next run reads from the configured `initial`; true when
    /// one was stored.
    async fn reset_since_mark(&self, incoming: &str) -> Result<bool, StoreError>;

    /// The schedules due at `now`.
    async fn due_schedules(&self, now: Timestamp) -> Result<Vec<ScheduleEntry>, StoreError>;

    /// Moves a schedule's next run from `expected` to `next`; true for the one caller
    /// that moved it, which then fires the run.
    async fn advance_schedule(
        &self,
        name: &str,
        expected: Timestamp,
        next: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Deletes one batch of final tasks (finished, skipped, failed) that retention lets
    /// go, oldest first, with their entities, messages and attempts; answers how many
    /// tasks were deleted.
    async fn prune(&self, rule: &PruneRule, batch: u32) -> Result<u64, StoreError>;

    /// Returns `processing` tasks whose lease expired before `now` to `new`, with a
    /// message; answers how many.
    async fn recover_expired(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Operator actions, newest first, and how many match.
    async fn list_actions(
        &self,
        query: &AuditQuery,
    ) -> Result<(Vec<ActionRecord>, u64), StoreError>;

    /// Up to `limit` tasks with identifiers after `after`, in identifier order: a full
    /// scan in pages, for export.
    async fn tasks_after(
        &self,
        after: Option<&TaskId>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError>;

    /// Recreates operator actions (from another store); answers their new ids in order.
    async fn import_actions(&self, actions: &[ActionRecord]) -> Result<Vec<i64>, StoreError>;

    /// Recreates tasks with their logs, attempts and action links (from another store).
    /// A task whose identifier exists already is left alone; a task that was
    /// `processing` comes back `new`, with a message. Answers how many were created.
    async fn import_tasks(&self, records: &[TaskRecord]) -> Result<u64, StoreError>;

    /// Routes on which any process sharing the store created tasks, as they happen;
    /// `None` when the backend cannot tell (workers then poll).
    async fn new_task_events(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        None
    }
}
