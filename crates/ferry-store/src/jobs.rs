//! Bulk jobs: the progress of bulk actions by filter that run in the background, kept in
//! the store so that every node (and every operator) sees them.
//!
//! The action itself — who, when, why, which filter, the final counts — is its row in
//! the audit trail (`operator_actions`); a job adds its state and progress. Statements
//! are built once with sea-query; [`job_store!`] writes the implementation for each
//! backend's pool, as `access_store!` does for users and tokens.

use crate::rows::Columns;
use crate::store::{ActionRecord, StoreError};
use async_trait::async_trait;
use ferry_core::{JobState, Timestamp};

/// One bulk job as stored, with its audit-trail row.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkJob {
    pub id: i64,
    /// The operator action: actor, action, reason, origin, the filter (as `target`),
    /// and the final counts once the job has ended.
    pub action: ActionRecord,
    /// As stored; see [`JobState::seen_at`] for what to show.
    pub state: JobState,
    pub matched: u64,
    pub eligible: u64,
    pub changed: u64,
    pub cancel_requested: bool,
    pub cancelled_by: Option<String>,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The node working the job, once it has renewed its sign of life or taken the job
    /// over ([`JobStore::take_over_bulk_job`]).
    pub runner: Option<String>,
}

impl BulkJob {
    /// The state to show at `now`: a running job silent for
    /// [`STALE_AFTER_MS`](ferry_core::bulk::STALE_AFTER_MS) is interrupted.
    pub fn state_at(&self, now: Timestamp) -> JobState {
        self.state.seen_at(self.updated_at, now)
    }
}

/// Bulk jobs. Part of every [`crate::Store`]; covered by the conformance suite.
#[async_trait]
pub trait JobStore {
    /// Records a running job for the operator action `action_id`; answers its id.
    async fn add_bulk_job(
        &self,
        action_id: i64,
        matched: u64,
        eligible: u64,
        at: Timestamp,
    ) -> Result<i64, StoreError>;

    async fn bulk_job(&self, id: i64) -> Result<Option<BulkJob>, StoreError>;

    /// The newest jobs first, at most `limit`; only those stored as running when
    /// `running_only`.
    async fn bulk_jobs(&self, running_only: bool, limit: u32) -> Result<Vec<BulkJob>, StoreError>;

    /// Records the count changed so far (a sign of life); answers whether someone asked
    /// the job to stop.
    async fn bulk_job_progress(
        &self,
        id: i64,
        changed: u64,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Renews the sign of life of a running job worked by `runner` (or by no node named
    /// yet), naming `runner`, whatever its batches do. Answers false when the job has
    /// ended, is gone, or another node has taken it over: `runner` should stop working it.
    async fn renew_bulk_job(
        &self,
        id: i64,
        runner: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Takes over a job whose node stopped, to resume it: only when it is stored running
    /// and its last sign of life is older than
    /// [`STALE_AFTER_MS`](ferry_core::bulk::STALE_AFTER_MS) at `at` (shown as
    /// interrupted). Names `runner` and renews the sign of life in one conditional
    /// update; answers whether this caller won (of any number trying at once, one does).
    async fn take_over_bulk_job(
        &self,
        id: i64,
        runner: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends a running job in `state` (done, cancelled or failed).
    async fn end_bulk_job(
        &self,
        id: i64,
        state: JobState,
        changed: u64,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Asks a running job to stop after its current batch. `None` when there is no such
    /// job; otherwise the job as it is now (already ended ones are left as they are).
    async fn cancel_bulk_job(&self, id: i64, by: &str) -> Result<Option<BulkJob>, StoreError>;
}

pub(crate) mod sql {
    use ferry_core::bulk::STALE_AFTER_MS;
    use ferry_core::{JobState, Timestamp};
    use sea_query::{Cond, Expr, ExprTrait, InsertStatement, Order, Query, SelectStatement};
    use sea_query::{JoinType, UpdateStatement};

    const ACTION_COLUMNS: [&str; 11] = [
        "id",
        "at",
        "actor",
        "action",
        "reason",
        "origin",
        "target",
        "matched",
        "changed",
        "ineligible",
        "not_found",
    ];
    /// The job's own columns, selected as `job_<name>` beside the action's.
    const JOB_COLUMNS: [&str; 12] = [
        "id",
        "state",
        "matched",
        "eligible",
        "changed",
        "cancel_requested",
        "cancelled_by",
        "error",
        "started_at",
        "updated_at",
        "finished_at",
        "runner",
    ];

    pub fn insert(action_id: i64, matched: u64, eligible: u64, at: Timestamp) -> InsertStatement {
        Query::insert()
            .into_table("bulk_jobs")
            .columns([
                "action_id",
                "state",
                "matched",
                "eligible",
                "started_at",
                "updated_at",
            ])
            .values_panic([
                action_id.into(),
                JobState::Running.as_str().into(),
                (matched as i64).into(),
                (eligible as i64).into(),
                at.millis().into(),
                at.millis().into(),
            ])
            .returning_col("id")
            .to_owned()
    }

    pub fn select(id: Option<i64>, running_only: bool, limit: u32) -> SelectStatement {
        let mut s = Query::select();
        for c in ACTION_COLUMNS {
            s.column(("a", c));
        }
        for c in JOB_COLUMNS {
            s.expr_as(Expr::col(("j", c)), format!("job_{c}"));
        }
        s.from_as("bulk_jobs", "j")
            .join_as(
                JoinType::InnerJoin,
                "operator_actions",
                "a",
                Expr::col(("a", "id")).equals(("j", "action_id")),
            )
            .order_by(("j", "id"), Order::Desc)
            .limit(u64::from(limit));
        if let Some(id) = id {
            s.and_where(Expr::col(("j", "id")).eq(id));
        }
        if running_only {
            s.and_where(Expr::col(("j", "state")).eq(JobState::Running.as_str()));
        }
        s.to_owned()
    }

    pub fn progress(id: i64, changed: u64, at: Timestamp) -> UpdateStatement {
        Query::update()
            .table("bulk_jobs")
            .value("changed", changed as i64)
            .value("updated_at", at.millis())
            .and_where(Expr::col("id").eq(id))
            .returning_col("cancel_requested")
            .to_owned()
    }

    pub fn renew(id: i64, runner: &str, at: Timestamp) -> UpdateStatement {
        Query::update()
            .table("bulk_jobs")
            .value("runner", runner)
            .value("updated_at", at.millis())
            .and_where(Expr::col("id").eq(id))
            .and_where(Expr::col("state").eq(JobState::Running.as_str()))
            .cond_where(
                Cond::any()
                    .add(Expr::col("runner").is_null())
                    .add(Expr::col("runner").eq(runner)),
            )
            .to_owned()
    }

    pub fn take_over(id: i64, runner: &str, at: Timestamp) -> UpdateStatement {
        Query::update()
            .table("bulk_jobs")
            .value("runner", runner)
            .value("updated_at", at.millis())
            .and_where(Expr::col("id").eq(id))
            .and_where(Expr::col("state").eq(JobState::Running.as_str()))
            .and_where(Expr::col("updated_at").lt(at.millis() - STALE_AFTER_MS))
            .to_owned()
    }

    pub fn end(
        id: i64,
        state: JobState,
        changed: u64,
        error: Option<&str>,
        at: Timestamp,
    ) -> UpdateStatement {
        Query::update()
            .table("bulk_jobs")
            .value("state", state.as_str())
            .value("changed", changed as i64)
            .value("error", error.map(str::to_owned))
            .value("updated_at", at.millis())
            .value("finished_at", at.millis())
            .and_where(Expr::col("id").eq(id))
            .and_where(Expr::col("state").eq(JobState::Running.as_str()))
            .to_owned()
    }

    pub fn cancel(id: i64, by: &str) -> UpdateStatement {
        Query::update()
            .table("bulk_jobs")
            .value("cancel_requested", 1i64)
            .value("cancelled_by", by)
            .and_where(Expr::col("id").eq(id))
            .and_where(Expr::col("state").eq(JobState::Running.as_str()))
            .and_where(Expr::col("cancel_requested").eq(0))
            .to_owned()
    }
}

pub(crate) fn job(row: &impl Columns) -> Result<BulkJob, StoreError> {
    let count = |c: &str| row.int(c).map(|n| n.max(0) as u64);
    let state = row.text("job_state")?;
    Ok(BulkJob {
        id: row.int("job_id")?,
        action: crate::rows::action(row)?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown bulk job state '{state}'")))?,
        matched: count("job_matched")?,
        eligible: count("job_eligible")?,
        changed: count("job_changed")?,
        cancel_requested: row.int("job_cancel_requested")? != 0,
        cancelled_by: row.opt_text("job_cancelled_by")?,
        error: row.opt_text("job_error")?,
        started_at: Timestamp::from_millis(row.int("job_started_at")?),
        updated_at: Timestamp::from_millis(row.int("job_updated_at")?),
        finished_at: row.opt_int("job_finished_at")?.map(Timestamp::from_millis),
        runner: row.opt_text("job_runner")?,
    })
}

/// Implements [`JobStore`] for a backend: `$store` holds the pools named `$reader` and
/// `$writer` (the same pool where the backend has one), queried with `$builder`.
macro_rules! job_store {
    ($store:ty, $builder:expr, $reader:ident, $writer:ident) => {
        #[async_trait::async_trait]
        impl $crate::jobs::JobStore for $store {
            async fn add_bulk_job(
                &self,
                action_id: i64,
                matched: u64,
                eligible: u64,
                at: ferry_core::Timestamp,
            ) -> Result<i64, $crate::StoreError> {
                let row = $crate::access::access_bound!(
                    $crate::jobs::sql::insert(action_id, matched, eligible, at),
                    $builder
                )
                .fetch_one(&self.$writer)
                .await?;
                Ok(sqlx::Row::try_get(&row, 0)?)
            }

            async fn bulk_job(
                &self,
                id: i64,
            ) -> Result<Option<$crate::jobs::BulkJob>, $crate::StoreError> {
                $crate::access::access_bound!(
                    $crate::jobs::sql::select(Some(id), false, 1),
                    $builder
                )
                .fetch_optional(&self.$reader)
                .await?
                .as_ref()
                .map($crate::jobs::job)
                .transpose()
            }

            async fn bulk_jobs(
                &self,
                running_only: bool,
                limit: u32,
            ) -> Result<Vec<$crate::jobs::BulkJob>, $crate::StoreError> {
                $crate::access::access_bound!(
                    $crate::jobs::sql::select(None, running_only, limit),
                    $builder
                )
                .fetch_all(&self.$reader)
                .await?
                .iter()
                .map($crate::jobs::job)
                .collect()
            }

            async fn bulk_job_progress(
                &self,
                id: i64,
                changed: u64,
                at: ferry_core::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let row = $crate::access::access_bound!(
                    $crate::jobs::sql::progress(id, changed, at),
                    $builder
                )
                .fetch_optional(&self.$writer)
                .await?;
                match row {
                    Some(r) => Ok(sqlx::Row::try_get::<i64, _>(&r, 0)? != 0),
                    None => Err($crate::StoreError::Corrupt(format!(
                        "bulk job {id} is gone"
                    ))),
                }
            }

            async fn renew_bulk_job(
                &self,
                id: i64,
                runner: &str,
                at: ferry_core::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = $crate::access::access_bound!(
                    $crate::jobs::sql::renew(id, runner, at),
                    $builder
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn take_over_bulk_job(
                &self,
                id: i64,
                runner: &str,
                at: ferry_core::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = $crate::access::access_bound!(
                    $crate::jobs::sql::take_over(id, runner, at),
                    $builder
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn end_bulk_job(
                &self,
                id: i64,
                state: ferry_core::JobState,
                changed: u64,
                error: Option<&str>,
                at: ferry_core::Timestamp,
            ) -> Result<(), $crate::StoreError> {
                $crate::access::access_bound!(
                    $crate::jobs::sql::end(id, state, changed, error, at),
                    $builder
                )
                .execute(&self.$writer)
                .await?;
                Ok(())
            }

            async fn cancel_bulk_job(
                &self,
                id: i64,
                by: &str,
            ) -> Result<Option<$crate::jobs::BulkJob>, $crate::StoreError> {
                $crate::access::access_bound!($crate::jobs::sql::cancel(id, by), $builder)
                    .execute(&self.$writer)
                    .await?;
                // Read on the writer: the change just made is visible there at once.
                $crate::access::access_bound!(
                    $crate::jobs::sql::select(Some(id), false, 1),
                    $builder
                )
                .fetch_optional(&self.$writer)
                .await?
                .as_ref()
                .map($crate::jobs::job)
                .transpose()
            }
        }
    };
}

pub(crate) use job_store;
