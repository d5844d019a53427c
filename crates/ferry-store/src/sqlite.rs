//! The SQLite store: the embedded default.
//!
//! One writer connection (SQLite has one writer at a time; a single connection avoids
//! busy loops inside the process) in WAL mode, and a pool of readers that never block
//! on it. Write transactions start with `BEGIN IMMEDIATE`, so a second process sharing
//! the file waits on the busy timeout instead of failing half-way.

use crate::query::{self, AttemptRow, Dialect, TASKS, action_message, action_update};
use crate::rows;
use crate::store::*;
use async_trait::async_trait;
use ferry_core::filter::CountMode;
use ferry_core::task::{Level, Message, NewTask, Phase, Task};
use ferry_core::{Status, TaskFilter, TaskId, TaskQuery, Timestamp};
use sea_query::{Cond, Expr, ExprTrait, Query, SelectStatement, SqliteQueryBuilder};
use sea_query_sqlx::SqlxBinder;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

const D: Dialect = Dialect::Sqlite;
/// Page cache per connection (negative: KiB). Larger is slower here: every commit walks
/// the whole cache (SQLite truncates it to the database size at the end of each write
/// transaction), and with 256 MB that walk took a third of a route run's time.
const CACHE_KIB: &str = "-16384";
/// Pages are read through a memory map of up to this many bytes (shared by every
/// connection, in the OS page cache) instead of a read call each; pages missing from
/// the cache cost a lookup, not a copy.
const MMAP_BYTES: &str = "4294967296";
/// The write-ahead log is copied back into the database after this many pages (80 MB)
/// rather than SQLite's 1,000: hot index pages are then copied once per checkpoint, not
/// once per few commits (claims 12.3k → 17.2k tasks/s, route runs +8% at 200k tasks).
const WAL_CHECKPOINT_PAGES: &str = "20000";
/// Rows per multi-row statement, well under SQLite's bound-variable limit.
const CHUNK: usize = 500;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_tasks.sql")),
    (2, include_str!("../migrations/sqlite/0002_schedules.sql")),
    (3, include_str!("../migrations/sqlite/0003_access.sql")),
    (4, include_str!("../migrations/sqlite/0004_search.sql")),
    (5, include_str!("../migrations/sqlite/0005_bulk_jobs.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_task_entities.sql"),
    ),
    (7, include_str!("../migrations/sqlite/0007_task_counts.sql")),
    (
        8,
        include_str!("../migrations/sqlite/0008_batched_indexing.sql"),
    ),
    (9, include_str!("../migrations/sqlite/0009_task_logs.sql")),
    (
        10,
        include_str!("../migrations/sqlite/0010_no_final_index.sql"),
    ),
    (
        11,
        include_str!("../migrations/sqlite/0011_updated_covering.sql"),
    ),
    (
        12,
        include_str!("../migrations/sqlite/0012_bulk_job_runner.sql"),
    ),
    (
        13,
        include_str!("../migrations/sqlite/0013_user_names_folded.sql"),
    ),
    (
        14,
        include_str!("../migrations/sqlite/0014_since_marks.sql"),
    ),
    (
        15,
        include_str!("../migrations/sqlite/0015_task_response.sql"),
    ),
    (
        16,
        include_str!("../migrations/sqlite/0016_published_digests.sql"),
    ),
];

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// See [`SqliteStore::reading_in_updated_order_from`].
    updated_order_from: u64,
}

/// A list by updated-at whose filter SQLite would serve from another index (its
/// matches gathered, then sorted) reads `tasks_updated` in order instead (every task
/// looked at, until the page is full) when that looks at fewer rows. With M matches of
/// T tasks, the page ending at row P is found within about P × T / M rows, so that way
/// wins when M² > P × T; and never below this many matches, few enough to sort at once.
const UPDATED_ORDER_FROM: u64 = 2_000;

type Tx = Transaction<'static, Sqlite>;

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", CACHE_KIB)
            .pragma("mmap_size", MMAP_BYTES)
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            writer,
            reader,
            updated_order_from: UPDATED_ORDER_FROM,
        })
    }

    /// Lists by updated-at read `tasks_updated` in order from `matches` matches on
    /// (see [`UPDATED_ORDER_FROM`]); 0 makes every such list read it, as the
    /// conformance suite does in a second run, so that way meets every filter case.
    pub fn reading_in_updated_order_from(mut self, matches: u64) -> SqliteStore {
        self.updated_order_from = matches;
        self
    }

    async fn write(&self) -> Result<Tx, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    migrate_with(pool, MIGRATIONS).await
}

async fn migrate_with(
    pool: &SqlitePool,
    migrations: &[(i64, &'static str)],
) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS ferry_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    for &(version, sql) in migrations {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM ferry_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|source| StoreError::Migration { version, source })?;
        sqlx::query("INSERT INTO ferry_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(Timestamp::now().millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

/// Runs a sea-query statement on `executor`.
macro_rules! bound {
    ($stmt:expr) => {{
        let (sql, values) = $stmt.build_sqlx(SqliteQueryBuilder);
        sqlx::query_with(AssertSqlSafe(sql), values)
    }};
}

/// A task row with its entity (kept apart, in `task_entities`), as `rows::detail` reads it.
const DETAIL_SELECT: &str = "SELECT t.id AS id, t.route AS route, t.entity_schema AS entity_schema,
        t.entity_identifier AS entity_identifier, t.status AS status, t.attempts AS attempts,
        t.created_at AS created_at, t.updated_at AS updated_at, e.entity_data AS entity_data,
        t.last_error AS last_error, t.next_attempt_at AS next_attempt_at, t.response AS response
     FROM tasks t JOIN task_entities e ON e.task_id = t.id";

async fn fetch_task<'e, E>(executor: E, id: &TaskId) -> Result<Option<Task>, StoreError>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(AssertSqlSafe(format!("{DETAIL_SELECT} WHERE t.id = ?")))
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?
        .as_ref()
        .map(rows::detail)
        .transpose()
}

/// `INSERT INTO {head} VALUES {row}, {row}, …` for `n` rows; the full-chunk texts are
/// made once, so each chunk is one prepared statement from sqlx's cache.
fn multi_row(head: &str, row: &str, n: usize) -> String {
    let mut sql = String::with_capacity(head.len() + 20 + n * (row.len() + 2));
    sql.push_str("INSERT INTO ");
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

/// Makes the tasks just inserted in this transaction searchable (`task_search` gives each
/// a rowid; `task_entity_fts` and `task_id_grams` index it) and adds them to the running
/// counts (`task_counts`): one statement per table for the whole batch, which costs a
/// fraction of what a trigger per row did.
async fn index_inserted(tx: &mut Tx, tasks: &[(&str, &str, Status)]) -> Result<(), StoreError> {
    if tasks.is_empty() {
        return Ok(());
    }
    // The one writer gives the new rows rowids above every rowid there now.
    let before: i64 = sqlx::query("SELECT COALESCE(MAX(rowid), 0) FROM task_search")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    for chunk in tasks.chunks(CHUNK) {
        let sql = multi_row("task_search (task_id)", "(?)", chunk.len());
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, _, _) in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    for (table, columns, values) in [
        (
            "task_entity_fts",
            "entity_identifier",
            "t.entity_identifier".to_owned(),
        ),
        ("task_id_grams", "grams", query::id_grams_sql("t.id")),
    ] {
        let sql = format!(
            "INSERT INTO {table} (rowid, {columns}) SELECT s.rowid, {values}
             FROM task_search s JOIN tasks t ON t.id = s.task_id WHERE s.rowid > ?"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(before)
            .execute(&mut **tx)
            .await?;
    }
    let mut counts = CountChanges::default();
    for (_, route, status) in tasks {
        counts.add(route, *status, 1);
    }
    counts.store(tx).await
}

/// How many tasks are stored, from the running counts (`task_counts`), which change in
/// the same transactions as the tasks: exact, without counting a million rows.
async fn stored_tasks(conn: &mut sqlx::SqliteConnection) -> Result<u64, StoreError> {
    let total: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(n), 0) FROM task_counts")
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(total).unwrap_or(0))
}

/// Changes to the running counts (`task_counts`, migration 0007) by route and status.
/// The statements that insert tasks or change their status collect them and store them
/// in the same transaction, one statement for a whole batch (migration 0008 dropped the
/// triggers that did it a row at a time); deleted tasks are still counted by a trigger.
#[derive(Default)]
struct CountChanges(BTreeMap<(String, Status), i64>);

impl CountChanges {
    fn add(&mut self, route: &str, status: Status, n: i64) {
        *self.0.entry((route.to_owned(), status)).or_default() += n;
    }

    /// `n` tasks of `route` went from `from` to `to`.
    fn moved(&mut self, route: &str, from: Status, to: Status, n: i64) {
        if from != to {
            self.add(route, from, -n);
            self.add(route, to, n);
        }
    }

    async fn store(self, tx: &mut Tx) -> Result<(), StoreError> {
        let changes: Vec<_> = self.0.into_iter().filter(|(_, n)| *n != 0).collect();
        for chunk in changes.chunks(CHUNK) {
            let sql = multi_row("task_counts (route, status, n)", "(?, ?, ?)", chunk.len())
                + " ON CONFLICT (route, status) DO UPDATE SET n = n + excluded.n";
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((route, status), n) in chunk {
                q = q.bind(route.as_str()).bind(status.as_str()).bind(*n);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// The final tasks whose updated-at meets `updated`, oldest first, at most `limit`.
async fn final_ids(tx: &mut Tx, updated: Expr, limit: u64) -> Result<Vec<String>, StoreError> {
    let (sql, values) = query::final_by_updated(updated, limit).build_sqlx(SqliteQueryBuilder);
    Ok(sqlx::query_scalar_with(AssertSqlSafe(sql), values)
        .fetch_all(&mut **tx)
        .await?)
}

/// Appends log lines, (task id, phase, line) in order: the lines of one task and phase
/// become one `task_logs` row.
async fn insert_logs(tx: &mut Tx, rows: &[(&str, Phase, &Message)]) -> Result<(), StoreError> {
    for chunk in rows::log_rows(rows).chunks(CHUNK) {
        let sql = multi_row(
            "task_logs (task_id, phase, lines)",
            "(?, ?, ?)",
            chunk.len(),
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, phase, lines) in chunk {
            q = q.bind(*id).bind(phase.as_str()).bind(lines);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records attempts.
async fn insert_attempts(tx: &mut Tx, rows: &[AttemptRow<'_>]) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        bound!(query::insert_attempts(chunk))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn record_action(
    tx: &mut Tx,
    request: &ActionRequest,
    target: &serde_json::Value,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO operator_actions (at, actor, action, reason, target, origin, matched, changed, ineligible, not_found)
         VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0) RETURNING id",
    )
    .bind(request.at.millis())
    .bind(&request.actor)
    .bind(request.action.as_str())
    .bind(&request.reason)
    .bind(target.to_string())
    .bind(&request.origin)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

async fn finish_action(tx: &mut Tx, id: i64, o: &BulkOutcome) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE operator_actions SET matched = ?, changed = ?, ineligible = ?, not_found = ? WHERE id = ?",
    )
    .bind(o.matched as i64)
    .bind(o.changed as i64)
    .bind(o.ineligible as i64)
    .bind(o.not_found as i64)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Links, logs and changes the tasks whose identifiers `eligible` selects (a selection
/// already restricted to the statuses the action allows); answers how many changed.
async fn apply_to_eligible(
    tx: &mut Tx,
    eligible: SelectStatement,
    action_id: i64,
    request: &ActionRequest,
) -> Result<u64, StoreError> {
    // The chosen tasks go to a temporary table first: the filter is evaluated once, and
    // the link, the log line and the change are each a plain join on it. Nothing else
    // writes inside this (immediate) transaction, so every chosen task changes.
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS acting (id TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM temp.acting")
        .execute(&mut **tx)
        .await?;
    let (select, values) = eligible.build_sqlx(SqliteQueryBuilder);
    sqlx::query_with(
        AssertSqlSafe(format!("INSERT OR IGNORE INTO temp.acting (id) {select}")),
        values,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT OR IGNORE INTO task_actions (task_id, action_id) SELECT id, ? FROM temp.acting",
    )
    .bind(action_id)
    .execute(&mut **tx)
    .await?;
    let message = action_message(request);
    sqlx::query("INSERT INTO task_logs (task_id, phase, lines) SELECT id, ?, ? FROM temp.acting")
        .bind(Phase::Export.as_str())
        .bind(rows::lines_json(&[(
            request.at.millis(),
            Level::Info.as_str(),
            &message,
        )]))
        .execute(&mut **tx)
        .await?;
    let before: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT route, status, COUNT(*) FROM tasks
         WHERE id IN (SELECT id FROM temp.acting) GROUP BY route, status",
    )
    .fetch_all(&mut **tx)
    .await?;
    let update = action_update(request)
        .and_where(Expr::cust("id IN (SELECT id FROM temp.acting)"))
        .to_owned();
    let changed = bound!(update).execute(&mut **tx).await?.rows_affected();
    let mut counts = CountChanges::default();
    for (route, status, n) in before {
        counts.moved(&route, rows::status(&status)?, request.action.target(), n);
    }
    counts.store(tx).await?;
    Ok(changed)
}

/// Status counts. A filter on routes and statuses alone (or none) reads the running
/// totals of `task_counts` (migration 0007) instead of counting the tasks.
async fn count_by_status<'e>(
    db: impl sqlx::SqliteExecutor<'e>,
    filter: &TaskFilter,
) -> Result<StatusCounts, StoreError> {
    let by_route_and_status = TaskFilter {
        routes: Vec::new(),
        statuses: Vec::new(),
        ..filter.clone()
    } == TaskFilter::default();
    let stmt = if by_route_and_status {
        let mut kept = Query::select()
            .column("status")
            .expr_as(Expr::col("n").sum(), "n")
            .from("task_counts")
            .group_by_col("status")
            .to_owned();
        if !filter.routes.is_empty() {
            kept.and_where(Expr::col("route").is_in(filter.routes.iter().map(String::as_str)));
        }
        if !filter.statuses.is_empty() {
            kept.and_where(Expr::col("status").is_in(query::statuses(&filter.statuses)));
        }
        kept
    } else {
        query::count_by_status(D, filter)
    };
    let rows = bound!(stmt).fetch_all(db).await?;
    rows::status_counts(&rows)
}

/// The tasks a condition selects, to act on.
fn chosen(cond: Cond) -> SelectStatement {
    Query::select()
        .column("id")
        .from(TASKS)
        .cond_where(cond)
        .to_owned()
}

fn allowed_condition(request: &ActionRequest) -> Expr {
    status_checked().is_in(query::statuses(request.action.allowed_from()))
}

/// `status` as a condition checked on the rows that a list of identifiers finds. Plain
/// `status`, next to a few hundred identifiers, made SQLite's planner walk an index on
/// `status` through every task of that status instead: with 50,000 tasks processing,
/// updates of 200 leased tasks took four times as long.
fn status_checked() -> Expr {
    Expr::cust("+status")
}

crate::access::access_store!(SqliteStore, SqliteQueryBuilder, reader, writer);
crate::jobs::job_store!(SqliteStore, SqliteQueryBuilder, reader, writer);

impl SqliteStore {
    /// The statement of a list: by updated-at in `tasks_updated` order when a filter
    /// that SQLite would serve from another index has many matches (a capped count
    /// tells), else the usual one. With the count made to choose, which counts on up to
    /// [`crate::COUNT_CAP`] when the list is counted, so that it also gives the total.
    async fn list_statement(
        &self,
        conn: &mut sqlx::SqliteConnection,
        q: &TaskQuery,
    ) -> Result<(SelectStatement, Option<query::Counted>), StoreError> {
        if !query::sorts_many_by_updated(q) {
            return Ok((query::list(D, q), None));
        }
        if self.updated_order_from == 0 {
            return Ok((query::list_in_updated_order(q), None));
        }
        let total = stored_tasks(&mut *conn).await?;
        let page_end = q.page.offset() + u64::from(q.page.per_page);
        let cap = std::cmp::max(
            self.updated_order_from,
            page_end.saturating_mul(total).isqrt(),
        );
        let counting = match q.count {
            CountMode::Skip => cap,
            _ => std::cmp::max(cap, crate::COUNT_CAP),
        };
        let matches: i64 = bound!(query::count_capped(D, &q.filter, counting))
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let counted = query::Counted {
            matches: u64::try_from(matches).unwrap_or(0),
            cap: counting,
        };
        let list = match counted.matches > cap {
            true => query::list_in_updated_order(q),
            false => query::list(D, q),
        };
        Ok((list, Some(counted)))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_tasks(&self, tasks: &[NewTask]) -> Result<(), StoreError> {
        // Serialized before the write transaction, which then holds the database only
        // for the inserts.
        let entities: Vec<String> = tasks.iter().map(|t| t.entity_data.to_string()).collect();
        let mut tx = self.write().await?;
        for (chunk, entities) in tasks.chunks(CHUNK).zip(entities.chunks(CHUNK)) {
            let sql = multi_row(
                "tasks (id, route, entity_schema, entity_identifier, status, attempts, created_at, updated_at)",
                "(?, ?, ?, ?, 'new', 0, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for t in chunk {
                q = q
                    .bind(t.id.as_str())
                    .bind(t.route.as_str())
                    .bind(t.entity_schema.as_str())
                    .bind(t.entity_identifier.as_str())
                    .bind(t.created_at.millis())
                    .bind(t.created_at.millis());
            }
            q.execute(&mut *tx).await?;
            let sql = multi_row(
                "task_entities (task_id, entity_data)",
                "(?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (t, e) in chunk.iter().zip(entities) {
                q = q.bind(t.id.as_str()).bind(e.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        let inserted: Vec<(&str, &str, Status)> = tasks
            .iter()
            .map(|t| (t.id.as_str(), t.route.as_str(), Status::New))
            .collect();
        index_inserted(&mut tx, &inserted).await?;
        let messages: Vec<(&str, Phase, &Message)> = tasks
            .iter()
            .flat_map(|t| {
                t.import_messages
                    .iter()
                    .map(move |m| (t.id.as_str(), Phase::Import, m))
            })
            .collect();
        insert_logs(&mut tx, &messages).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_tasks(&self, q: &TaskQuery) -> Result<TaskPage, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let (list, chosen_by) = self.list_statement(&mut conn, q).await?;
        let rows = bound!(list).fetch_all(&mut *conn).await?;
        let items = rows
            .iter()
            .map(rows::summary)
            .collect::<Result<Vec<_>, _>>()?;
        let known = chosen_by.and_then(|c| c.answers(q));
        let counted: Option<i64> = match (query::list_count(D, q), known) {
            (Some(_), Some(known)) => Some(known),
            (Some(count), None) => Some(bound!(count).fetch_one(&mut *conn).await?.try_get(0)?),
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
        count_by_status(&self.reader, filter).await
    }

    async fn counts_by_route(&self) -> Result<BTreeMap<String, StatusCounts>, StoreError> {
        let rows = sqlx::query("SELECT route, status, n FROM task_counts WHERE n > 0")
            .fetch_all(&self.reader)
            .await?;
        let mut out: BTreeMap<String, StatusCounts> = BTreeMap::new();
        for row in rows {
            let route: String = row.try_get(0)?;
            let status: String = row.try_get(1)?;
            let n: i64 = row.try_get(2)?;
            let s = rows::status(&status)?;
            out.entry(route).or_default().0.insert(s, n as u64);
        }
        Ok(out)
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        fetch_task(&self.reader, id).await
    }

    async fn messages(
        &self,
        id: &TaskId,
        phase: Phase,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM tasks WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT lines FROM task_logs WHERE task_id = ? AND phase = ? ORDER BY id",
        )
        .bind(id.as_str())
        .bind(phase.as_str())
        .fetch_all(&mut *conn)
        .await?;
        rows::messages(id, rows).map(Some)
    }

    async fn attempts(&self, id: &TaskId) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, started_at, ended_at, outcome, error FROM task_attempts WHERE task_id = ? ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get(3)?;
                Ok(Attempt {
                    attempt: u32::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                    started_at: Timestamp::from_millis(r.try_get(1)?),
                    ended_at: Timestamp::from_millis(r.try_get(2)?),
                    outcome: rows::status(&outcome)?,
                    error: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn task_actions(&self, id: &TaskId) -> Result<Vec<ActionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.at, a.actor, a.action, a.reason, a.origin, a.target, a.matched, a.changed, a.ineligible, a.not_found
             FROM task_actions t JOIN operator_actions a ON a.id = t.action_id
             WHERE t.task_id = ? ORDER BY a.id",
        )
        .bind(id.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::action).collect()
    }

    async fn act_on_task(&self, id: &TaskId, request: &ActionRequest) -> Result<Task, ActionError> {
        let mut tx = self.write().await?;
        let Some(task) = fetch_task(&mut *tx, id).await? else {
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
        let changed = apply_to_eligible(&mut tx, chosen(cond), action_id, request).await?;
        let outcome = BulkOutcome {
            matched: 1,
            changed,
            ineligible: 1 - changed,
            not_found: 0,
        };
        finish_action(&mut tx, action_id, &outcome).await?;
        let task = fetch_task(&mut *tx, id)
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
        let target = serde_json::json!({ "identifiers": unique });
        let action_id = record_action(&mut tx, request, &target).await?;
        let mut outcome = BulkOutcome::default();
        for chunk in unique.chunks(CHUNK) {
            let found = bound!(
                Query::select()
                    .expr(sea_query::Func::count(Expr::col(sea_query::Asterisk)))
                    .from(TASKS)
                    .and_where(Expr::col("id").is_in(chunk.iter().copied()))
                    .to_owned()
            )
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>(0)? as u64;
            let cond = sea_query::Cond::all()
                .add(Expr::col("id").is_in(chunk.iter().copied()))
                .add(allowed_condition(request));
            let changed = apply_to_eligible(&mut tx, chosen(cond), action_id, request).await?;
            outcome.matched += found;
            outcome.changed += changed;
            outcome.not_found += chunk.len() as u64 - found;
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
        sqlx::query("UPDATE operator_actions SET matched = ?, ineligible = ? WHERE id = ?")
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
        _after: Option<&TaskId>,
        limit: u32,
    ) -> Result<FilterStep, StoreError> {
        let Some(eligible) = step_filter(filter, request) else {
            return Ok(FilterStep::default());
        };
        // What is left is found straight from the indexes: a changed task leaves the
        // status's part of them, so no batch steps over the ones before it.
        let batch = chosen(query::condition(D, &eligible))
            .limit(u64::from(limit))
            .to_owned();
        let mut tx = self.write().await?;
        let n = apply_to_eligible(&mut tx, batch, action_id, request).await?;
        // Counted with the batch, in its transaction: the entry shows exactly the batches
        // that committed, even if the action never reaches its end.
        if n > 0 {
            sqlx::query("UPDATE operator_actions SET changed = changed + ? WHERE id = ?")
                .bind(n as i64)
                .bind(action_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(FilterStep {
            changed: n as u32,
            resume_after: None,
            more: n >= u64::from(limit),
        })
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
        let lease_until = r.now.plus_millis(r.lease.as_millis() as i64);
        let mut tx = self.write().await?;
        // New and due-retry tasks are picked apart, each straight from its index
        // (`tasks_route_status_created`): one `status IN …` walk of the route in creation
        // order would step over every finished task first, slower as the route ages.
        let chosen: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, status FROM (
                 SELECT * FROM (
                     SELECT id, status, created_at FROM tasks WHERE route = ?1 AND status = 'new'
                     ORDER BY created_at, id LIMIT ?3)
                 UNION ALL
                 SELECT * FROM (
                     SELECT id, status, created_at FROM tasks
                     WHERE route = ?1 AND status = 'retry' AND next_attempt_at <= ?2
                     ORDER BY created_at, id LIMIT ?3))
             ORDER BY created_at, id LIMIT ?3",
        )
        .bind(r.route)
        .bind(r.now.millis())
        .bind(i64::from(r.limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut counts = CountChanges::default();
        for (_, status) in &chosen {
            counts.moved(r.route, rows::status(status)?, Status::Processing, 1);
        }
        counts.store(&mut tx).await?;
        // The chosen tasks are read with their entities, then changed: the update then
        // returns nothing, and its effect on them is applied here.
        let chosen =
            serde_json::Value::from(chosen.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
                .to_string();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{DETAIL_SELECT} WHERE t.id IN (SELECT value FROM json_each(?))"
        )))
        .bind(&chosen)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE tasks SET status = 'processing', attempts = attempts + 1, updated_at = ?1,
                    lease_owner = ?2, lease_until = ?3
             WHERE id IN (SELECT value FROM json_each(?4))",
        )
        .bind(r.now.millis())
        .bind(r.worker)
        .bind(lease_until.millis())
        .bind(&chosen)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut tasks = rows
            .iter()
            .map(|row| {
                let mut task = rows::detail(row)?;
                task.summary.status = Status::Processing;
                task.summary.attempts += 1;
                task.summary.updated_at = r.now;
                Ok(task)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tasks.sort_by(|a, b| {
            (a.summary.created_at, &a.summary.id).cmp(&(b.summary.created_at, &b.summary.id))
        });
        Ok(tasks)
    }

    async fn complete(&self, worker: &str, completions: &[Completion]) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let mut recorded: Vec<&Completion> = Vec::with_capacity(completions.len());
        let mut counts = CountChanges::default();
        // One UPDATE … FROM (VALUES …) per chunk: only the tasks this worker still
        // holds change, and RETURNING says which.
        for chunk in completions.chunks(CHUNK) {
            let rows = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "WITH c (id, status, updated_at, last_error, next_attempt_at, response) AS (VALUES {rows})
                 UPDATE tasks SET status = c.status, updated_at = c.updated_at,
                        last_error = c.last_error, next_attempt_at = c.next_attempt_at,
                        response = COALESCE(c.response, tasks.response),
                        lease_owner = NULL, lease_until = NULL
                 FROM c WHERE tasks.id = c.id AND tasks.status = 'processing' AND tasks.lease_owner = ?
                 RETURNING tasks.id, tasks.route, tasks.status, tasks.entity_identifier"
            );
            let mut q = sqlx::query_as::<_, (String, String, String, String)>(AssertSqlSafe(sql));
            for c in chunk {
                let next_attempt = match &c.outcome {
                    Outcome::Retry { at, .. } => Some(at.millis()),
                    _ => None,
                };
                q = q
                    .bind(c.id.as_str())
                    .bind(c.outcome.status().as_str())
                    .bind(c.ended_at.millis())
                    .bind(c.outcome.error())
                    .bind(next_attempt)
                    .bind(c.response.as_ref().map(serde_json::Value::to_string));
            }
            let mut updated = HashMap::new();
            for (id, route, status, entity) in q.bind(worker).fetch_all(&mut *tx).await? {
                counts.moved(&route, Status::Processing, rows::status(&status)?, 1);
                updated.insert(id, (route, entity));
            }
            for c in chunk {
                if let Some((route, entity)) = updated.get(c.id.as_str()) {
                    if let (Outcome::Finished, Some(digest)) = (&c.outcome, &c.published) {
                        // In completion order: an entity's later task comes last.
                        sqlx::query(
                            "INSERT INTO published_digests (route, entity_identifier, digest, task_id)
                             VALUES (?, ?, ?, ?)
                             ON CONFLICT (route, entity_identifier)
                             DO UPDATE SET digest = excluded.digest, task_id = excluded.task_id",
                        )
                        .bind(route)
                        .bind(entity)
                        .bind(digest)
                        .bind(c.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    recorded.push(c);
                } else {
                    tracing::warn!(task = %c.id, worker, "completion ignored: the worker no longer holds the task");
                }
            }
        }
        let attempts: Vec<AttemptRow> = recorded
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.attempt,
                    c.started_at.millis(),
                    c.ended_at.millis(),
                    c.outcome.status(),
                    c.outcome.error(),
                )
            })
            .collect();
        insert_attempts(&mut tx, &attempts).await?;
        let messages: Vec<(&str, Phase, &Message)> = recorded
            .iter()
            .flat_map(|c| c.messages.iter().map(|m| (c.id.as_str(), Phase::Export, m)))
            .collect();
        insert_logs(&mut tx, &messages).await?;
        counts.store(&mut tx).await?;
        tx.commit().await?;
        Ok(recorded.len() as u64)
    }

    async fn release(&self, worker: &str, ids: &[TaskId]) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let mut n = 0;
        let mut counts = CountChanges::default();
        for chunk in ids.chunks(CHUNK) {
            let stmt = Query::update()
                .table(TASKS)
                .value("status", Status::New.as_str())
                .value("attempts", Expr::col("attempts").sub(1))
                .value("lease_owner", Option::<String>::None)
                .value("lease_until", Option::<i64>::None)
                .and_where(Expr::col("id").is_in(chunk.iter().map(TaskId::as_str)))
                .and_where(status_checked().eq(Status::Processing.as_str()))
                .and_where(Expr::col("lease_owner").eq(worker))
                .returning_col("route")
                .to_owned();
            let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
            let routes: Vec<String> = sqlx::query_scalar_with(AssertSqlSafe(sql), values)
                .fetch_all(&mut *tx)
                .await?;
            for route in &routes {
                counts.moved(route, Status::Processing, Status::New, 1);
            }
            n += routes.len() as u64;
        }
        counts.store(&mut tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn extend_leases(
        &self,
        worker: &str,
        ids: &[TaskId],
        until: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let mut n = 0;
        for chunk in ids.chunks(CHUNK) {
            let stmt = Query::update()
                .table(TASKS)
                .value("lease_until", until.millis())
                .and_where(Expr::col("id").is_in(chunk.iter().map(TaskId::as_str)))
                .and_where(status_checked().eq(Status::Processing.as_str()))
                .and_where(Expr::col("lease_owner").eq(worker))
                .to_owned();
            n += bound!(stmt).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn sync_schedules(&self, schedules: &[ScheduleEntry]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT name, expression FROM schedules")
                .fetch_all(&mut *tx)
                .await?;
        for (name, _) in &stored {
            if !schedules.iter().any(|s| &s.name == name) {
                sqlx::query("DELETE FROM schedules WHERE name = ?")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for s in schedules {
            match stored.iter().find(|(name, _)| *name == s.name) {
                Some((_, expression)) if *expression == s.expression => {}
                Some(_) => {
                    sqlx::query(
                        "UPDATE schedules SET expression = ?, next_run_at = ? WHERE name = ?",
                    )
                    .bind(&s.expression)
                    .bind(s.next_run_at.millis())
                    .bind(&s.name)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "INSERT INTO schedules (name, expression, next_run_at) VALUES (?, ?, ?)",
                    )
                    .bind(&s.name)
                    .bind(&s.expression)
                    .bind(s.next_run_at.millis())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due_schedules(&self, now: Timestamp) -> Result<Vec<ScheduleEntry>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT name, expression, next_run_at FROM schedules WHERE next_run_at <= ? ORDER BY next_run_at, name",
        )
        .bind(now.millis())
        .fetch_all(&self.reader)
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
            sqlx::query_as("SELECT value, updated_at FROM since_marks WHERE incoming = ?")
                .bind(incoming)
                .fetch_optional(&self.reader)
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
        let mut out = HashMap::new();
        for chunk in entities.chunks(CHUNK) {
            let list = serde_json::to_string(chunk).unwrap_or_default();
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT entity_identifier, digest, task_id FROM published_digests
                 WHERE route = ? AND entity_identifier IN (SELECT value FROM json_each(?))",
            )
            .bind(route)
            .bind(list)
            .fetch_all(&self.reader)
            .await?;
            for (entity, digest, task) in rows {
                let task = TaskId::from_stored(task);
                out.insert(entity, PublishedDigest { digest, task });
            }
        }
        Ok(out)
    }

    async fn since_marks(&self) -> Result<BTreeMap<String, SinceMark>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT incoming, value, updated_at FROM since_marks")
                .fetch_all(&self.reader)
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
            "INSERT INTO since_marks (incoming, value, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (incoming) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(incoming)
        .bind(value)
        .bind(at.millis())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn reset_since_mark(&self, incoming: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM since_marks WHERE incoming = ?")
            .bind(incoming)
            .execute(&self.writer)
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
        let mut tx = self.write().await?;
        let moved = sqlx::query(
            "UPDATE schedules SET next_run_at = ?, last_run_at = ? WHERE name = ? AND next_run_at = ?",
        )
        .bind(next.millis())
        .bind(now.millis())
        .bind(name)
        .bind(expected.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(moved == 1)
    }

    async fn prune(&self, rule: &PruneRule, batch: u32) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let before = Expr::col("updated_at").lt(rule.updated_before.millis());
        let mut ids = final_ids(&mut tx, before, u64::from(batch)).await?;
        if rule.counts(ids.len(), batch) {
            let total = stored_tasks(&mut tx).await?;
            let take = rule.over_limit(total, ids.len(), batch);
            if take > 0 {
                let since = Expr::col("updated_at").gte(rule.updated_before.millis());
                ids.extend(final_ids(&mut tx, since, take).await?);
            }
        }
        let mut deleted = 0;
        for chunk in ids.chunks(CHUNK) {
            for (table, column) in [
                ("task_logs", "task_id"),
                ("task_attempts", "task_id"),
                ("task_entities", "task_id"),
                (TASKS, "id"),
            ] {
                let stmt = Query::delete()
                    .from_table(table)
                    .and_where(Expr::col(column).is_in(chunk.iter().map(String::as_str)))
                    .to_owned();
                let n = bound!(stmt).execute(&mut *tx).await?.rows_affected();
                if table == TASKS {
                    deleted += n;
                }
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn list_actions(
        &self,
        query: &AuditQuery,
    ) -> Result<(Vec<ActionRecord>, u64), StoreError> {
        let rows = bound!(query::actions(query, false))
            .fetch_all(&self.reader)
            .await?;
        let total: i64 = bound!(query::actions(query, true))
            .fetch_one(&self.reader)
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
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{DETAIL_SELECT} WHERE t.id > ? ORDER BY t.id LIMIT ?"
        )))
        .bind(after.map_or("", TaskId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
        let mut created = Vec::new();
        let mut logs: Vec<(&str, Phase, Message)> = Vec::new();
        let mut attempts: Vec<AttemptRow> = Vec::new();
        let mut links: Vec<(&str, i64)> = Vec::new();
        let now = Timestamp::now();
        for r in records {
            let import = query::import_task(r, now);
            let (t, s) = (&r.task, &r.task.summary);
            let inserted = bound!(import.task).execute(&mut *tx).await?.rows_affected();
            if inserted == 0 {
                continue; // already there
            }
            sqlx::query("INSERT INTO task_entities (task_id, entity_data) VALUES (?, ?)")
                .bind(s.id.as_str())
                .bind(t.entity_data.to_string())
                .execute(&mut *tx)
                .await?;
            created.push((s.id.as_str(), s.route.as_str(), import.status));
            logs.extend(
                import
                    .messages
                    .into_iter()
                    .map(|(p, m)| (s.id.as_str(), p, m)),
            );
            attempts.extend(
                r.attempts
                    .iter()
                    .map(|a| query::attempt_row(s.id.as_str(), a)),
            );
            links.extend(r.action_ids.iter().map(|&a| (s.id.as_str(), a)));
        }
        let lines: Vec<(&str, Phase, &Message)> =
            logs.iter().map(|(id, p, m)| (*id, *p, m)).collect();
        insert_logs(&mut tx, &lines).await?;
        insert_attempts(&mut tx, &attempts).await?;
        for chunk in links.chunks(CHUNK) {
            bound!(query::insert_links(chunk)).execute(&mut *tx).await?;
        }
        index_inserted(&mut tx, &created).await?;
        tx.commit().await?;
        Ok(created.len() as u64)
    }

    async fn recover_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO task_logs (task_id, phase, lines)
             SELECT id, 'export', json_array(json_array(?1, 'warn',
                    'returned to new: the lease of worker ' || COALESCE(lease_owner, '?') || ' expired before it finished'))
             FROM tasks WHERE status = 'processing' AND lease_until < ?1",
        )
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        let routes: Vec<String> = sqlx::query_scalar(
            "UPDATE tasks SET status = 'new', updated_at = ?1, lease_owner = NULL, lease_until = NULL
             WHERE status = 'processing' AND lease_until < ?1 RETURNING route",
        )
        .bind(now.millis())
        .fetch_all(&mut *tx)
        .await?;
        let mut counts = CountChanges::default();
        for route in &routes {
            counts.moved(route, Status::Processing, Status::New, 1);
        }
        counts.store(&mut tx).await?;
        tx.commit().await?;
        Ok(routes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::filter::Accept;

    #[tokio::test]
    async fn tasks_stored_before_batched_indexing_and_log_rows_stay_searchable_counted_and_logged()
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let old = SqlitePool::connect_with(options).await.unwrap();
        migrate_with(&old, &MIGRATIONS[..7]).await.unwrap();
        let id = "01JDQ8M5V3W3K1C7Y2P6Z0A9BX";
        sqlx::raw_sql(AssertSqlSafe(format!(
            "INSERT INTO tasks (id, route, entity_schema, entity_identifier, status, created_at, updated_at)
             VALUES ('{id}', 'shop', 'product', 'SKU-OLD-1', 'failed', 1, 1);
             INSERT INTO task_entities (task_id, entity_data) VALUES ('{id}', '{{}}');
             INSERT INTO task_messages (task_id, phase, at, level, message) VALUES
                 ('{id}', 'export', 5, 'info', 'first'),
                 ('{id}', 'import', 4, 'info', 'received'),
                 ('{id}', 'export', 6, 'error', 'it''s \"down\"');"
        )))
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let found = |pairs: [(&'static str, &'static str); 1]| {
            let q = TaskQuery::parse(pairs, Accept::All).unwrap();
            let store = &store;
            async move { store.list_tasks(&q).await.unwrap().total }
        };
        assert_eq!(found([("identifier", "K1C7Y2P6")]).await, 1);
        assert_eq!(found([("entity_identifier", "OLD-1")]).await, 1);
        let counts = store.counts_by_route().await.unwrap();
        assert_eq!(counts["shop"].get(Status::Failed), 1);
        let task_id = TaskId::parse(id).unwrap();
        let lines = |phase| {
            let (store, task_id) = (&store, &task_id);
            async move {
                let messages = store.messages(task_id, phase).await.unwrap().unwrap();
                messages
                    .into_iter()
                    .map(|m| (m.at.millis(), m.level, m.message))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            lines(Phase::Export).await,
            [
                (5, Level::Info, "first".to_owned()),
                (6, Level::Error, r#"it's "down""#.to_owned())
            ],
            "log lines written before migration 0009 are read back in order"
        );
        assert_eq!(
            lines(Phase::Import).await,
            [(4, Level::Info, "received".to_owned())]
        );

        let rule = PruneRule {
            updated_before: Timestamp::from_millis(2),
            max_tasks: None,
        };
        assert_eq!(store.prune(&rule, 10).await.unwrap(), 1);
        assert_eq!(found([("identifier", "K1C7Y2P6")]).await, 0);
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM task_search) + (SELECT COUNT(*) FROM task_id_grams)
                  + (SELECT COUNT(*) FROM task_entity_fts)",
        )
        .fetch_one(&store.reader)
        .await
        .unwrap();
        assert_eq!(left, 0, "pruning empties the search tables");
        let logs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task_logs")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(logs, 0, "pruning deletes the task's log rows");
    }
}
