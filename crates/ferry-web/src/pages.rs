//! The operator pages: Tasks, a task, Routes. Server-rendered from templates compiled
//! into the binary; filters are plain GET forms named like the API's parameters, so a
//! page URL and an API URL filter alike and the browser's history just works. Actions
//! call the JSON API from `assets/app.js`.

use crate::AppState;
use crate::auth::Caller;
use crate::tasks::parse_query;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use ferry_core::filter::{
    Accept, CountMode, MatchMode, SortField, SortOrder, TaskQuery, TextMatch,
};
use ferry_core::task::Phase;
use ferry_core::{Action, Permission, Status, TaskFilter, TaskId, Timestamp};
use ferry_store::{CountedTasks, StatusCounts};

/// The pages that need a signed-in user.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/tasks") }))
        .route("/tasks", get(tasks_page))
        .route("/tasks/{identifier}", get(task_page))
        .route("/routes", get(routes_page))
        .route("/audit", get(crate::audit::page))
}

/// Style and script, open to all (the sign-in page uses them).
pub fn assets() -> Router<AppState> {
    Router::new()
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
}

/// The signed-in user as the pages show it: name, role, what they may do, and the
/// CSRF token the page's script sends back with every change.
#[derive(Debug, Clone, Default)]
pub struct Me {
    pub signed_in: bool,
    pub name: String,
    pub role: String,
    pub csrf: String,
    pub can_operate: bool,
}

impl Me {
    pub fn of(caller: &Caller) -> Me {
        match &caller.principal {
            Some(p) => Me {
                signed_in: true,
                name: p.actor(),
                role: p.role.to_string(),
                csrf: caller
                    .session
                    .as_ref()
                    .map(|s| s.csrf.clone())
                    .unwrap_or_default(),
                can_operate: caller.may(Permission::Operate),
            },
            None => Me::anonymous(),
        }
    }

    pub fn anonymous() -> Me {
        Me::default()
    }
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Renders a template; a rendering failure is ours, logged, and a plain 500 page.
pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(
                    "<h1>ferry could not draw this page</h1><p>The error has been logged.</p>"
                        .to_owned(),
                ),
            )
                .into_response()
        }
    }
}

pub(crate) fn page_error(me: Me, status: StatusCode, title: &str, message: String) -> Response {
    let t = MessagePage {
        nav: "",
        me,
        title: title.to_owned(),
        message,
    };
    (status, render(&t)).into_response()
}

#[derive(Template)]
#[template(
    source = r#"{% extends "base.html" %}{% block title %}{{ title }}{% endblock %}{% block content %}<h1>{{ title }}</h1><p>{{ message }}</p><p><a href="/tasks">Back to the tasks</a></p>{% endblock %}"#,
    ext = "html"
)]
struct MessagePage {
    nav: &'static str,
    me: Me,
    title: String,
    message: String,
}

// ---------------------------------------------------------------- Tasks page

struct Check {
    id: String,
    checked: bool,
}

struct StatusCheck {
    name: &'static str,
    checked: bool,
}

struct TextField {
    name: &'static str,
    label: &'static str,
    value: String,
    equals: bool,
}

struct CountLink {
    name: &'static str,
    /// The count with thousands separators.
    count: String,
    href: String,
    /// The status the list is filtered by.
    active: bool,
}

/// `n` with thousands separators: `301,026`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

struct Row {
    id: String,
    entity_schema: String,
    entity_identifier: String,
    status: &'static str,
    attempts: u32,
    route: String,
    created_at: String,
    updated_at: String,
    can_skip: bool,
    can_retry: bool,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    nav: &'static str,
    me: Me,
    error: Option<String>,
    routes: Vec<Check>,
    statuses: Vec<StatusCheck>,
    created_from: String,
    created_to: String,
    updated_from: String,
    updated_to: String,
    texts: Vec<TextField>,
    sort: &'static str,
    order: &'static str,
    per_page: u32,
    per_page_choices: Vec<u32>,
    total: u64,
    /// False when the counts (and `total`, `pages`) are the store's estimate.
    counts_exact: bool,
    /// "≈ " before estimated figures.
    about: &'static str,
    /// This view with every match counted.
    exact_href: String,
    counts: Vec<CountLink>,
    /// The "All" pill: every status with the other filters (the pills' sum), and whether
    /// no status filter is set.
    all_count: String,
    all_active: bool,
    /// `total` with thousands separators.
    total_shown: String,
    all_statuses_href: String,
    filter_json: String,
    filtered: bool,
    active_filters: usize,
    tasks: Vec<Row>,
    page: u32,
    pages: u64,
    first_href: Option<String>,
    prev_href: Option<String>,
    next_href: Option<String>,
    last_href: Option<String>,
    /// An empty page past the last of a list that has tasks.
    beyond_last: bool,
    /// The last page, to go back to from beyond it.
    back_href: String,
    base_hint: String,
}

/// A `/tasks` URL for `query` (its filter, sort, order and page size) at `page`.
fn tasks_href(query: &TaskQuery, page: u32) -> String {
    let mut pairs: Vec<(&str, String)> = query.filter.to_pairs();
    if query.sort == SortField::UpdatedAt {
        pairs.push(("sort", "updated_at".into()));
    }
    if query.order == SortOrder::Asc {
        pairs.push(("order", "asc".into()));
    }
    if query.page.per_page != ferry_core::filter::DEFAULT_PER_PAGE {
        pairs.push(("per_page", query.page.per_page.to_string()));
    }
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    if qs.is_empty() {
        "/tasks".into()
    } else {
        format!("/tasks?{qs}")
    }
}

fn text_field(name: &'static str, label: &'static str, m: &Option<TextMatch>) -> TextField {
    TextField {
        name,
        label,
        value: m.as_ref().map(|m| m.value.clone()).unwrap_or_default(),
        equals: m.as_ref().is_some_and(|m| m.mode == MatchMode::Equals),
    }
}

async fn tasks_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (mut query, error) = match parse_query(raw.as_deref(), Accept::All) {
        Ok(q) => (q, None),
        Err(e) => (TaskQuery::default(), Some(e.message)),
    };
    // The status counts below give the total: the list need not count again. Above
    // 10,000 matches they may be the store's estimate, unless `count=exact` asks.
    query.count = CountMode::Skip;
    let exact_asked = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "count" && v == "exact");
    let store = state.store();
    let (page, counted) = if error.is_some() {
        (
            ferry_store::TaskPage {
                items: Vec::new(),
                total: 0,
                total_exact: true,
            },
            CountedTasks::exact(StatusCounts::default()),
        )
    } else {
        let page = match store.list_tasks(&query).await {
            Ok(p) => p,
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        };
        let unstatused = TaskFilter {
            statuses: Vec::new(),
            ..query.filter.clone()
        };
        let count = if exact_asked {
            CountMode::Exact
        } else {
            CountMode::Estimate
        };
        let counted = match crate::tasks::status_counts(&**store, &unstatused, count).await {
            Ok(c) => c,
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        };
        let total = if query.filter.statuses.is_empty() {
            counted.counts.total()
        } else {
            counted.counts.within(&query.filter.statuses)
        };
        (ferry_store::TaskPage { total, ..page }, counted)
    };
    let counts = &counted.counts;
    let f = &query.filter;
    let time = |t: Option<Timestamp>| t.map(Timestamp::to_rfc3339).unwrap_or_default();
    let pages = page.total.div_ceil(u64::from(query.page.per_page)).max(1);
    let current = query.page.page;
    let href = |p: u32| tasks_href(&query, p);
    let last = u32::try_from(pages).unwrap_or(u32::MAX);
    let count_href = |s: Option<Status>| {
        let mut q = query.clone();
        q.filter.statuses = s.into_iter().collect();
        tasks_href(&q, 1)
    };
    let filter_json = f.to_json().to_string();
    let t = TasksPage {
        nav: "tasks",
        me: Me::of(&caller),
        routes: state
            .config()
            .routes
            .iter()
            .map(|r| Check {
                id: r.id.to_string(),
                checked: f.routes.iter().any(|x| x == r.id.as_str()),
            })
            .collect(),
        statuses: Status::ALL
            .into_iter()
            .map(|s| StatusCheck {
                name: s.as_str(),
                checked: f.statuses.contains(&s),
            })
            .collect(),
        created_from: time(f.created_from),
        created_to: time(f.created_to),
        updated_from: time(f.updated_from),
        updated_to: time(f.updated_to),
        texts: vec![
            text_field("identifier", "Identifier", &f.identifier),
            text_field("entity_schema", "Entity schema", &f.entity_schema),
            text_field(
                "entity_identifier",
                "Entity identifier",
                &f.entity_identifier,
            ),
        ],
        sort: match query.sort {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
        },
        order: match query.order {
            SortOrder::Desc => "desc",
            SortOrder::Asc => "asc",
        },
        per_page: query.page.per_page,
        per_page_choices: vec![25, 50, 100, 250, 500],
        total: page.total,
        counts_exact: counted.exact,
        about: if counted.exact { "" } else { "≈ " },
        exact_href: {
            let href = tasks_href(&query, current);
            let glue = if href.contains('?') { '&' } else { '?' };
            format!("{href}{glue}count=exact")
        },
        counts: Status::ALL
            .into_iter()
            .map(|s| CountLink {
                name: s.as_str(),
                count: grouped(counts.get(s)),
                href: count_href(Some(s)),
                active: f.statuses.contains(&s),
            })
            .collect(),
        all_count: grouped(counts.total()),
        all_active: f.statuses.is_empty(),
        total_shown: grouped(page.total),
        all_statuses_href: count_href(None),
        filter_json,
        filtered: *f != TaskFilter::default(),
        active_filters: [
            !f.routes.is_empty(),
            !f.statuses.is_empty(),
            f.created_from.is_some() || f.created_to.is_some(),
            f.updated_from.is_some() || f.updated_to.is_some(),
            f.identifier.is_some(),
            f.entity_schema.is_some(),
            f.entity_identifier.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count(),
        tasks: page
            .items
            .iter()
            .map(|t| Row {
                id: t.id.to_string(),
                entity_schema: t.entity_schema.clone(),
                entity_identifier: t.entity_identifier.clone(),
                status: t.status.as_str(),
                attempts: t.attempts,
                route: t.route.clone(),
                created_at: t.created_at.to_rfc3339(),
                updated_at: t.updated_at.to_rfc3339(),
                can_skip: Action::Skip.is_allowed_from(t.status),
                can_retry: Action::Retry.is_allowed_from(t.status),
            })
            .collect(),
        page: current,
        pages,
        first_href: (current > 1).then(|| href(1)),
        prev_href: (current > 1).then(|| href(current - 1)),
        // An estimated total may be off: a short page is the last, and "last" is not
        // offered where the number of pages is a guess.
        next_href: (u64::from(current) < pages && page.items.len() == query.page.per_page as usize)
            .then(|| href(current + 1)),
        last_href: (counted.exact && u64::from(current) < pages).then(|| href(last)),
        beyond_last: page.items.is_empty() && page.total > 0 && current > 1,
        back_href: href(last),
        base_hint: format!("http://{}", state.config().server.listen),
        error,
    };
    render(&t)
}

// ---------------------------------------------------------------- a task

struct Tab {
    key: &'static str,
    label: &'static str,
    count: Option<usize>,
}

struct MessageRow {
    at: String,
    level: &'static str,
    message: String,
}

struct AttemptRow {
    attempt: u32,
    started_at: String,
    ended_at: String,
    outcome: &'static str,
    error: String,
}

struct ActionRow {
    at: String,
    actor: String,
    action: String,
    reason: String,
    origin: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    nav: &'static str,
    me: Me,
    id: String,
    route: String,
    entity_schema: String,
    entity_identifier: String,
    status: &'static str,
    attempts: u32,
    created_at: String,
    updated_at: String,
    next_attempt_at: Option<String>,
    last_error: Option<String>,
    /// What the target answered (the publisher's `response`), as JSON.
    response: Option<String>,
    can_skip: bool,
    can_retry: bool,
    tabs: Vec<Tab>,
    tab: &'static str,
    tab_label: &'static str,
    entity_json: String,
    messages: Vec<MessageRow>,
    attempts_rows: Vec<AttemptRow>,
    actions_rows: Vec<ActionRow>,
}

const TABS: [(&str, &str); 6] = [
    ("overview", "Overview"),
    ("data", "Entity Data"),
    ("import", "Import Messages"),
    ("export", "Export Messages"),
    ("history", "History"),
    ("audit", "Audit trail"),
];

async fn task_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut tab = "overview";
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "tab" {
            match TABS.iter().find(|(key, _)| *key == v) {
                Some((key, _)) => tab = key,
                None => {
                    return page_error(
                        Me::of(&caller),
                        StatusCode::BAD_REQUEST,
                        "Unknown tab",
                        format!(
                            "'{v}' is not a tab of a task; the tabs are overview, data, import, export and history."
                        ),
                    );
                }
            }
        }
    }
    let shown: String = raw.chars().take(64).collect();
    let not_found = || {
        page_error(
            Me::of(&caller),
            StatusCode::NOT_FOUND,
            "No such task",
            format!("No task has the identifier '{shown}'. It may have been removed by retention."),
        )
    };
    let Ok(id) = TaskId::parse(&raw) else {
        return not_found();
    };
    let store = state.store();
    let loaded = async {
        let Some(task) = store.get_task(&id).await? else {
            return Ok(None);
        };
        let import = store
            .messages(&id, Phase::Import)
            .await?
            .unwrap_or_default();
        let export = store
            .messages(&id, Phase::Export)
            .await?
            .unwrap_or_default();
        let attempts = store.attempts(&id).await?;
        let actions = store.task_actions(&id).await?;
        Ok::<_, ferry_store::StoreError>(Some((task, import, export, attempts, actions)))
    };
    let (task, import, export, attempts, actions) = match loaded.await {
        Ok(Some(x)) => x,
        Ok(None) => return not_found(),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let rows = |ms: &[ferry_core::Message]| -> Vec<MessageRow> {
        ms.iter()
            .map(|m| MessageRow {
                at: m.at.to_rfc3339(),
                level: m.level.as_str(),
                message: m.message.clone(),
            })
            .collect()
    };
    let counts = [
        None,
        None,
        Some(import.len()),
        Some(export.len()),
        Some(attempts.len()),
        Some(actions.len()),
    ];
    let s = &task.summary;
    let t = TaskPage {
        nav: "tasks",
        me: Me::of(&caller),
        id: s.id.to_string(),
        route: s.route.clone(),
        entity_schema: s.entity_schema.clone(),
        entity_identifier: s.entity_identifier.clone(),
        status: s.status.as_str(),
        attempts: s.attempts,
        created_at: s.created_at.to_rfc3339(),
        updated_at: s.updated_at.to_rfc3339(),
        next_attempt_at: task.next_attempt_at.map(Timestamp::to_rfc3339),
        last_error: task.last_error.clone(),
        response: task.response.as_ref().map(|r| match r {
            serde_json::Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        }),
        can_skip: Action::Skip.is_allowed_from(s.status),
        can_retry: Action::Retry.is_allowed_from(s.status),
        tabs: TABS
            .iter()
            .zip(counts)
            .map(|((key, label), count)| Tab { key, label, count })
            .collect(),
        tab,
        tab_label: TABS
            .iter()
            .find(|(k, _)| *k == tab)
            .map(|(_, l)| *l)
            .unwrap_or("Overview"),
        entity_json: serde_json::to_string_pretty(&task.entity_data).unwrap_or_default(),
        messages: match tab {
            "import" => rows(&import),
            "export" => rows(&export),
            _ => Vec::new(),
        },
        attempts_rows: attempts
            .iter()
            .map(|a| AttemptRow {
                attempt: a.attempt,
                started_at: a.started_at.to_rfc3339(),
                ended_at: a.ended_at.to_rfc3339(),
                outcome: a.outcome.as_str(),
                error: a.error.clone().unwrap_or_default(),
            })
            .collect(),
        actions_rows: actions
            .iter()
            .map(|a| ActionRow {
                at: a.at.to_rfc3339(),
                actor: a.actor.clone(),
                action: a.action.clone(),
                reason: a.reason.clone().unwrap_or_default(),
                origin: a.origin.clone().unwrap_or_default(),
            })
            .collect(),
    };
    render(&t)
}

// ---------------------------------------------------------------- routes

struct RouteView {
    id: String,
    name: String,
    disabled: bool,
    realtime: bool,
    incoming: String,
    incoming_runnable: String,
    outgoing: String,
    schedule_incoming: String,
    schedule_outgoing: String,
    batch_size: u32,
    retry: String,
    counts: Vec<CountLink>,
    failed_last_hour: u64,
    failed_last_hour_href: String,
    /// The since marks of the route's incoming configurations that have one.
    since: Vec<SinceView>,
    /// The circuit breaker of the outgoing side's connection, in words.
    circuit: Option<String>,
    /// Requests in flight and the limits on them, in words.
    delivery: Option<String>,
    /// What the Try panel's editor starts with: an entity with the schema's identifier
    /// fields.
    try_sample: String,
}

/// A sample entity for route `route`'s Try panel: its entity schema's identifier
/// fields (nested ones as objects) with sample values.
fn try_sample(config: &ferry_core::config::Config, route: &ferry_core::config::Route) -> String {
    let path = route
        .incoming
        .first()
        .and_then(|i| config.incoming(i.as_str()))
        .and_then(|i| config.entity_schema(i.entity_schema.as_str()))
        .map(|s| s.identifier_path.clone())
        .unwrap_or_default();
    fn put(at: &mut serde_json::Map<String, serde_json::Value>, keys: &[&str], value: String) {
        match keys {
            [] => {}
            [last] => {
                at.insert((*last).to_owned(), value.into());
            }
            [first, rest @ ..] => {
                let inner = at
                    .entry((*first).to_owned())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                if let Some(inner) = inner.as_object_mut() {
                    put(inner, rest, value);
                }
            }
        }
    }
    let mut sample = serde_json::Map::new();
    for (n, field) in path.iter().enumerate() {
        let keys: Vec<&str> = field.split('.').collect();
        put(&mut sample, &keys, format!("SAMPLE-{}", n + 1));
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(sample)).unwrap_or_default()
}

/// Where an incremental subscriber got to, as the Routes page shows it.
struct SinceView {
    incoming: String,
    value: String,
    /// RFC 3339, shown in the reader's time zone by the page's script.
    updated_at: String,
    /// How long ago, as of the page.
    updated_ago: String,
}

/// How long before `now` something happened, in the largest whole unit: "3 min ago".
fn ago(then: Timestamp, now: Timestamp) -> String {
    let s = (now.millis() - then.millis()).max(0) / 1_000;
    let (n, unit) = match s {
        0..60 => return "less than a minute ago".into(),
        60..3_600 => (s / 60, "min"),
        3_600..86_400 => (s / 3_600, "h"),
        _ => (s / 86_400, if s < 2 * 86_400 { "day" } else { "days" }),
    };
    format!("{n} {unit} ago")
}

#[derive(Template)]
#[template(path = "routes.html")]
struct RoutesPage {
    nav: &'static str,
    me: Me,
    total: String,
    totals: Vec<CountLink>,
    failed_last_hour: u64,
    failed_last_hour_href: String,
    retention: String,
    routes: Vec<RouteView>,
    /// The configured connections, secrets as `***`.
    connections: Vec<crate::connections::ConnectionDto>,
}

fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 && s > 0 => format!(
            "{} day{}",
            s / 86_400,
            if s / 86_400 == 1 { "" } else { "s" }
        ),
        s if s % 3_600 == 0 && s > 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 && s > 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

async fn routes_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let store = state.store();
    let now = Timestamp::now();
    let hour_ago = now.plus_millis(-3_600_000);
    let failed_since = |route: Option<&str>| TaskFilter {
        routes: route.map(|r| vec![r.to_owned()]).unwrap_or_default(),
        statuses: vec![Status::Failed],
        updated_from: Some(hour_ago),
        ..TaskFilter::default()
    };
    let failed_href = |f: &TaskFilter| {
        tasks_href(
            &TaskQuery {
                filter: f.clone(),
                ..TaskQuery::default()
            },
            1,
        )
    };
    let loaded = async {
        let by_route = store.counts_by_route().await?;
        let totals = store.count_tasks(&TaskFilter::default()).await?;
        let failed = store.count_tasks(&failed_since(None)).await?.total();
        let mut per_route_failed = Vec::new();
        for r in &state.config().routes {
            per_route_failed.push(
                store
                    .count_tasks(&failed_since(Some(r.id.as_str())))
                    .await?
                    .total(),
            );
        }
        let marks = store.since_marks().await?;
        Ok::<_, ferry_store::StoreError>((by_route, totals, failed, per_route_failed, marks))
    };
    let (by_route, totals, failed, per_route_failed, marks) = match loaded.await {
        Ok(x) => x,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let links = |c: &StatusCounts, route: Option<&str>| -> Vec<CountLink> {
        Status::ALL
            .into_iter()
            .map(|s| CountLink {
                name: s.as_str(),
                count: grouped(c.get(s)),
                active: false,
                href: match route {
                    Some(r) => format!("/tasks?route={r}&status={}", s.as_str()),
                    None => format!("/tasks?status={}", s.as_str()),
                },
            })
            .collect()
    };
    let r = &state.config().retention;
    let retention = match r.max_tasks {
        Some(n) => format!(
            "{} after their last update, and the oldest of them beyond {n} tasks in all",
            human(r.max_age)
        ),
        None => format!("{} after their last update", human(r.max_age)),
    };
    let routes = state
        .config()
        .routes
        .iter()
        .zip(per_route_failed)
        .map(|(route, failed_hour)| {
            let counts = by_route.get(route.id.as_str()).cloned().unwrap_or_default();
            let runnable: Vec<&str> = route
                .incoming
                .iter()
                .filter(|i| state.engine.runs_itself(i.as_str()))
                .map(|i| i.as_str())
                .collect();
            let p = &route.retry;
            RouteView {
                id: route.id.to_string(),
                name: route.name.clone(),
                disabled: route.disabled,
                realtime: route.realtime,
                incoming: route
                    .incoming
                    .iter()
                    .map(|i| {
                        let kind = state
                            .config()
                            .incoming(i.as_str())
                            .map(|c| c.subscriber.kind.as_str())
                            .unwrap_or("?");
                        format!("{i} ({kind})")
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                incoming_runnable: runnable.join(","),
                try_sample: try_sample(state.config(), route),
                outgoing: state
                    .config()
                    .outgoing(route.outgoing.as_str())
                    .map(|o| format!("{} ({})", o.id, o.publisher.kind))
                    .unwrap_or_default(),
                schedule_incoming: route
                    .schedule
                    .incoming
                    .as_ref()
                    .map(|c| c.expression().to_owned())
                    .unwrap_or_else(|| "none".into()),
                schedule_outgoing: route
                    .schedule
                    .outgoing
                    .as_ref()
                    .map(|c| c.expression().to_owned())
                    .unwrap_or_else(|| "none".into()),
                batch_size: route.batch_size,
                retry: if p.enabled {
                    let mut s = format!(
                        "up to {} attempts, {} apart{}",
                        p.max_attempts,
                        human(p.interval),
                        if p.backoff == ferry_core::retry::Backoff::Exponential {
                            ", doubling"
                        } else {
                            ""
                        }
                    );
                    if !p.on_http_status.is_empty() {
                        s.push_str(&format!(
                            "; on HTTP {}",
                            p.on_http_status
                                .iter()
                                .map(u16::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if !p.on_message.is_empty() {
                        s.push_str(&format!(
                            "; on messages containing {}",
                            p.on_message.join(", ")
                        ));
                    }
                    s
                } else {
                    "off: a failure is final".into()
                },
                counts: links(&counts, Some(route.id.as_str())),
                failed_last_hour: failed_hour,
                failed_last_hour_href: failed_href(&failed_since(Some(route.id.as_str()))),
                since: route
                    .incoming
                    .iter()
                    .filter_map(|i| {
                        let mark = marks.get(i.as_str())?;
                        Some(SinceView {
                            incoming: i.to_string(),
                            value: mark.value.clone(),
                            updated_at: mark.updated_at.to_rfc3339(),
                            updated_ago: ago(mark.updated_at, now),
                        })
                    })
                    .collect(),
                delivery: state
                    .engine
                    .delivery(route.outgoing.as_str())
                    .map(|d| d.to_string()),
                circuit: state.engine.circuit(route.outgoing.as_str()).map(|c| {
                    let mut text = match (c.state, &c.until) {
                        ("open", Some(until)) => format!("open until {until}"),
                        (state, _) => state.to_owned(),
                    };
                    if c.state != "closed"
                        && let Some(e) = &c.last_error
                    {
                        text.push_str(&format!(" — last error: {e}"));
                    }
                    text
                }),
            }
        })
        .collect();
    let t = RoutesPage {
        nav: "routes",
        me: Me::of(&caller),
        total: grouped(totals.total()),
        totals: links(&totals, None),
        failed_last_hour: failed,
        failed_last_hour_href: failed_href(&failed_since(None)),
        retention,
        routes,
        connections: crate::connections::connections(&state),
    };
    render(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(301_026), "301,026");
        assert_eq!(grouped(1_000_000), "1,000,000");
    }

    #[test]
    fn ago_says_how_long_in_the_largest_whole_unit() {
        let now = Timestamp::from_millis(1_767_225_600_000);
        let before = |s: i64| ago(now.plus_millis(-s * 1_000), now);
        assert_eq!(before(0), "less than a minute ago");
        assert_eq!(before(59), "less than a minute ago");
        assert_eq!(before(180), "3 min ago");
        assert_eq!(before(7_199), "1 h ago");
        assert_eq!(before(86_400), "1 day ago");
        assert_eq!(before(3 * 86_400 + 5), "3 days ago");
        assert_eq!(
            ago(now.plus_millis(5_000), now),
            "less than a minute ago",
            "a clock a little ahead is not the future"
        );
    }
}
