//! Statements built once with sea-query and rendered per backend; every value is bound.

use crate::ActionRequest;
use ferry_core::filter::{CountMode, MatchMode, SortField, SortOrder, TextMatch};
use ferry_core::{Status, TaskFilter, TaskQuery};
use sea_query::{Asterisk, Cond, Expr, ExprTrait, Func, Order, Query, SelectStatement, UnionType};

pub const TASKS: &str = "tasks";

pub const SUMMARY_COLUMNS: [&str; 8] = [
    "id",
    "route",
    "entity_schema",
    "entity_identifier",
    "status",
    "attempts",
    "created_at",
    "updated_at",
];

/// A task row with its entity (kept apart, in `task_entities`), as `rows::detail` reads it.
pub fn detail_select() -> SelectStatement {
    Query::select()
        .columns(SUMMARY_COLUMNS.map(|c| (TASKS, c)))
        .columns([
            (TASKS, "last_error"),
            (TASKS, "next_attempt_at"),
            (TASKS, "response"),
        ])
        .column(("task_entities", "entity_data"))
        .from(TASKS)
        .inner_join(
            "task_entities",
            Expr::col(("task_entities", "task_id")).equals((TASKS, "id")),
        )
        .to_owned()
}

/// The SQL differences between backends that the builder cannot hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Columns with a trigram index for *contains* searches (SQLite migration 0004,
/// PostgreSQL 0006), each kept in `task_search` apart from the changing task rows.
const TRIGRAM_COLUMNS: [&str; 2] = ["id", "entity_identifier"];

impl Dialect {
    /// A case-sensitive substring test with no wildcard characters.
    ///
    /// PostgreSQL: `LIKE '%…%'` with `%`, `_` and `\` escaped; for the trigram-indexed
    /// columns on `task_search`, whose `pg_trgm` GIN indexes serve it (straight, when
    /// the query reads `task_search` itself, see [`Source`]). SQLite (whose
    /// LIKE ignores ASCII case): `instr`, after an FTS5 index has found the candidates
    /// where one serves (migration 0008): the entity identifier's trigrams
    /// (`task_entity_fts`) for values of three characters or more, the identifier's
    /// sparse trigrams (`task_id_grams`, see [`id_gram_query`]) for six or more.
    fn contains(self, source: Source, column: &'static str, value: &str) -> Expr {
        let trigram_indexed = TRIGRAM_COLUMNS.contains(&column);
        match self {
            Dialect::Postgres => {
                let like = |column: &'static str| {
                    Expr::col(column).like(
                        sea_query::LikeExpr::new(format!("%{}%", escape_like(value))).escape('\\'),
                    )
                };
                match source {
                    Source::Keys => like(source.column(column)),
                    Source::Tasks | Source::UpdatedOrder if trigram_indexed => {
                        searched(like(Source::Keys.column(column)))
                    }
                    Source::Tasks | Source::UpdatedOrder => like(column),
                }
            }
            Dialect::Sqlite => {
                let exact = Expr::from(
                    Func::cust("instr")
                        .arg(Expr::col(column))
                        .arg(value.to_owned()),
                )
                .gt(0);
                let (table, phrase) = match column {
                    "id" => match id_gram_query(value) {
                        Some(phrase) => ("task_id_grams", phrase),
                        None => return exact,
                    },
                    _ if trigram_indexed && value.chars().count() >= 3 => (
                        "task_entity_fts",
                        format!("\"{}\"", value.replace('"', "\"\"")),
                    ),
                    _ => return exact,
                };
                let candidates = Query::select()
                    .column("task_id")
                    .from("task_search")
                    .and_where(
                        Expr::col("rowid").in_subquery(
                            Query::select()
                                .column("rowid")
                                .from(table)
                                .and_where(Expr::cust_with_values(
                                    format!("{table} MATCH ?"),
                                    [phrase],
                                ))
                                .to_owned(),
                        ),
                    )
                    .to_owned();
                Expr::col(("tasks", "id"))
                    .in_subquery(candidates)
                    .and(exact)
            }
        }
    }
}

/// Where `task_id_grams` keeps the trigrams of an identifier: at every `ID_GRAM_STEP`th
/// character from the first (SQLite migration 0008).
const ID_GRAM_STEP: usize = 4;

/// Characters of a task identifier (a ULID).
const ID_LEN: usize = 26;

/// SQLite: the indexed trigrams of the identifier in `column`, space-separated, as
/// `task_id_grams` takes them (migration 0008 backfills with this same expression).
pub fn id_grams_sql(column: &str) -> String {
    (0..=ID_LEN - 3)
        .step_by(ID_GRAM_STEP)
        .map(|at| format!("substr({column}, {}, 3)", at + 1))
        .collect::<Vec<_>>()
        .join(" || ' ' || ")
}

/// The FTS5 query for the identifiers that may contain `value`, through their sparse
/// trigrams; `None` when the index cannot help (fewer than `ID_GRAM_STEP + 2`
/// characters, or a character no identifier has).
///
/// Wherever `value` sits in an identifier, for exactly one `j < ID_GRAM_STEP` its
/// trigrams at offsets `j, j + STEP, …` are indexed ones, and with `STEP + 2`
/// characters there is at least one for every `j`. So the candidates are the OR over
/// `j` of the AND of those trigrams; the caller checks each against the real value.
pub fn id_gram_query(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    if bytes.len() < ID_GRAM_STEP + 2 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let alternatives: Vec<String> = (0..ID_GRAM_STEP)
        .map(|j| {
            let grams: Vec<String> = (j..=bytes.len() - 3)
                .step_by(ID_GRAM_STEP)
                .map(|at| format!("\"{}\"", &value[at..at + 3]))
                .collect();
            format!("({})", grams.join(" AND "))
        })
        .collect();
    Some(alternatives.join(" OR "))
}

/// `value` with LIKE's wildcards and escape character taken literally.
fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where a query finds its matches. SQLite reads `tasks` always; PostgreSQL reads
/// `task_search` for filters on nothing a task changes (migration 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `tasks`, whose indexes serve status, updated-at, the claim and the lease.
    Tasks,
    /// `task_search`: insert-only, a row per task with the columns a task never
    /// changes (its identifier as `task_id`), each ordering indexed.
    Keys,
    /// SQLite, `tasks` read in `tasks_updated` order: route, entity schema, entity
    /// identifier and creation time are compared as `+column`, which SQLite cannot
    /// serve from an index, so its planner does not gather every match of one of them
    /// to sort by updated-at (67 ms for a route's 50,000 tasks). `tasks_updated` holds
    /// the route, entity schema and creation time (migration 0011), so the page's
    /// identifiers come from the index alone, then its rows (`list_from`).
    UpdatedOrder,
}

impl Source {
    /// `task_search` on PostgreSQL when the filter reads neither status nor updated-at.
    fn of(dialect: Dialect, f: &TaskFilter) -> Source {
        let unchanging =
            f.statuses.is_empty() && f.updated_from.is_none() && f.updated_to.is_none();
        if dialect == Dialect::Postgres && unchanging {
            Source::Keys
        } else {
            Source::Tasks
        }
    }

    fn table(self) -> &'static str {
        match self {
            Source::Tasks | Source::UpdatedOrder => TASKS,
            Source::Keys => "task_search",
        }
    }

    /// A filter's column, as a condition on this source compares it.
    fn col(self, column: &'static str) -> Expr {
        match self {
            Source::UpdatedOrder if column != "id" => Expr::cust(format!("+\"{column}\"")),
            _ => Expr::col(self.column(column)),
        }
    }

    fn column(self, column: &'static str) -> &'static str {
        match (self, column) {
            (Source::Keys, "id") => "task_id",
            _ => column,
        }
    }
}

/// PostgreSQL: the tasks whose `task_search` row meets `condition`, through the
/// indexes there (trigrams, the entity identifier) that `tasks` no longer has.
fn searched(condition: Expr) -> Expr {
    Expr::col((TASKS, "id")).in_subquery(
        Query::select()
            .column("task_id")
            .from("task_search")
            .and_where(condition)
            .to_owned(),
    )
}

fn text(dialect: Dialect, source: Source, column: &'static str, m: &TextMatch) -> Expr {
    match m.mode {
        MatchMode::Equals
            if dialect == Dialect::Postgres
                && source == Source::Tasks
                && column == "entity_identifier" =>
        {
            searched(Expr::col(column).eq(m.value.clone()))
        }
        MatchMode::Equals => source.col(column).eq(m.value.clone()),
        MatchMode::Contains => dialect.contains(source, column, &m.value),
    }
}

pub fn statuses(list: &[Status]) -> Vec<&'static str> {
    list.iter().map(|s| s.as_str()).collect()
}

/// The WHERE condition of a filter, on `tasks`.
pub fn condition(dialect: Dialect, f: &TaskFilter) -> Cond {
    condition_on(dialect, Source::Tasks, f)
}

/// The WHERE condition of a filter on `source` (which must hold the filter's columns).
fn condition_on(dialect: Dialect, source: Source, f: &TaskFilter) -> Cond {
    let mut c = Cond::all();
    if !f.routes.is_empty() {
        c = c.add(source.col("route").is_in(f.routes.clone()));
    }
    let updated_range = f.updated_from.is_some() || f.updated_to.is_some();
    if !f.statuses.is_empty() {
        c = c.add(Expr::col("status").is_in(statuses(&f.statuses)));
    } else if dialect == Dialect::Postgres && updated_range {
        // Every status, so that `tasks_status_updated` serves the range (PostgreSQL
        // has no index on updated-at alone, migration 0009).
        c = c.add(Expr::col("status").is_in(statuses(&Status::ALL)));
    }
    let ranges = [
        ("created_at", f.created_from, f.created_to),
        ("updated_at", f.updated_from, f.updated_to),
    ];
    for (column, from, to) in ranges {
        if let Some(from) = from {
            c = c.add(source.col(column).gte(from.millis()));
        }
        if let Some(to) = to {
            c = c.add(source.col(column).lte(to.millis()));
        }
    }
    let texts = [
        ("id", &f.identifier),
        ("entity_schema", &f.entity_schema),
        ("entity_identifier", &f.entity_identifier),
    ];
    for (column, m) in texts {
        if let Some(m) = m {
            c = c.add(text(dialect, source, column, m));
        }
    }
    c
}

pub fn list(dialect: Dialect, q: &TaskQuery) -> SelectStatement {
    let source = match q.sort {
        SortField::CreatedAt => Source::of(dialect, &q.filter),
        SortField::UpdatedAt => Source::Tasks,
    };
    list_from(dialect, source, q)
}

/// Whether a list sorted by updated-at has a filter served by an index in another
/// order, and no status filter or updated-at range (`tasks_status_updated` and
/// `tasks_updated` serve those in order). Either its matches are gathered through that
/// index and sorted, quick when they are few, or tasks are read in updated-at order
/// and filtered, quick when matches are many. A capped count chooses: on SQLite
/// between `query::list` and [`list_in_updated_order`], on PostgreSQL between
/// [`list_gathered`] and `query::list`.
pub fn sorts_many_by_updated(q: &TaskQuery) -> bool {
    let f = &q.filter;
    q.sort == SortField::UpdatedAt
        && f.statuses.is_empty()
        && f.updated_from.is_none()
        && f.updated_to.is_none()
        && (!f.routes.is_empty()
            || f.entity_schema.is_some()
            || f.entity_identifier.is_some()
            || f.created_from.is_some()
            || f.created_to.is_some())
}

/// SQLite, a list by updated-at read in `tasks_updated` order (see
/// [`sorts_many_by_updated`]).
pub fn list_in_updated_order(q: &TaskQuery) -> SelectStatement {
    list_from(Dialect::Sqlite, Source::UpdatedOrder, q)
}

/// The list's sort order, as sea-query writes it.
fn order_of(q: &TaskQuery) -> Order {
    match q.order {
        SortOrder::Desc => Order::Desc,
        SortOrder::Asc => Order::Asc,
    }
}

/// PostgreSQL, a list by updated-at whose matches are few (see
/// [`sorts_many_by_updated`]): their identifiers from `task_search`, then their rows
/// by primary key (`id = ANY(ARRAY(…))`, which PostgreSQL cannot turn into a hash join
/// over all of `tasks`), sorted. Walking `tasks_status_updated` instead passes every
/// task updated since, which for a creation window can be most of them: 288 ms at 1M.
pub fn list_gathered(q: &TaskQuery) -> SelectStatement {
    let matches = Query::select()
        .column("task_id")
        .from(Source::Keys.table())
        .cond_where(condition_on(Dialect::Postgres, Source::Keys, &q.filter))
        .to_owned();
    page_by_updated(
        q,
        Cond::all().add(Expr::cust_with_expr(
            r#""id" = ANY(ARRAY $1)"#,
            Expr::SubQuery(None, Box::new(matches.into())),
        )),
    )
}

/// The page of `q` among the tasks meeting `condition`, sorted by updated-at.
fn page_by_updated(q: &TaskQuery, condition: Cond) -> SelectStatement {
    let order = order_of(q);
    Query::select()
        .columns(SUMMARY_COLUMNS)
        .from(TASKS)
        .cond_where(condition)
        .order_by("updated_at", order.clone())
        .order_by("id", order)
        .limit(u64::from(q.page.per_page))
        .offset(q.page.offset())
        .to_owned()
}

/// Whether a filter is a creation window and nothing else.
pub fn is_creation_window(f: &TaskFilter) -> bool {
    let TaskFilter {
        routes,
        statuses,
        created_from,
        created_to,
        updated_from,
        updated_to,
        identifier,
        entity_schema,
        entity_identifier,
    } = f;
    (created_from.is_some() || created_to.is_some())
        && routes.is_empty()
        && statuses.is_empty()
        && updated_from.is_none()
        && updated_to.is_none()
        && identifier.is_none()
        && entity_schema.is_none()
        && entity_identifier.is_none()
}

/// PostgreSQL, a list by updated-at whose filter is a creation window (see
/// [`is_creation_window`]) with few matches, the least and greatest of their
/// identifiers known ([`count_capped_spanned`]). Task identifiers are ULIDs made from
/// the creation time, so the window's tasks lie together in the primary key: that
/// stretch is read in one range scan, the filter keeps the matches (every one of them
/// is in the stretch, whatever their identifiers), and they are sorted. Gathering them
/// one lookup each ([`list_gathered`]) took 45 ms for 10,000 at 1M; the range, 9 ms.
pub fn list_in_id_span(q: &TaskQuery, first: &str, last: &str) -> SelectStatement {
    let span = Cond::all()
        .add(Expr::col("id").gte(first))
        .add(Expr::col("id").lte(last))
        .add(condition(Dialect::Postgres, &q.filter));
    page_by_updated(q, span)
}

fn list_from(dialect: Dialect, source: Source, q: &TaskQuery) -> SelectStatement {
    let order = order_of(q);
    let column = match q.sort {
        SortField::CreatedAt => "created_at",
        SortField::UpdatedAt => "updated_at",
    };
    let mut page = by_updated_without_status(dialect, q, &order)
        .unwrap_or_else(|| {
            Query::select()
                .from(source.table())
                .cond_where(condition_on(dialect, source, &q.filter))
                .to_owned()
        })
        .order_by(column, order.clone())
        .order_by(source.column("id"), order.clone())
        .limit(u64::from(q.page.per_page))
        .offset(q.page.offset())
        .to_owned();
    if q.page.offset() == 0 && source == Source::Tasks {
        return page.columns(SUMMARY_COLUMNS).to_owned();
    }
    page.column(source.column("id"));
    // Deep pages: skip the offset on the (covering) order index, reading identifiers
    // only, then fetch the page's rows; skipping whole rows costs a lookup each. Pages
    // found on `task_search` are fetched the same way, and so are pages read in
    // `tasks_updated` order: that index holds every column the filter compares, so the
    // tasks passed are never read (SQLite defers no row lookup in a WITHOUT ROWID
    // table): a 1% creation window at 1M, 29.4 ms → 1.3 ms.
    Query::select()
        .columns(SUMMARY_COLUMNS)
        .from(TASKS)
        .and_where(Expr::col("id").in_subquery(page))
        .order_by(column, order.clone())
        .order_by("id", order)
        .to_owned()
}

/// PostgreSQL, a list by updated-at with no status filter: the matches of each status
/// apart, merged, as a table named `tasks`. There is no index on updated-at alone
/// (migration 0009): each status's first `offset + per_page` come in order from
/// `tasks_status_updated`, and the page is taken from those six. (Without a LIMIT in
/// each, PostgreSQL 15 did not merge the six in order: it sorted every match, 363 ms at
/// 1M.)
fn by_updated_without_status(
    dialect: Dialect,
    q: &TaskQuery,
    order: &Order,
) -> Option<SelectStatement> {
    if dialect != Dialect::Postgres
        || q.sort != SortField::UpdatedAt
        || !q.filter.statuses.is_empty()
    {
        return None;
    }
    // Each one a subquery of its own: a union renders the first member's ORDER BY and
    // LIMIT after the last member, as the whole union's.
    let mut statuses = Status::ALL.iter().map(|status| {
        let first = Query::select()
            .columns(SUMMARY_COLUMNS)
            .from(TASKS)
            .cond_where(condition_on(dialect, Source::Tasks, &q.filter))
            .and_where(Expr::col("status").eq(status.as_str()))
            .order_by("updated_at", order.clone())
            .order_by("id", order.clone())
            .limit(q.page.offset() + u64::from(q.page.per_page))
            .to_owned();
        Query::select()
            .columns(SUMMARY_COLUMNS)
            .from_subquery(first, status.as_str())
            .to_owned()
    });
    let mut merged = statuses.next()?;
    for each in statuses {
        merged.union(UnionType::All, each);
    }
    Some(Query::select().from_subquery(merged, TASKS).to_owned())
}

/// The identifiers of the tasks retention may prune (final ones) whose `updated_at`
/// meets `updated`, least recently updated first, at most `limit`. Each final status's
/// oldest come in order from `tasks_status_updated` and the three are merged, so no
/// index of its own is needed: one on final tasks by updated-at took an entry from
/// every completion and skip (migration 0010).
pub fn final_by_updated(updated: Expr, limit: u64) -> SelectStatement {
    let mut statuses = Status::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(|status| {
            let oldest = Query::select()
                .columns(["id", "updated_at"])
                .from(TASKS)
                .and_where(Expr::col("status").eq(status.as_str()))
                .and_where(updated.clone())
                .order_by("updated_at", Order::Asc)
                .order_by("id", Order::Asc)
                .limit(limit)
                .to_owned();
            Query::select()
                .columns(["id", "updated_at"])
                .from_subquery(oldest, status.as_str())
                .to_owned()
        });
    let mut merged = statuses.next().expect("three statuses are final");
    for each in statuses {
        merged.union(UnionType::All, each);
    }
    Query::select()
        .column("id")
        .from_subquery(merged, "finals")
        .order_by("updated_at", Order::Asc)
        .order_by("id", Order::Asc)
        .limit(limit)
        .to_owned()
}

pub fn count(dialect: Dialect, f: &TaskFilter) -> SelectStatement {
    let source = Source::of(dialect, f);
    Query::select()
        .expr(Func::count(Expr::col(Asterisk)))
        .from(source.table())
        .cond_where(condition_on(dialect, source, f))
        .to_owned()
}

/// The matches counted up to `cap + 1`: more than `cap` means the count stopped.
pub fn count_capped(dialect: Dialect, f: &TaskFilter, cap: u64) -> SelectStatement {
    let source = Source::of(dialect, f);
    Query::select()
        .expr(Func::count(Expr::col(Asterisk)))
        .from_subquery(
            first_matches(dialect, source, f, cap, Expr::val(1)),
            "capped",
        )
        .to_owned()
}

/// PostgreSQL: as [`count_capped`], on `task_search`, with the least and the greatest
/// identifier among the matches counted (NULL when none match).
pub fn count_capped_spanned(f: &TaskFilter, cap: u64) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col(Asterisk)))
        .expr(Func::min(Expr::col("task_id")))
        .expr(Func::max(Expr::col("task_id")))
        .from_subquery(
            first_matches(
                Dialect::Postgres,
                Source::Keys,
                f,
                cap,
                Expr::col("task_id"),
            ),
            "capped",
        )
        .to_owned()
}

/// `selected` of the first `cap + 1` matches of `f` on `source`.
fn first_matches(
    dialect: Dialect,
    source: Source,
    f: &TaskFilter,
    cap: u64,
    selected: Expr,
) -> SelectStatement {
    Query::select()
        .expr(selected)
        .from(source.table())
        .cond_where(condition_on(dialect, source, f))
        // `cap + 1`, within the signed 64 bits both stores take a LIMIT as.
        .limit(std::cmp::min(cap, i64::MAX as u64 - 1) + 1)
        .to_owned()
}

/// The statement that counts a list's matches the way it asks, if at all.
pub fn list_count(dialect: Dialect, q: &TaskQuery) -> Option<SelectStatement> {
    match q.count {
        // A list is never estimated (the parser refuses it): count it all.
        CountMode::Exact | CountMode::Estimate => Some(count(dialect, &q.filter)),
        CountMode::Capped => Some(count_capped(dialect, &q.filter, crate::COUNT_CAP)),
        CountMode::Skip => None,
    }
}

/// A capped count of a list's filter that a store made to choose the list's way:
/// `matches` counted up to `cap + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub matches: u64,
    pub cap: u64,
}

impl Counted {
    /// The value [`list_count`]'s statement would give for `q`, where this count
    /// already tells it: every match when the count did not stop; past a stop, what a
    /// `count=capped` list needs to know, that there are more than [`crate::COUNT_CAP`].
    pub fn answers(self, q: &TaskQuery) -> Option<i64> {
        let stopped = self.matches > self.cap;
        let enough = !stopped || (q.count == CountMode::Capped && self.cap >= crate::COUNT_CAP);
        match q.count != CountMode::Skip && enough {
            true => i64::try_from(self.matches).ok(),
            false => None,
        }
    }
}

/// A page's total from the count [`list_count`] made (`None`: not counted).
pub fn page_total(q: &TaskQuery, counted: Option<i64>) -> (u64, bool) {
    match counted {
        None => (0, false),
        Some(n) if q.count == CountMode::Capped && n as u64 > crate::COUNT_CAP => {
            (crate::COUNT_CAP, false)
        }
        Some(n) => (n as u64, true),
    }
}

pub fn count_by_status(dialect: Dialect, f: &TaskFilter) -> SelectStatement {
    Query::select()
        .column("status")
        .expr_as(Func::count(Expr::col(Asterisk)), "n")
        .from(TASKS)
        .cond_where(condition(dialect, f))
        .group_by_col("status")
        .to_owned()
}

/// The status counts of at most `cap + 1` matches: more than `cap` in all means the
/// count stopped.
pub fn count_by_status_capped(dialect: Dialect, f: &TaskFilter, cap: u64) -> SelectStatement {
    let matches = Query::select()
        .column("status")
        .from(TASKS)
        .cond_where(condition(dialect, f))
        .limit(cap + 1)
        .to_owned();
    Query::select()
        .column("status")
        .expr_as(Func::count(Expr::col(Asterisk)), "n")
        .from_subquery(matches, "capped")
        .group_by_col("status")
        .to_owned()
}

/// The rows of one status among a filter's matches, for the planner to estimate.
pub fn matches_of_status(dialect: Dialect, f: &TaskFilter, status: Status) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(TASKS)
        .cond_where(condition(dialect, f))
        .and_where(Expr::col("status").eq(status.as_str()))
        .to_owned()
}

/// The columns an action sets, beyond the status.
pub fn action_update(request: &ActionRequest) -> sea_query::UpdateStatement {
    let mut stmt = Query::update()
        .table(TASKS)
        .value("status", request.action.target().as_str())
        .value("updated_at", request.at.millis())
        .value("next_attempt_at", Option::<i64>::None)
        .to_owned();
    if request.action == ferry_core::Action::Retry {
        stmt.value("attempts", 0i64)
            .value("lease_owner", Option::<String>::None)
            .value("lease_until", Option::<i64>::None);
    }
    stmt
}

pub fn action_message(request: &ActionRequest) -> String {
    let verb = match request.action {
        ferry_core::Action::Skip => "Skipped",
        ferry_core::Action::Retry => "Retried (attempts reset)",
    };
    match &request.reason {
        Some(r) => format!("{verb} by {}: {r}", request.actor),
        None => format!("{verb} by {}", request.actor),
    }
}

/// The operator actions an audit query asks for (`count` for the total).
pub fn actions(query: &crate::AuditQuery, count: bool) -> SelectStatement {
    let mut c = Cond::all();
    if let Some(actor) = &query.actor {
        c = c.add(Expr::col(("a", "actor")).eq(actor.clone()));
    }
    if let Some(action) = &query.action {
        c = c.add(Expr::col(("a", "action")).eq(action.clone()));
    }
    if let Some(from) = query.from {
        c = c.add(Expr::col(("a", "at")).gte(from.millis()));
    }
    if let Some(to) = query.to {
        c = c.add(Expr::col(("a", "at")).lte(to.millis()));
    }
    if let Some(task) = &query.task {
        c = c.add(
            Expr::col(("a", "id")).in_subquery(
                Query::select()
                    .column("action_id")
                    .from("task_actions")
                    .and_where(Expr::col("task_id").eq(task.as_str()))
                    .to_owned(),
            ),
        );
    }
    let mut s = Query::select()
        .from_as("operator_actions", "a")
        .cond_where(c)
        .to_owned();
    if count {
        s.expr(Func::count(Expr::col(Asterisk)));
    } else {
        s.columns([
            ("a", "id"),
            ("a", "at"),
            ("a", "actor"),
            ("a", "action"),
            ("a", "reason"),
            ("a", "origin"),
            ("a", "target"),
            ("a", "matched"),
            ("a", "changed"),
            ("a", "ineligible"),
            ("a", "not_found"),
        ])
        .order_by(("a", "id"), Order::Desc)
        .limit(u64::from(query.page.per_page))
        .offset(query.page.offset());
    }
    s
}

/// Inserts new tasks (status `new`).
pub fn insert_tasks(tasks: &[ferry_core::NewTask]) -> sea_query::InsertStatement {
    let mut stmt = Query::insert()
        .into_table(TASKS)
        .columns([
            "id",
            "route",
            "entity_schema",
            "entity_identifier",
            "status",
            "attempts",
            "created_at",
            "updated_at",
        ])
        .to_owned();
    for t in tasks {
        stmt.values_panic([
            t.id.as_str().into(),
            t.route.as_str().into(),
            t.entity_schema.as_str().into(),
            t.entity_identifier.clone().into(),
            Status::New.as_str().into(),
            0i64.into(),
            t.created_at.millis().into(),
            t.created_at.millis().into(),
        ]);
    }
    stmt
}

/// Stores the entities of new tasks (`task_entities`, apart from the task rows).
pub fn insert_entities(tasks: &[ferry_core::NewTask]) -> sea_query::InsertStatement {
    let mut stmt = Query::insert()
        .into_table("task_entities")
        .columns(["task_id", "entity_data"])
        .to_owned();
    for t in tasks {
        stmt.values_panic([t.id.as_str().into(), t.entity_data.to_string().into()]);
    }
    stmt
}

/// A page of tasks in identifier order after `after`, for export.
pub fn tasks_after(after: Option<&ferry_core::TaskId>, limit: u32) -> SelectStatement {
    let mut q = detail_select()
        .order_by((TASKS, "id"), Order::Asc)
        .limit(u64::from(limit))
        .to_owned();
    if let Some(id) = after {
        q.and_where(Expr::col((TASKS, "id")).gt(id.as_str()));
    }
    q
}

/// Recreates an operator action; returns its new id.
pub fn import_action(a: &crate::ActionRecord) -> sea_query::InsertStatement {
    Query::insert()
        .into_table("operator_actions")
        .columns([
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
        ])
        .values_panic([
            a.at.millis().into(),
            a.actor.clone().into(),
            a.action.clone().into(),
            a.reason.clone().into(),
            a.origin.clone().into(),
            a.target.to_string().into(),
            (a.outcome.matched as i64).into(),
            (a.outcome.changed as i64).into(),
            (a.outcome.ineligible as i64).into(),
            (a.outcome.not_found as i64).into(),
        ])
        .returning_col("id")
        .to_owned()
}

/// What recreates one task: the task row (skipped when the identifier exists) and its
/// log lines; its attempts and action links are stored as they were. A `processing`
/// task comes back `new`, since its worker is in the other installation.
pub struct TaskImport {
    /// The status the task gets here.
    pub status: Status,
    pub task: sea_query::InsertStatement,
    pub messages: Vec<(ferry_core::Phase, ferry_core::Message)>,
}

pub fn import_task(r: &crate::TaskRecord, now: ferry_core::Timestamp) -> TaskImport {
    use ferry_core::task::{Level, Message, Phase};
    let t = &r.task;
    let s = &t.summary;
    let was_processing = s.status == Status::Processing;
    let status = if was_processing {
        Status::New
    } else {
        s.status
    };
    let task = Query::insert()
        .into_table(TASKS)
        .columns([
            "id",
            "route",
            "entity_schema",
            "entity_identifier",
            "status",
            "attempts",
            "created_at",
            "updated_at",
            "next_attempt_at",
            "last_error",
            "response",
        ])
        .values_panic([
            s.id.as_str().into(),
            s.route.clone().into(),
            s.entity_schema.clone().into(),
            s.entity_identifier.clone().into(),
            status.as_str().into(),
            i64::from(s.attempts).into(),
            s.created_at.millis().into(),
            s.updated_at.millis().into(),
            t.next_attempt_at.map(|n| n.millis()).into(),
            t.last_error.clone().into(),
            t.response.as_ref().map(serde_json::Value::to_string).into(),
        ])
        .on_conflict(sea_query::OnConflict::column("id").do_nothing().to_owned())
        .to_owned();
    let mut messages: Vec<(Phase, Message)> = r.messages.clone();
    if was_processing {
        messages.push((
            Phase::Export,
            Message::new(
                now,
                Level::Warn,
                "imported while processing in another installation; returned to new",
            ),
        ));
    }
    TaskImport {
        status,
        task,
        messages,
    }
}

/// Links of tasks to the operator actions that changed them: (task id, action id).
pub fn insert_links(rows: &[(&str, i64)]) -> sea_query::InsertStatement {
    let mut stmt = Query::insert()
        .into_table("task_actions")
        .columns(["task_id", "action_id"])
        .to_owned();
    for &(id, action) in rows {
        stmt.values_panic([id.into(), action.into()]);
    }
    stmt
}

/// One attempt to record: task id, attempt number, started and ended (ms), outcome, error.
pub type AttemptRow<'a> = (&'a str, u32, i64, i64, Status, Option<&'a str>);

/// An attempt read back (an export) as a row to record again.
pub fn attempt_row<'a>(id: &'a str, a: &'a crate::Attempt) -> AttemptRow<'a> {
    (
        id,
        a.attempt,
        a.started_at.millis(),
        a.ended_at.millis(),
        a.outcome,
        a.error.as_deref(),
    )
}

/// Records attempts.
pub fn insert_attempts(rows: &[AttemptRow]) -> sea_query::InsertStatement {
    let mut stmt = Query::insert()
        .into_table("task_attempts")
        .columns([
            "task_id",
            "attempt",
            "started_at",
            "ended_at",
            "outcome",
            "error",
        ])
        .to_owned();
    for &(id, attempt, started_at, ended_at, outcome, error) in rows {
        stmt.values_panic([
            id.into(),
            i64::from(attempt).into(),
            started_at.into(),
            ended_at.into(),
            outcome.as_str().into(),
            error.map(str::to_owned).into(),
        ]);
    }
    stmt
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::filter::Accept;
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    #[test]
    fn an_identifier_piece_becomes_its_trigrams_at_each_of_four_alignments() {
        assert_eq!(
            id_gram_query("ABCDEFGH").unwrap(),
            r#"("ABC" AND "EFG") OR ("BCD" AND "FGH") OR ("CDE") OR ("DEF")"#
        );
        assert_eq!(
            id_gram_query("ABCDEF").unwrap(),
            r#"("ABC") OR ("BCD") OR ("CDE") OR ("DEF")"#
        );
        assert_eq!(
            id_gram_query("ABCDE"),
            None,
            "too short for every alignment"
        );
        assert_eq!(id_gram_query("ABC-DEF"), None, "no identifier has a dash");
        assert_eq!(id_gram_query("ÄBCDEFG"), None);
    }

    #[test]
    fn the_migration_indexes_the_identifier_trigrams_the_queries_look_for() {
        let migration = include_str!("../migrations/sqlite/0008_batched_indexing.sql");
        let grams = id_grams_sql("t.id");
        assert!(migration.contains(&grams), "{grams}");
        assert_eq!(grams.matches("substr").count(), 6);
    }

    #[test]
    fn every_filter_value_is_bound_not_inlined() {
        let q = TaskQuery::parse(
            [
                ("route", "a"),
                ("status", "new"),
                ("identifier", "x'; DROP TABLE tasks; --"),
                ("created_from", "2026-01-01T00:00:00Z"),
            ],
            Accept::All,
        )
        .unwrap();
        let (sql, values) = list(Dialect::Sqlite, &q).build(SqliteQueryBuilder);
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(sql.contains("instr"), "{sql}");
        assert!(values.0.len() >= 4);
        let (sql, _) = list(Dialect::Postgres, &q).build(PostgresQueryBuilder);
        assert!(sql.contains("LIKE") && sql.contains("$1"), "{sql}");
    }

    #[test]
    fn a_list_by_updated_at_with_a_filter_served_in_another_order_has_two_ways() {
        let q = TaskQuery::parse(
            [
                ("route", "a"),
                ("entity_schema", "stock"),
                ("entity_schema_match", "equals"),
                ("created_from", "2026-01-01T00:00:00Z"),
                ("sort", "updated_at"),
            ],
            Accept::All,
        )
        .unwrap();
        assert!(sorts_many_by_updated(&q));
        let (sql, values) = list_in_updated_order(&q).build(SqliteQueryBuilder);
        for unindexed in [
            r#"(+"route") IN"#,
            r#"(+"entity_schema") ="#,
            r#"(+"created_at") >="#,
        ] {
            assert!(sql.contains(unindexed), "{unindexed} in {sql}");
        }
        assert!(
            sql.contains(r#"ORDER BY "updated_at" DESC, "id" DESC"#),
            "{sql}"
        );
        assert_eq!(values.0.len(), 5, "the values are bound: {sql}");
        // PostgreSQL gathers the few: their identifiers from `task_search`, by key.
        let (sql, values) = list_gathered(&q).build(PostgresQueryBuilder);
        assert_eq!(values.0.len(), 5, "{sql}");
        assert!(sql.ends_with("LIMIT $4 OFFSET $5"), "{sql}");
        assert!(
            sql.contains(r#""id" = ANY(ARRAY (SELECT "task_id" FROM "task_search" WHERE"#),
            "{sql}"
        );
        // With a status, `tasks_status_updated` serves the order already.
        let with_status =
            TaskQuery::parse([("status", "new"), ("sort", "updated_at")], Accept::All);
        assert!(!sorts_many_by_updated(&with_status.unwrap()));
    }

    #[test]
    fn a_count_made_to_choose_a_list_gives_its_total_where_it_can() {
        let asking = |count: &str| {
            TaskQuery::parse([("route", "a"), ("count", count)], Accept::All).unwrap()
        };
        let (exact, capped) = (asking("exact"), asking("capped"));
        let skip = TaskQuery {
            count: CountMode::Skip,
            ..asking("exact")
        };
        let cap = crate::COUNT_CAP;
        let all_counted = Counted { matches: 7, cap };
        assert_eq!(all_counted.answers(&exact), Some(7));
        assert_eq!(all_counted.answers(&capped), Some(7));
        assert_eq!(all_counted.answers(&skip), None, "not counted at all");
        // Stopped past COUNT_CAP: enough for a capped total, not for an exact one.
        let stopped = Counted {
            matches: cap + 1,
            cap,
        };
        assert_eq!(stopped.answers(&capped), Some(cap as i64 + 1));
        assert_eq!(page_total(&capped, stopped.answers(&capped)), (cap, false));
        assert_eq!(stopped.answers(&exact), None);
        // Stopped short of COUNT_CAP: a capped total still needs its own count.
        let short = Counted {
            matches: 2_001,
            cap: 2_000,
        };
        assert_eq!(short.answers(&capped), None);
    }
}
