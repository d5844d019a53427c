//! The PostgreSQL store: for several ferry nodes on one database.
//!
//! Claims take rows with `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other's
//! batches nor take the same task; multi-step changes are single statements with
//! data-modifying CTEs, so what is logged is exactly what changed. New tasks are
//! announced with `NOTIFY` (see [`PgStore::new_task_events`]). Migrations run under an
//! advisory lock, so nodes starting together apply them once.

use crate::query::{self, Dialect, TASKS, action_message, action_update};
use crate::rows;
use crate::store::*;
use async_trait::async_trait;
use ferry_core::task::{Level, Message, NewTask, Phase, Task};
use ferry_core::{Status, TaskFilter, TaskId, TaskQuery, Timestamp};
use sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, PostgresQueryBuilder, Query};
use sea_query_sqlx::SqlxBinder;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

const D: Dialect = Dialect::Postgres;
const CHUNK: usize = 1_000;
/// Channel on which new tasks are announced, with the route as payload.
pub const NEW_TASKS_CHANNEL: &str = "ferry_new_tasks";
/// Advisory lock keys: migrations, and the pruner (one node at a time).
const MIGRATION_LOCK: i64 = 0x0FE2_2A01;
const PRUNE_LOCK: i64 = 0x0FE2_2A02;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_tasks.sql")),
    (2, include_str!("../migrations/postgres/0002_schedules.sql")),
    (3, include_str!("../migrations/postgres/0003_access.sql")),
    (4, include_str!("../migrations/postgres/0004_search.sql")),
    (5, include_str!("../migrations/postgres/0005_bulk_jobs.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_task_search.sql"),
    ),
    (
        7,
        include_str!("../migrations/postgres/0007_task_entities.sql"),
    ),
    (8, include_str!("../migrations/postgres/0008_task_keys.sql")),
    (
        9,
        include_str!("../migrations/postgres/0009_no_updated_index.sql"),
    ),
    (
        10,
        include_str!("../migrations/postgres/0010_fewer_entries.sql"),
    ),
    (
        11,
        include_str!("../migrations/postgres/0011_task_logs.sql"),
    ),
    (
        12,
        include_str!("../migrations/postgres/0012_bulk_job_runner.sql"),
    ),
    (
        13,
        include_str!("../migrations/postgres/0013_user_names_folded.sql"),
    ),
    (
        14,
        include_str!("../migrations/postgres/0014_since_marks.sql"),
    ),
    (
        15,
        include_str!("../migrations/postgres/0015_task_response.sql"),
    ),
    (
        16,
        include_str!("../migrations/postgres/0016_published_digests.sql"),
    ),
];

/// Connection settings beyond the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    /// See [`PgStore::gathering_up_to`].
    gathered_up_to: u64,
}

/// A list by updated-at whose filter is served in another order gathers its matches
/// and sorts them up to this many (about 2 µs each by primary key, or one range of it
/// for a creation window), and otherwise reads each status in updated-at order
/// (`query::sorts_many_by_updated`).
const GATHERED_UP_TO: u64 = 20_000;

type Tx = Transaction<'static, Postgres>;

macro_rules! bound {
    ($stmt:expr) => {{
        let (sql, values) = $stmt.build_sqlx(PostgresQueryBuilder);
        sqlx::query_with(AssertSqlSafe(sql), values)
    }};
}

impl PgStore {
    /// Connects and applies pending migrations (see [`PgStore::connect`]).
    pub async fn open(url: &str, settings: PoolSettings) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url, settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without touching the schema.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore {
            pool,
            gathered_up_to: GATHERED_UP_TO,
        })
    }

    /// Applies pending migrations, once, however many nodes start together.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let result = async {
            sqlx::raw_sql("CREATE TABLE IF NOT EXISTS ferry_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .execute(&mut *conn)
                .await?;
            let mut applied = Vec::new();
            for &(version, sql) in MIGRATIONS {
                let done: Option<i64> = sqlx::query_scalar("SELECT version FROM ferry_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
                if done.is_some() {
                    continue;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration { version, source })?;
                sqlx::query("INSERT INTO ferry_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(Timestamp::now().millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::info!(version, "applied PostgreSQL migration");
                applied.push(version);
            }
            Ok::<_, StoreError>(applied)
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        result
    }

    /// One lane of a bulk action's step: up to `limit` eligible tasks after `after`.
    /// Answers what it changed and its last task.
    async fn filter_lane(
        &self,
        eligible: &TaskFilter,
        request: &ActionRequest,
        action_id: i64,
        after: Option<&TaskId>,
        limit: u32,
    ) -> Result<FilterStep, StoreError> {
        // In identifier order from where the last step ended: the versions of the rows
        // earlier steps changed stay in the indexes until vacuumed, and a step that
        // began from the start again would step over all of them (a 1M retry took 200 s).
        // Tasks another transaction holds locked right now are left out: being changed.
        let mut batch = Query::select()
            .column("ctid")
            .from(TASKS)
            .cond_where(query::condition(D, eligible))
            .order_by("id", Order::Asc)
            .limit(u64::from(limit))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        if let Some(after) = after {
            batch.and_where(Expr::col("id").gt(after.as_str()));
        }
        // The chosen rows are changed where they lie (a TID scan over the locked rows),
        // as the claim does: matched by `id IN (…)`, PostgreSQL joined the batch back
        // through the primary key, 1.7× slower (348 against 203 ms a batch of 10,000 in
        // a model of 1M tasks). Locked, the rows cannot move before the update.
        let cond = sea_query::Cond::all().add(Expr::cust_with_expr(
            "ctid = ANY(ARRAY $1)",
            Expr::SubQuery(None, Box::new(batch.into())),
        ));
        let mut tx = self.write().await?;
        // The lane's count is added in its own transaction (after its tasks: the other
        // lane waits on the entry's row only for this lane's commit), so the entry shows
        // exactly the lanes that committed, even if the action never reaches its end.
        let applied = async {
            let (n, last) = apply_to_eligible(&mut tx, cond, action_id, request).await?;
            if n > 0 {
                sqlx::query("UPDATE operator_actions SET changed = changed + $1 WHERE id = $2")
                    .bind(n as i64)
                    .bind(action_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, StoreError>((n, last))
        }
        .await;
        let (n, last) = match applied {
            Ok(done) => done,
            Err(e) => {
                // Rolled back before answering: dropped, the transaction would be rolled
                // back later, and until then hold its rows, which the next step (or the
                // other lane) would skip as being changed, and never come back for.
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(error = %rollback, "could not roll back a failed bulk step");
                }
                return Err(e);
            }
        };
        tx.commit().await?;
        Ok(FilterStep {
            changed: n as u32,
            resume_after: last.map(TaskId::from_stored),
            more: n >= u64::from(limit),
        })
    }

    /// One claim of up to `limit` tasks (see [`Store::claim`]).
    async fn claim_some(&self, r: &ClaimRequest<'_>, limit: u32) -> Result<Vec<Task>, StoreError> {
        let lease_until = r.now.plus_millis(r.lease.as_millis() as i64);
        // New and due-retry tasks are found apart, each in creation order straight from
        // `tasks_route_status_created` (due retries also from `tasks_retry_due`), then
        // the oldest `limit` of both are locked and taken: one `status = 'new' OR …`
        // search makes PostgreSQL gather and sort every new task of the route on each
        // claim, or walk the route's finished tasks.
        //
        // Only the tasks taken are locked. The candidates are read without a lock (twice
        // the limit of each kind, so a claimer racing another on the same route takes
        // the next ones), then locked oldest first with `SKIP LOCKED` until `limit` are
        // held (a locking clause under a LIMIT stops there). Locking every candidate, as
        // before, held up to `limit` tasks the claim did not take until it ended, and a
        // bulk step meeting them then skipped them as being changed, for good.
        //
        // Rows are matched and updated where they lie (`ctid`, a TID scan), not looked
        // up again by id. A candidate changed by another transaction since it was read
        // has a new version elsewhere: PostgreSQL rechecks the condition on that version,
        // its `ctid` is not among the candidates', and it is not taken this time (and
        // where a PostgreSQL release would let it through, the update leaves it: that
        // version is not in the statement's snapshot). So the lock needs no other
        // condition, and must have none: given the route's, the
        // planner (whose statistics may not know a new route yet) walked the route's
        // index and filtered by `ctid`: 0.4 s a claim of 1,000, against 26 ms.
        let rows = sqlx::query(
            "WITH candidates AS (
                 (SELECT ctid FROM tasks
                  WHERE route = $4 AND status = 'new'
                  ORDER BY created_at, id LIMIT $6)
                 UNION ALL
                 (SELECT ctid FROM tasks
                  WHERE route = $4 AND status = 'retry' AND next_attempt_at <= $1
                  ORDER BY created_at, id LIMIT $6)),
             picked AS (
                 SELECT ctid FROM tasks
                 WHERE ctid = ANY(ARRAY(SELECT ctid FROM candidates))
                 ORDER BY created_at, id LIMIT $5
                 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE tasks t SET status = 'processing', attempts = t.attempts + 1, updated_at = $1,
                        lease_owner = $2, lease_until = $3
                 FROM picked WHERE t.ctid = picked.ctid
                 RETURNING t.id, t.route, t.entity_schema, t.entity_identifier, t.status, t.attempts,
                           t.created_at, t.updated_at, t.last_error, t.next_attempt_at, t.response)
             -- LEFT JOIN: a task without its entity is reported (rows::detail), not lost.
             SELECT c.*, e.entity_data FROM claimed c LEFT JOIN task_entities e ON e.task_id = c.id",
        )
        .bind(r.now.millis())
        .bind(r.worker)
        .bind(lease_until.millis())
        .bind(r.route)
        .bind(i64::from(limit))
        .bind(2 * i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::detail).collect()
    }

    async fn write(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The statement of a list: by updated-at through the matches' identifiers when a
    /// filter served in another order finds few (a capped count on `task_search`
    /// tells; see `query::sorts_many_by_updated`), else the usual one. With the count
    /// made to choose, which may also give the list's total.
    async fn list_statement(
        &self,
        q: &TaskQuery,
    ) -> Result<(sea_query::SelectStatement, Option<query::Counted>), StoreError> {
        if !query::sorts_many_by_updated(q) {
            return Ok((query::list(D, q), None));
        }
        let cap = self.gathered_up_to;
        // A creation window's count also finds the stretch of identifiers it lies in.
        let window = query::is_creation_window(&q.filter);
        let count = match window {
            true => query::count_capped_spanned(&q.filter, cap),
            false => query::count_capped(D, &q.filter, cap),
        };
        let row = bound!(count).fetch_one(&self.pool).await?;
        let counted = query::Counted {
            matches: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
            cap,
        };
        let list = if counted.matches > cap {
            query::list(D, q)
        } else if window
            && let (Some(first), Some(last)) = (
                row.try_get::<Option<String>, _>(1)?,
                row.try_get::<Option<String>, _>(2)?,
            )
        {
            query::list_in_id_span(q, &first, &last)
        } else {
            query::list_gathered(q)
        };
        Ok((list, Some(counted)))
    }

    /// Lists by updated-at gather their matches up to `matches` of them (see
    /// [`GATHERED_UP_TO`]); `u64::MAX` makes every such list gather (or read its
    /// creation window's range), as a second run of the conformance suite does, so
    /// those ways meet every filter case.
    pub fn gathering_up_to(mut self, matches: u64) -> PgStore {
        self.gathered_up_to = matches;
        self
    }
}

async fn fetch_task<'e, E>(executor: E, id: &TaskId, lock: bool) -> Result<Option<Task>, StoreError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let mut stmt = query::detail_select()
        .and_where(Expr::col((TASKS, "id")).eq(id.as_str()))
        .to_owned();
    if lock {
        stmt.lock_with_tables(sea_query::LockType::Update, [TASKS]);
    }
    bound!(stmt)
        .fetch_optional(executor)
        .await?
        .as_ref()
        .map(rows::detail)
        .transpose()
}

/// The final tasks whose updated-at meets `updated`, oldest first, at most `limit`.
async fn final_ids(tx: &mut Tx, updated: Expr, limit: u64) -> Result<Vec<String>, StoreError> {
    let (sql, values) = query::final_by_updated(updated, limit).build_sqlx(PostgresQueryBuilder);
    Ok(sqlx::query_scalar_with(AssertSqlSafe(sql), values)
        .fetch_all(&mut **tx)
        .await?)
}

/// Appends log lines, (task id, phase, line) in order: the lines of one task and phase
/// become one `task_logs` row. One statement: arrays are one parameter each.
async fn insert_logs(tx: &mut Tx, rows: &[(&str, Phase, &Message)]) -> Result<(), StoreError> {
    let logs = rows::log_rows(rows);
    if logs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO task_logs (task_id, phase, lines)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])",
    )
    .bind(logs.iter().map(|(id, _, _)| *id).collect::<Vec<_>>())
    .bind(logs.iter().map(|(_, p, _)| p.as_str()).collect::<Vec<_>>())
    .bind(logs.iter().map(|(_, _, l)| l.as_str()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn record_action(
    tx: &mut Tx,
    request: &ActionRequest,
    target: &serde_json::Value,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO operator_actions (at, actor, action, reason, target, origin, matched, changed, ineligible, not_found)
         VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0, 0) RETURNING id",
    )
    .bind(request.at.millis())
    .bind(&request.actor)
    .bind(request.action.as_str())
    .bind(&request.reason)
    .bind(target.to_string())
    .bind(&request.origin)
    .fetch_one(&mut **tx)
    .await?)
}

async fn finish_action(tx: &mut Tx, id: i64, o: &BulkOutcome) -> Result<(), StoreError> {
    sqlx::query("UPDATE operator_actions SET matched = $1, changed = $2, ineligible = $3, not_found = $4 WHERE id = $5")
        .bind(o.matched as i64)
        .bind(o.changed as i64)
        .bind(o.ineligible as i64)
        .bind(o.not_found as i64)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Changes, links and logs the tasks matching `eligible` in one statement, so exactly
/// the changed tasks are linked and logged even while workers claim others. Answers
/// how many changed and the highest identifier among them.
async fn apply_to_eligible(
    tx: &mut Tx,
    eligible: sea_query::Cond,
    action_id: i64,
    request: &ActionRequest,
) -> Result<(u64, Option<String>), StoreError> {
    let update = action_update(request)
        .cond_where(eligible)
        .returning_col("id")
        .to_owned();
    let (update_sql, mut values) = update.build_sqlx(PostgresQueryBuilder);
    let n = values.0.0.len();
    values.0.0.push(action_id.into());
    let line = (
        request.at.millis(),
        Level::Info.as_str(),
        action_message(request),
    );
    values
        .0
        .0
        .push(rows::lines_json(&[(line.0, line.1, &line.2)]).into());
    let sql = format!(
        "WITH upd AS ({update_sql}),
              link AS (INSERT INTO task_actions (task_id, action_id) SELECT id, ${a} FROM upd
                       ON CONFLICT DO NOTHING),
              logged AS (INSERT INTO task_logs (task_id, phase, lines)
                         SELECT id, 'export', ${b} FROM upd)
         SELECT COUNT(*), MAX(id) FROM upd",
        a = n + 1,
        b = n + 2,
    );
    let (changed, last): (i64, Option<String>) = sqlx::query_as_with(AssertSqlSafe(sql), values)
        .fetch_one(&mut **tx)
        .await?;
    Ok((changed as u64, last))
}

async fn count_by_status<'e>(
    db: impl sqlx::PgExecutor<'e>,
    filter: &TaskFilter,
) -> Result<StatusCounts, StoreError> {
    let rows = bound!(query::count_by_status(D, filter))
        .fetch_all(db)
        .await?;
    rows::status_counts(&rows)
}

/// Status counts exact up to [`COUNT_CAP`] matches, the planner's estimate above: a
/// capped count tells which, then one `EXPLAIN` per status (a plan, nothing read) gives
/// the estimates, as fresh as the table's last `ANALYZE`.
async fn estimate_by_status(
    pool: &PgPool,
    filter: &TaskFilter,
) -> Result<CountedTasks, StoreError> {
    let rows = bound!(query::count_by_status_capped(D, filter, COUNT_CAP))
        .fetch_all(pool)
        .await?;
    let capped = rows::status_counts(&rows)?;
    if capped.total() <= COUNT_CAP {
        return Ok(CountedTasks::exact(capped));
    }
    let statuses = if filter.statuses.is_empty() {
        Status::ALL.to_vec()
    } else {
        filter.statuses.clone()
    };
    let mut counts = StatusCounts::default();
    for status in statuses {
        let (sql, values) =
            query::matches_of_status(D, filter, status).build_sqlx(PostgresQueryBuilder);
        let plan: String = sqlx::query_scalar_with(AssertSqlSafe(format!("EXPLAIN {sql}")), values)
            .fetch_one(pool)
            .await?;
        let rows = plan_rows(&plan)
            .ok_or_else(|| corrupt(format!("EXPLAIN gave no row estimate: {plan}")))?;
        counts.0.insert(status, rows);
    }
    // The planner may guess below what the capped count saw (a stale ANALYZE, a rare
    // search): then only an exact count is worth showing.
    if counts.total() <= COUNT_CAP {
        return count_by_status(pool, filter).await.map(CountedTasks::exact);
    }
    Ok(CountedTasks {
        counts,
        exact: false,
    })
}

/// The row estimate of a plan's top node: `Seq Scan on tasks  (cost=… rows=N width=…)`.
fn plan_rows(plan_line: &str) -> Option<u64> {
    let rest = &plan_line[plan_line.find(" rows=")? + " rows=".len()..];
    rest[..rest.find(' ')?].parse().ok()
}

fn allowed_condition(request: &ActionRequest) -> Expr {
    Expr::col("status").is_in(query::statuses(request.action.allowed_from()))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

crate::access::access_store!(PgStore, sea_query::PostgresQueryBuilder, pool, pool);
crate::jobs::job_store!(PgStore, sea_query::PostgresQueryBuilder, pool, pool);

#[async_trait]
impl Store for PgStore {
    async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for chunk in tasks.chunks(CHUNK) {
            bound!(query::insert_tasks(chunk)).execute(&mut *tx).await?;
            bound!(query::insert_entities(chunk))
                .execute(&mut *tx)
                .await?;
        }
        let messages: Vec<(&str, Phase, &Message)> = tasks
            .iter()
            .flat_map(|t| {
                t.import_messages
                    .iter()
                    .map(move |m| (t.id.as_str(), Phase::Import, m))
            })
            .collect();
        insert_logs(&mut tx, &messages).await?;
        let routes: HashSet<&str> = tasks.iter().map(|t| t.route.as_str()).collect();
        for route in routes {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NEW_TASKS_CHANNEL)
                .bind(route)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_tasks(&self, q: &TaskQuery) -> Result<TaskPage, StoreError> {
        let (list, chosen_by) = self.list_statement(q).await?;
        let rows = bound!(list).fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(rows::summary)
            .collect::<Result<Vec<_>, _>>()?;
        let known = chosen_by.and_then(|c| c.answers(q));
        let counted: Option<i64> = match (query::list_count(D, q), known) {
            (Some(_), Some(known)) => Some(known),
            (Some(count), None) => Some(bound!(count).fetch_one(&self.pool).await?.try_get(0)?),
            (None, _) => None,
        };
        let (total, total_exact) = query::page_total(q, counted);
        Ok(TaskPage {
            items,
            total,
            total_exact,
        })
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> Result<StatusCounts, StoreError> {
        count_by_status(&self.pool, filter).await
    }

    async fn estimate_counts(&self, filter: &TaskFilter) -> Result<CountedTasks, StoreError> {
        estimate_by_status(&self.pool, filter).await
    }

    async fn counts_by_route(&self) -> Result<BTreeMap<String, StatusCounts>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT route, status, COUNT(*) FROM tasks GROUP BY route, status")
                .fetch_all(&self.pool)
                .await?;
        let mut out: BTreeMap<String, StatusCounts> = BTreeMap::new();
        for (route, status, n) in rows {
            out.entry(route)
                .or_default()
                .0
                .insert(rows::status(&status)?, n as u64);
        }
        Ok(out)
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        fetch_task(&self.pool, id, false).await
    }

    async fn messages(
        &self,
        id: &TaskId,
        phase: Phase,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM tasks WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT lines FROM task_logs WHERE task_id = $1 AND phase = $2 ORDER BY id",
        )
        .bind(id.as_str())
        .bind(phase.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows::messages(id, rows).map(Some)
    }

    async fn attempts(&self, id: &TaskId) -> Result<Vec<Attempt>, StoreError> {
        let rows: Vec<(i64, i64, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT attempt, started_at, ended_at, outcome, error FROM task_attempts WHERE task_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(attempt, started, ended, outcome, error)| {
                Ok(Attempt {
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    started_at: Timestamp::from_millis(started),
                    ended_at: Timestamp::from_millis(ended),
                    outcome: rows::status(&outcome)?,
                    error,
                })
            })
            .collect()
    }

    async fn task_actions(&self, id: &TaskId) -> Result<Vec<ActionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.at, a.actor, a.action, a.reason, a.origin, a.target, a.matched, a.changed, a.ineligible, a.not_found
             FROM task_actions t JOIN operator_actions a ON a.id = t.action_id
             WHERE t.task_id = $1 ORDER BY a.id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::action).collect()
    }

    async fn act_on_task(&self, id: &TaskId, request: &ActionRequest) -> Result<Task, ActionError> {
        let mut tx = self.write().await?;
        let Some(task) = fetch_task(&mut *tx, id, true).await? else {
            tx.rollback().await.map_err(StoreError::from)?;
            return Err(ActionError::NotFound(id.clone()));
        };
        if let Err(reason) = request.action.apply(task.summary.status) {
            tx.rollback().await.map_err(StoreError::from)?;
            return Err(ActionError::NotEligible {
                id: id.clone(),
                reason,
            });
        }
        let target = serde_json::json!({ "identifiers": [id.as_str()] });
        let action_id = record_action(&mut tx, request, &target).await?;
        let cond = sea_query::Cond::all()
            .add(Expr::col("id").eq(id.as_str()))
            .add(allowed_condition(request));
        let (changed, _) = apply_to_eligible(&mut tx, cond, action_id, request).await?;
        let outcome = BulkOutcome {
            matched: 1,
            changed,
            ineligible: 1 - changed,
            not_found: 0,
        };
        finish_action(&mut tx, action_id, &outcome).await?;
        let task = fetch_task(&mut *tx, id, false)
            .await?
            .ok_or_else(|| ActionError::NotFound(id.clone()))?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(task)
    }

    async fn act_on_ids(
        &self,
        ids: &[TaskId],
        request: &ActionRequest,
    ) -> Result<BulkOutcome, StoreError> {
        let mut seen = HashSet::new();
        let unique: Vec<&str> = ids
            .iter()
            .map(TaskId::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        let mut tx = self.write().await?;
        let action_id = record_action(
            &mut tx,
            request,
            &serde_json::json!({ "identifiers": unique }),
        )
        .await?;
        let mut outcome = BulkOutcome::default();
        for chunk in unique.chunks(CHUNK) {
            let found: i64 = bound!(
                Query::select()
                    .expr(sea_query::Func::count(Expr::col(sea_query::Asterisk)))
                    .from(TASKS)
                    .and_where(Expr::col("id").is_in(chunk.iter().copied()))
                    .to_owned()
            )
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let cond = sea_query::Cond::all()
                .add(Expr::col("id").is_in(chunk.iter().copied()))
                .add(allowed_condition(request));
            outcome.changed += apply_to_eligible(&mut tx, cond, action_id, request)
                .await?
                .0;
            outcome.matched += found as u64;
            outcome.not_found += chunk.len() as u64 - found as u64;
        }
        outcome.ineligible = outcome.matched - outcome.changed;
        finish_action(&mut tx, action_id, &outcome).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn begin_filter_action(
        &self,
        filter: &TaskFilter,
        request: &ActionRequest,
    ) -> Result<FilterAction, StoreError> {
        let mut tx = self.write().await?;
        let target = serde_json::json!({ "filter": filter.to_json() });
        let action_id = record_action(&mut tx, request, &target).await?;
        let counts = count_by_status(&mut *tx, filter).await?;
        let begun = FilterAction::counted(action_id, &counts, request.action);
        // Known now: the entry shows them from the start, whatever becomes of the action.
        sqlx::query("UPDATE operator_actions SET matched = $1, ineligible = $2 WHERE id = $3")
            .bind(begun.matched as i64)
            .bind(begun.matched.saturating_sub(begun.eligible) as i64)
            .bind(action_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(begun)
    }

    async fn step_filter_action(
        &self,
        filter: &TaskFilter,
        request: &ActionRequest,
        action_id: i64,
        after: Option<&TaskId>,
        limit: u32,
    ) -> Result<FilterStep, StoreError> {
        let Some(eligible) = step_filter(filter, request) else {
            return Ok(FilterStep::default());
        };
        // Two lanes side by side, each its own transaction on its own connection, from
        // the same place: one statement keeps one backend, one core, busy (a changed
        // task gets a new entry in every index of `tasks`). Rows one lane holds the
        // other skips, so they take disjoint tasks, together the first `limit` not held
        // elsewhere. (Splitting at the `limit / 2`th task instead, so that each lane
        // changes rows lying together, measured slower: 27.7 against 24.2 s a 1M retry.)
        let second = limit / 2;
        let lane = |limit| self.filter_lane(&eligible, request, action_id, after, limit);
        let (a, b) = tokio::join!(lane(limit - second), async {
            match second {
                0 => Ok(FilterStep::default()),
                _ => lane(second).await,
            }
        });
        match (a, b) {
            (Ok(a), Ok(b)) => {
                let changed = a.changed + b.changed;
                Ok(FilterStep {
                    changed,
                    resume_after: a.resume_after.max(b.resume_after),
                    more: changed >= limit,
                })
            }
            // One lane failed after the other changed tasks: those count, and the next
            // step starts from the same place again (they are no longer eligible there),
            // so it takes the failed lane's tasks.
            (Ok(done), Err(e)) | (Err(e), Ok(done)) if done.changed > 0 => {
                tracing::warn!(error = %e, changed = done.changed, "one lane of a bulk step failed; the next step takes its tasks");
                Ok(FilterStep {
                    changed: done.changed,
                    resume_after: after.cloned(),
                    more: true,
                })
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    async fn finish_filter_action(
        &self,
        action_id: i64,
        outcome: &BulkOutcome,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        finish_action(&mut tx, action_id, outcome).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim(&self, r: &ClaimRequest<'_>) -> Result<Vec<Task>, StoreError> {
        let mut tasks = self.claim_some(r, r.limit).await?;
        // Short: other nodes may have held the candidates this claim read (it reads twice
        // its limit, and a third node racing two others finds them all held). Once more,
        // in a new snapshot, where what they took is no longer new; a drain stops at the
        // first batch that is not full.
        let short = r.limit - tasks.len() as u32;
        if short > 0 {
            tasks.extend(self.claim_some(r, short).await?);
        }
        tasks.sort_by(|a, b| {
            (a.summary.created_at, &a.summary.id).cmp(&(b.summary.created_at, &b.summary.id))
        });
        Ok(tasks)
    }

    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<u64, StoreError> {
        if completions.is_empty() {
            return Ok(0);
        }
        // One statement, so one round trip and one commit: the UPDATE … FROM UNNEST
        // changes only the tasks this worker still holds, and exactly those get their
        // attempt and their messages (in order: the ORDER BY runs before the id
        // sequence is drawn), from the same arrays. The status is compared with a column
        // of `c`, not a literal: with the literal PostgreSQL matches the partial index
        // `tasks_lease`, believes (from statistics taken when few tasks were processing)
        // it holds one row, and hashes every processing task of every worker on each call
        // (15-20 ms at 9,000 held tasks, against 0.4 ms through the primary key). The
        // worker is compared the same way: statistics taken while no task was held say
        // no row has that owner. The bound arrays are guessed at 10 rows, so the primary
        // key won so far; given their length (literal arrays in `psql`), PostgreSQL
        // instead scanned all of `tasks` for the one "row" and joined it with every
        // completion: 300-400 ms a call of 1,000 at 200,000 tasks, against 37 ms.
        let next_attempt = |c: &Completion| match &c.outcome {
            Outcome::Retry { at, .. } => Some(at.millis()),
            _ => None,
        };
        // A completion's log lines are one `task_logs` row.
        let lines: Vec<(&str, Phase, &Message)> = completions
            .iter()
            .flat_map(|c| c.messages.iter().map(|m| (c.id.as_str(), Phase::Export, m)))
            .collect();
        let logs = rows::log_rows(&lines);
        let updated: HashSet<String> = sqlx::query_scalar(
            "WITH c AS (
                 SELECT *, 'processing'::text AS held, $8::text AS owner
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                             $6::bigint[], $7::bigint[], $11::text[], $12::text[])
                     WITH ORDINALITY AS c (id, status, ended_at, last_error, next_attempt_at, attempt, started_at, response, published, ord)),
             upd AS (
                 UPDATE tasks t SET status = c.status, updated_at = c.ended_at,
                        last_error = c.last_error, next_attempt_at = c.next_attempt_at,
                        response = COALESCE(c.response, t.response),
                        lease_owner = NULL, lease_until = NULL
                 FROM c
                 WHERE t.id = c.id AND t.status = c.held AND t.lease_owner = c.owner
                 RETURNING t.id, t.route, t.entity_identifier),
             digests AS (
                 -- An entity's last finished completion of the call (by its order) wins.
                 INSERT INTO published_digests (route, entity_identifier, digest, task_id)
                 SELECT DISTINCT ON (upd.route, upd.entity_identifier)
                        upd.route, upd.entity_identifier, c.published, c.id
                 FROM c JOIN upd ON upd.id = c.id
                 WHERE c.published IS NOT NULL AND c.status = 'finished'
                 ORDER BY upd.route, upd.entity_identifier, c.ord DESC
                 ON CONFLICT (route, entity_identifier)
                 DO UPDATE SET digest = EXCLUDED.digest, task_id = EXCLUDED.task_id),
             attempts AS (
                 INSERT INTO task_attempts (task_id, attempt, started_at, ended_at, outcome, error)
                 SELECT c.id, c.attempt, c.started_at, c.ended_at, c.status, c.last_error
                 FROM c JOIN upd ON upd.id = c.id
                 ORDER BY c.ord),
             logs AS (
                 INSERT INTO task_logs (task_id, phase, lines)
                 SELECT m.task_id, 'export', m.lines
                 FROM UNNEST($9::text[], $10::text[]) WITH ORDINALITY AS m (task_id, lines, ord)
                      JOIN upd ON upd.id = m.task_id
                 ORDER BY m.ord)
             SELECT id FROM upd",
        )
        .bind(
            completions
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            completions
                .iter()
                .map(|c| c.outcome.status().as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            completions
                .iter()
                .map(|c| c.ended_at.millis())
                .collect::<Vec<_>>(),
        )
        .bind(
            completions
                .iter()
                .map(|c| c.outcome.error())
                .collect::<Vec<_>>(),
        )
        .bind(completions.iter().map(next_attempt).collect::<Vec<_>>())
        .bind(
            completions
                .iter()
                .map(|c| i64::from(c.attempt))
                .collect::<Vec<_>>(),
        )
        .bind(
            completions
                .iter()
                .map(|c| c.started_at.millis())
                .collect::<Vec<_>>(),
        )
        .bind(worker)
        .bind(logs.iter().map(|(id, _, _)| *id).collect::<Vec<_>>())
        .bind(logs.iter().map(|(_, _, l)| l.as_str()).collect::<Vec<_>>())
        .bind(
            completions
                .iter()
                .map(|c| c.response.as_ref().map(serde_json::Value::to_string))
                .collect::<Vec<_>>(),
        )
        .bind(
            completions
                .iter()
                .map(|c| c.published.as_deref())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        let mut recorded = 0;
        for c in completions {
            if updated.contains(c.id.as_str()) {
                recorded += 1;
            } else {
                tracing::warn!(task = %c.id, worker, "completion ignored: the worker no longer holds the task");
            }
        }
        Ok(recorded)
    }

    async fn release(&self, worker: &str, ids: &[TaskId]) -> Result<u64, StoreError> {
        let list: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        let n = sqlx::query(
            "UPDATE tasks SET status = 'new', attempts = attempts - 1, lease_owner = NULL, lease_until = NULL
             WHERE id = ANY($1) AND status = 'processing' AND lease_owner = $2",
        )
        .bind(&list)
        .bind(worker)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn extend_leases(
        &self,
        worker: &str,
        ids: &[TaskId],
        until: Timestamp,
    ) -> Result<u64, StoreError> {
        let list: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        let n = sqlx::query(
            "UPDATE tasks SET lease_until = $1 WHERE id = ANY($2) AND status = 'processing' AND lease_owner = $3",
        )
        .bind(until.millis())
        .bind(&list)
        .bind(worker)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn sync_schedules(&self, schedules: &[ScheduleEntry]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
        sqlx::query("DELETE FROM schedules WHERE NOT (name = ANY($1))")
            .bind(&names)
            .execute(&mut *tx)
            .await?;
        for s in schedules {
            sqlx::query(
                "INSERT INTO schedules (name, expression, next_run_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET expression = EXCLUDED.expression, next_run_at = EXCLUDED.next_run_at
                 WHERE schedules.expression <> EXCLUDED.expression",
            )
            .bind(&s.name)
            .bind(&s.expression)
            .bind(s.next_run_at.millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due_schedules(&self, now: Timestamp) -> Result<Vec<ScheduleEntry>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT name, expression, next_run_at FROM schedules WHERE next_run_at <= $1 ORDER BY next_run_at, name",
        )
        .bind(now.millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, expression, next)| ScheduleEntry {
                name,
                expression,
                next_run_at: Timestamp::from_millis(next),
            })
            .collect())
    }

    async fn since_mark(&self, incoming: &str) -> Result<Option<SinceMark>, StoreError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT value, updated_at FROM since_marks WHERE incoming = $1")
                .bind(incoming)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(value, at)| SinceMark {
            value,
            updated_at: Timestamp::from_millis(at),
        }))
    }

    async fn published_digests(
        &self,
        route: &str,
        entities: &[String],
    ) -> Result<HashMap<String, PublishedDigest>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT entity_identifier, digest, task_id FROM published_digests
             WHERE route = $1 AND entity_identifier = ANY($2)",
        )
        .bind(route)
        .bind(entities)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(entity, digest, task)| {
                let task = TaskId::from_stored(task);
                (entity, PublishedDigest { digest, task })
            })
            .collect())
    }

    async fn since_marks(&self) -> Result<BTreeMap<String, SinceMark>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT incoming, value, updated_at FROM since_marks")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(incoming, value, at)| {
                let mark = SinceMark {
                    value,
                    updated_at: Timestamp::from_millis(at),
                };
                (incoming, mark)
            })
            .collect())
    }

    async fn set_since_mark(
        &self,
        incoming: &str,
        value: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO since_marks (incoming, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (incoming) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(incoming)
        .bind(value)
        .bind(at.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reset_since_mark(&self, incoming: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM since_marks WHERE incoming = $1")
            .bind(incoming)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(gone > 0)
    }

    async fn advance_schedule(
        &self,
        name: &str,
        expected: Timestamp,
        next: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "UPDATE schedules SET next_run_at = $1, last_run_at = $2 WHERE name = $3 AND next_run_at = $4",
        )
        .bind(next.millis())
        .bind(now.millis())
        .bind(name)
        .bind(expected.millis())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(moved == 1)
    }

    async fn prune(&self, rule: &PruneRule, batch: u32) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(PRUNE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !ours {
            tx.rollback().await?;
            return Ok(0); // another node is pruning
        }
        let before = Expr::col("updated_at").lt(rule.updated_before.millis());
        let mut ids = final_ids(&mut tx, before, u64::from(batch)).await?;
        if rule.counts(ids.len(), batch) {
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
                .fetch_one(&mut *tx)
                .await?;
            let take = rule.over_limit(total as u64, ids.len(), batch);
            if take > 0 {
                let since = Expr::col("updated_at").gte(rule.updated_before.millis());
                ids.extend(final_ids(&mut tx, since, take).await?);
            }
        }
        // Only the tasks still final when deleted go, and their history with them: a
        // task retried since it was chosen keeps its log, attempts and entity.
        let deleted: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM tasks WHERE id = ANY($1) AND status IN ('finished', 'skipped', 'failed')
                 RETURNING id),
             entities AS (DELETE FROM task_entities WHERE task_id IN (SELECT id FROM gone)),
             logs AS (DELETE FROM task_logs WHERE task_id IN (SELECT id FROM gone)),
             attempts AS (DELETE FROM task_attempts WHERE task_id IN (SELECT id FROM gone))
             SELECT COUNT(*) FROM gone",
        )
        .bind(&ids)
        .fetch_one(&mut *tx)
        .await?;
        let deleted = deleted as u64;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn list_actions(
        &self,
        query: &AuditQuery,
    ) -> Result<(Vec<ActionRecord>, u64), StoreError> {
        let rows = bound!(query::actions(query, false))
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = bound!(query::actions(query, true))
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let items = rows
            .iter()
            .map(rows::action)
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((items, total as u64))
    }

    async fn tasks_after(
        &self,
        after: Option<&TaskId>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = bound!(query::tasks_after(after, limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::detail).collect()
    }

    async fn import_actions(&self, actions: &[ActionRecord]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.write().await?;
        let mut ids = Vec::with_capacity(actions.len());
        for a in actions {
            let id: i64 = bound!(query::import_action(a))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn import_tasks(&self, records: &[TaskRecord]) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let mut created = 0;
        let mut logs: Vec<(&str, Phase, Message)> = Vec::new();
        let mut attempts: Vec<query::AttemptRow> = Vec::new();
        let mut links: Vec<(&str, i64)> = Vec::new();
        let now = Timestamp::now();
        for r in records {
            let import = query::import_task(r, now);
            if bound!(import.task).execute(&mut *tx).await?.rows_affected() == 0 {
                continue; // already there
            }
            created += 1;
            let id = r.task.summary.id.as_str();
            sqlx::query("INSERT INTO task_entities (task_id, entity_data) VALUES ($1, $2)")
                .bind(id)
                .bind(r.task.entity_data.to_string())
                .execute(&mut *tx)
                .await?;
            logs.extend(import.messages.into_iter().map(|(p, m)| (id, p, m)));
            attempts.extend(r.attempts.iter().map(|a| query::attempt_row(id, a)));
            links.extend(r.action_ids.iter().map(|&a| (id, a)));
        }
        // In chunks: a statement takes at most 65,535 parameters, which one task's long
        // log could pass.
        let lines: Vec<(&str, Phase, &Message)> =
            logs.iter().map(|(id, p, m)| (*id, *p, m)).collect();
        insert_logs(&mut tx, &lines).await?;
        for chunk in attempts.chunks(CHUNK) {
            bound!(query::insert_attempts(chunk))
                .execute(&mut *tx)
                .await?;
        }
        for chunk in links.chunks(CHUNK) {
            bound!(query::insert_links(chunk)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn recover_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n = sqlx::query(
            "WITH expired AS (
                 SELECT id, lease_owner FROM tasks WHERE status = 'processing' AND lease_until < $1
                 FOR UPDATE SKIP LOCKED),
             upd AS (
                 UPDATE tasks t SET status = 'new', updated_at = $1, lease_owner = NULL, lease_until = NULL
                 FROM expired e WHERE t.id = e.id RETURNING t.id)
             INSERT INTO task_logs (task_id, phase, lines)
             SELECT e.id, 'export', json_build_array(json_build_array($1::bigint, 'warn',
                    'returned to new: the lease of worker ' || COALESCE(e.lease_owner, '?') || ' expired before it finished'))::text
             FROM expired e JOIN upd ON upd.id = e.id",
        )
        .bind(now.millis())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    async fn new_task_events(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&self.pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for new tasks; realtime routes fall back to polling");
                return None;
            }
        };
        if let Err(e) = listener.listen(NEW_TASKS_CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for new tasks; realtime routes fall back to polling");
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        if tx.send(n.payload().to_owned()).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "new-task notifications interrupted; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::plan_rows;

    #[test]
    fn a_plan_line_gives_its_row_estimate() {
        let line = "Bitmap Heap Scan on tasks  (cost=4.21..14.39 rows=1200 width=4)";
        assert_eq!(plan_rows(line), Some(1200));
        assert_eq!(
            plan_rows("Result  (cost=0.00..0.01 rows=1 width=4)"),
            Some(1)
        );
        assert_eq!(plan_rows("no estimate here"), None);
    }
}
