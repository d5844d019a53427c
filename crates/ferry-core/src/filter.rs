//! Task filters, sorting and paging: the query language of the Tasks page and the API.
//!
//! One parser reads the `GET /api/v1/tasks` query parameters; the bulk actions' JSON
//! filter is turned into the same pairs, so both are validated alike and a page URL and
//! an API URL filter alike. [`TaskFilter::matches`] states the semantics in memory; the
//! stores must agree with it (a property test checks that).

use crate::{Status, TaskSummary, Timestamp};

/// Default and maximum page sizes of the list.
pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 500;
/// Longest accepted filter value, in characters.
pub const MAX_VALUE_CHARS: usize = 1_024;
/// Most values accepted for a repeatable parameter.
pub const MAX_REPEATS: usize = 100;

/// The list parameters that are filters (everything but paging and sorting).
pub const FILTER_PARAMETERS: [&str; 12] = [
    "route",
    "status",
    "created_from",
    "created_to",
    "updated_from",
    "updated_to",
    "identifier",
    "identifier_match",
    "entity_schema",
    "entity_schema_match",
    "entity_identifier",
    "entity_identifier_match",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchMode {
    #[default]
    Contains,
    Equals,
}

impl MatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::Contains => "contains",
            MatchMode::Equals => "equals",
        }
    }
}

/// A text condition: a case-sensitive substring (`%` and `_` are literal) or equality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    pub value: String,
    pub mode: MatchMode,
}

impl TextMatch {
    pub fn matches(&self, candidate: &str) -> bool {
        match self.mode {
            MatchMode::Contains => candidate.contains(&self.value),
            MatchMode::Equals => candidate == self.value,
        }
    }
}

/// Which tasks. Every condition that is set must hold; within `routes` and `statuses`
/// any listed value may match. The empty filter matches every task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskFilter {
    pub routes: Vec<String>,
    pub statuses: Vec<Status>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    pub updated_from: Option<Timestamp>,
    pub updated_to: Option<Timestamp>,
    pub identifier: Option<TextMatch>,
    pub entity_schema: Option<TextMatch>,
    pub entity_identifier: Option<TextMatch>,
}

impl TaskFilter {
    /// The filter's meaning, evaluated in memory.
    pub fn matches(&self, t: &TaskSummary) -> bool {
        let in_range = |v: Timestamp, from: Option<Timestamp>, to: Option<Timestamp>| {
            from.is_none_or(|f| v >= f) && to.is_none_or(|e| v <= e)
        };
        let text = |m: &Option<TextMatch>, v: &str| m.as_ref().is_none_or(|m| m.matches(v));
        (self.routes.is_empty() || self.routes.contains(&t.route))
            && (self.statuses.is_empty() || self.statuses.contains(&t.status))
            && in_range(t.created_at, self.created_from, self.created_to)
            && in_range(t.updated_at, self.updated_from, self.updated_to)
            && text(&self.identifier, t.id.as_str())
            && text(&self.entity_schema, &t.entity_schema)
            && text(&self.entity_identifier, &t.entity_identifier)
    }

    /// The same filter restricted to some statuses (used to find the tasks an action
    /// may change), or `None` when the restriction leaves no status at all.
    pub fn with_statuses_within(&self, allowed: &[Status]) -> Option<TaskFilter> {
        let statuses: Vec<Status> = if self.statuses.is_empty() {
            allowed.to_vec()
        } else {
            self.statuses
                .iter()
                .copied()
                .filter(|s| allowed.contains(s))
                .collect()
        };
        (!statuses.is_empty()).then(|| TaskFilter {
            statuses,
            ..self.clone()
        })
    }

    /// The filter as the bulk actions' JSON object (`route` and `status` as arrays), the
    /// form the API accepts and the audit trail records.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in self.to_pairs() {
            if k == "route" || k == "status" {
                map.entry(k)
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()))
                    .as_array_mut()
                    .expect("route and status are arrays")
                    .push(v.into());
            } else {
                map.insert(k.to_owned(), v.into());
            }
        }
        serde_json::Value::Object(map)
    }

    /// The filter as query pairs, the inverse of [`TaskQuery::parse`].
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        for r in &self.routes {
            pairs.push(("route", r.clone()));
        }
        for s in &self.statuses {
            pairs.push(("status", s.as_str().to_owned()));
        }
        let times = [
            ("created_from", self.created_from),
            ("created_to", self.created_to),
            ("updated_from", self.updated_from),
            ("updated_to", self.updated_to),
        ];
        for (name, t) in times {
            if let Some(t) = t {
                pairs.push((name, t.to_rfc3339()));
            }
        }
        let texts = [
            ("identifier", "identifier_match", &self.identifier),
            ("entity_schema", "entity_schema_match", &self.entity_schema),
            (
                "entity_identifier",
                "entity_identifier_match",
                &self.entity_identifier,
            ),
        ];
        for (name, match_name, m) in texts {
            if let Some(m) = m {
                pairs.push((name, m.value.clone()));
                pairs.push((match_name, m.mode.as_str().to_owned()));
            }
        }
        pairs
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    #[default]
    CreatedAt,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Desc,
    Asc,
}

/// A 1-based page of `per_page` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl Page {
    pub fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }
}

/// How a list counts the tasks that match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountMode {
    /// Every match counted (`count=exact`, the default).
    #[default]
    Exact,
    /// Counted up to a threshold and no further (`count=capped`): quick on any number
    /// of tasks; above the threshold the total is a lower bound, marked as such.
    Capped,
    /// Not counted: the caller has the total from the status counts.
    Skip,
    /// Status counts only (`count=estimate`): counted exactly up to a threshold; above
    /// it, a store that keeps statistics (PostgreSQL) may answer with its estimate,
    /// marked as such, instead of counting every match.
    Estimate,
}

/// A whole list request: filter, sort, page, and how to count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskQuery {
    pub filter: TaskFilter,
    pub sort: SortField,
    pub order: SortOrder,
    pub page: Page,
    pub count: CountMode,
}

/// A parameter that cannot be used, and why; `parameter` names it as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct FilterError {
    pub parameter: String,
    pub message: String,
}

/// Why a value with a NUL character is refused: no task, route or identifier can hold
/// one (PostgreSQL's text cannot), so it could never match; both stores answer alike.
pub const NUL_REFUSED: &str =
    "the value holds a NUL character (\\0), which no task, route or identifier can hold";

fn bad(parameter: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        parameter: parameter.to_owned(),
        message: message.into(),
    }
}

/// Which parameters a parse accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Filters, sorting and paging (the list).
    All,
    /// Filters only (bulk actions).
    FiltersOnly,
    /// Filters and how to count (`count=exact|estimate`): the status counts.
    Counts,
}

impl TaskQuery {
    /// Reads query pairs. Empty values count as absent, so an HTML form's blank fields
    /// filter nothing. Unknown parameters are refused, so a typo never silently widens
    /// a bulk action.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        accept: Accept,
    ) -> Result<TaskQuery, FilterError> {
        let mut q = TaskQuery::default();
        let mut text_values: [(Option<String>, Option<MatchMode>); 3] = Default::default();
        let mut page = None;
        let mut per_page = None;
        for (key, raw) in pairs {
            if raw.contains('\0') {
                return Err(bad(key, NUL_REFUSED));
            }
            if raw.chars().count() > MAX_VALUE_CHARS {
                return Err(bad(
                    key,
                    format!("the value is longer than {MAX_VALUE_CHARS} characters"),
                ));
            }
            let value = raw.trim();
            let is_paging = matches!(key, "page" | "per_page" | "sort" | "order" | "count");
            let allowed = match accept {
                Accept::All => true,
                Accept::FiltersOnly => false,
                Accept::Counts => key == "count",
            };
            if is_paging && !allowed {
                return Err(bad(
                    key,
                    "paging and sorting do not apply here; send only filter parameters",
                ));
            }
            if value.is_empty() {
                if FILTER_PARAMETERS.contains(&key) || is_paging {
                    continue;
                }
                return Err(unknown(key));
            }
            let f = &mut q.filter;
            match key {
                "route" => {
                    crate::ConfigId::parse(value).map_err(|e| bad(key, e.to_string()))?;
                    push_limited(&mut f.routes, value.to_owned(), key)?;
                }
                "status" => {
                    let s = Status::parse(value).map_err(|e| bad(key, e.to_string()))?;
                    if !f.statuses.contains(&s) {
                        push_limited(&mut f.statuses, s, key)?;
                    }
                }
                "created_from" => f.created_from = Some(time(key, value)?),
                "created_to" => f.created_to = Some(time(key, value)?),
                "updated_from" => f.updated_from = Some(time(key, value)?),
                "updated_to" => f.updated_to = Some(time(key, value)?),
                // Task identifiers are ULIDs, case-insensitive, stored upper case.
                "identifier" => text_values[0].0 = Some(raw.to_uppercase()),
                "entity_schema" => text_values[1].0 = Some(raw.to_owned()),
                "entity_identifier" => text_values[2].0 = Some(raw.to_owned()),
                "identifier_match" => text_values[0].1 = Some(mode(key, value)?),
                "entity_schema_match" => text_values[1].1 = Some(mode(key, value)?),
                "entity_identifier_match" => text_values[2].1 = Some(mode(key, value)?),
                "page" => page = Some(number(key, value)?),
                "per_page" => per_page = Some(number(key, value)?),
                "sort" => {
                    q.sort = match value {
                        "created_at" => SortField::CreatedAt,
                        "updated_at" => SortField::UpdatedAt,
                        _ => {
                            return Err(bad(
                                key,
                                format!("'{value}' is not sortable; use created_at or updated_at"),
                            ));
                        }
                    }
                }
                "count" => {
                    q.count = match (value, accept) {
                        ("exact", _) => CountMode::Exact,
                        ("capped", Accept::All) => CountMode::Capped,
                        ("estimate", Accept::Counts) => CountMode::Estimate,
                        _ => {
                            let ways = match accept {
                                Accept::Counts => "exact or estimate",
                                _ => "exact or capped",
                            };
                            return Err(bad(
                                key,
                                format!("'{value}' is not a way to count here; use {ways}"),
                            ));
                        }
                    }
                }
                "order" => {
                    q.order = match value {
                        "desc" => SortOrder::Desc,
                        "asc" => SortOrder::Asc,
                        _ => {
                            return Err(bad(
                                key,
                                format!("'{value}' is not an order; use desc or asc"),
                            ));
                        }
                    }
                }
                _ => return Err(unknown(key)),
            }
        }
        let [id, schema, entity] = text_values;
        q.filter.identifier = text_match(id);
        q.filter.entity_schema = text_match(schema);
        q.filter.entity_identifier = text_match(entity);
        if let Some(p) = page {
            if p == 0 {
                return Err(bad("page", "pages are numbered from 1"));
            }
            q.page.page = p;
        }
        if let Some(pp) = per_page {
            if pp == 0 || pp > MAX_PER_PAGE {
                return Err(bad(
                    "per_page",
                    format!("{pp} is out of range; use 1 to {MAX_PER_PAGE}"),
                ));
            }
            q.page.per_page = pp;
        }
        for (name, from, to) in [
            ("created_from", q.filter.created_from, q.filter.created_to),
            ("updated_from", q.filter.updated_from, q.filter.updated_to),
        ] {
            if let (Some(from), Some(to)) = (from, to)
                && from > to
            {
                return Err(bad(
                    name,
                    format!("the range starts ({from}) after it ends ({to})"),
                ));
            }
        }
        Ok(q)
    }
}

fn unknown(key: &str) -> FilterError {
    bad(
        key,
        "unknown parameter; the filters are route, status, created_from, created_to, updated_from, updated_to, identifier, entity_schema, entity_identifier (each with _match = contains or equals), and page, per_page, sort, order",
    )
}

fn push_limited<T>(list: &mut Vec<T>, value: T, key: &str) -> Result<(), FilterError> {
    if list.len() >= MAX_REPEATS {
        return Err(bad(
            key,
            format!("at most {MAX_REPEATS} values are accepted"),
        ));
    }
    list.push(value);
    Ok(())
}

fn time(key: &str, value: &str) -> Result<Timestamp, FilterError> {
    Timestamp::parse_rfc3339(value).map_err(|e| bad(key, e.to_string()))
}

fn mode(key: &str, value: &str) -> Result<MatchMode, FilterError> {
    match value {
        "contains" => Ok(MatchMode::Contains),
        "equals" => Ok(MatchMode::Equals),
        _ => Err(bad(
            key,
            format!("'{value}' is not a match mode; use contains or equals"),
        )),
    }
}

fn number(key: &str, value: &str) -> Result<u32, FilterError> {
    value
        .parse()
        .map_err(|_| bad(key, format!("'{value}' is not a whole number")))
}

fn text_match((value, mode): (Option<String>, Option<MatchMode>)) -> Option<TextMatch> {
    value.filter(|v| !v.is_empty()).map(|value| TextMatch {
        value,
        mode: mode.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskId;

    fn parse(q: &[(&str, &str)]) -> Result<TaskQuery, FilterError> {
        TaskQuery::parse(q.iter().copied(), Accept::All)
    }

    fn task(route: &str, status: Status, created: i64) -> TaskSummary {
        TaskSummary {
            id: TaskId::generate(Timestamp::from_millis(created)),
            route: route.into(),
            entity_schema: "product".into(),
            entity_identifier: "SKU-1".into(),
            status,
            attempts: 0,
            created_at: Timestamp::from_millis(created),
            updated_at: Timestamp::from_millis(created),
        }
    }

    #[test]
    fn no_parameters_mean_every_task_newest_first_fifty_a_page() {
        let q = parse(&[]).unwrap();
        assert_eq!(q.filter, TaskFilter::default());
        assert_eq!((q.sort, q.order), (SortField::CreatedAt, SortOrder::Desc));
        assert_eq!(
            q.page,
            Page {
                page: 1,
                per_page: 50
            }
        );
    }

    #[test]
    fn repeated_routes_and_statuses_are_all_kept() {
        let q = parse(&[
            ("route", "a"),
            ("route", "b"),
            ("status", "new"),
            ("status", "failed"),
        ])
        .unwrap();
        assert_eq!(q.filter.routes, ["a", "b"]);
        assert_eq!(q.filter.statuses, [Status::New, Status::Failed]);
    }

    #[test]
    fn identifier_searches_ignore_case_like_ulids_do() {
        let q = parse(&[("identifier", "01jd")]).unwrap();
        assert_eq!(q.filter.identifier.unwrap().value, "01JD");
    }

    #[test]
    fn blank_values_filter_nothing() {
        let q = parse(&[("identifier", ""), ("created_from", ""), ("status", "")]).unwrap();
        assert_eq!(q.filter, TaskFilter::default());
    }

    #[test]
    fn text_filters_contain_by_default_and_may_equal() {
        let q = parse(&[
            ("entity_identifier", "SKU"),
            ("identifier", "01"),
            ("identifier_match", "equals"),
        ])
        .unwrap();
        assert_eq!(
            q.filter.entity_identifier.unwrap().mode,
            MatchMode::Contains
        );
        assert_eq!(q.filter.identifier.unwrap().mode, MatchMode::Equals);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (k, v, needle) in [
            ("status", "done", "unknown status"),
            ("created_from", "yesterday", "RFC 3339"),
            ("per_page", "501", "1 to 500"),
            ("per_page", "0", "1 to 500"),
            ("page", "0", "from 1"),
            ("page", "x", "whole number"),
            ("sort", "id", "created_at or updated_at"),
            ("order", "up", "desc or asc"),
            ("identifier_match", "like", "contains or equals"),
            ("route", "Not Valid", "identifier"),
            ("colour", "red", "unknown parameter"),
        ] {
            let err = parse(&[(k, v)]).unwrap_err();
            assert_eq!(err.parameter, k);
            assert!(err.message.contains(needle), "{k}={v}: {}", err.message);
        }
    }

    #[test]
    fn a_range_that_ends_before_it_starts_is_refused() {
        let err = parse(&[
            ("created_from", "2026-02-01T00:00:00Z"),
            ("created_to", "2026-01-01T00:00:00Z"),
        ])
        .unwrap_err();
        assert_eq!(err.parameter, "created_from");
    }

    #[test]
    fn filters_only_refuses_paging() {
        let err = TaskQuery::parse([("page", "2")], Accept::FiltersOnly).unwrap_err();
        assert_eq!(err.parameter, "page");
    }

    #[test]
    fn the_list_counts_exactly_unless_asked_for_a_capped_count() {
        assert_eq!(parse(&[]).unwrap().count, CountMode::Exact);
        assert_eq!(
            parse(&[("count", "capped")]).unwrap().count,
            CountMode::Capped
        );
        assert_eq!(
            parse(&[("count", "exact")]).unwrap().count,
            CountMode::Exact
        );
        let err = parse(&[("count", "roughly")]).unwrap_err();
        assert!(err.message.contains("use exact or capped"), "{err}");
        let err = TaskQuery::parse([("count", "capped")], Accept::FiltersOnly).unwrap_err();
        assert_eq!(err.parameter, "count");
    }

    #[test]
    fn status_counts_may_be_asked_for_an_estimate_and_nothing_else_of_paging() {
        let counts =
            |pairs: &[(&str, &str)]| TaskQuery::parse(pairs.iter().copied(), Accept::Counts);
        assert_eq!(counts(&[]).unwrap().count, CountMode::Exact);
        assert_eq!(
            counts(&[("count", "estimate")]).unwrap().count,
            CountMode::Estimate
        );
        let err = counts(&[("count", "capped")]).unwrap_err();
        assert!(err.message.contains("use exact or estimate"), "{err}");
        assert_eq!(counts(&[("page", "2")]).unwrap_err().parameter, "page");
        let err = parse(&[("count", "estimate")]).unwrap_err();
        assert!(err.message.contains("use exact or capped"), "{err}");
    }

    #[test]
    fn an_overlong_value_is_refused() {
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        assert!(parse(&[("identifier", &long)]).is_err());
    }

    #[test]
    fn time_ranges_are_inclusive() {
        let q = parse(&[
            ("created_from", "1970-01-01T00:00:01Z"),
            ("created_to", "1970-01-01T00:00:02Z"),
        ])
        .unwrap();
        assert!(q.filter.matches(&task("a", Status::New, 1_000)));
        assert!(q.filter.matches(&task("a", Status::New, 2_000)));
        assert!(!q.filter.matches(&task("a", Status::New, 2_001)));
    }

    #[test]
    fn contains_is_case_sensitive_and_treats_wildcards_literally() {
        let m = TextMatch {
            value: "a%".into(),
            mode: MatchMode::Contains,
        };
        assert!(m.matches("xa%y"));
        assert!(!m.matches("xaby"));
        let m = TextMatch {
            value: "sku".into(),
            mode: MatchMode::Contains,
        };
        assert!(!m.matches("SKU-1"));
    }

    #[test]
    fn restricting_statuses_keeps_only_the_allowed_ones() {
        let f = TaskFilter {
            statuses: vec![Status::New, Status::Finished],
            ..Default::default()
        };
        let r = f
            .with_statuses_within(&[Status::New, Status::Retry])
            .unwrap();
        assert_eq!(r.statuses, [Status::New]);
        let all = TaskFilter::default().with_statuses_within(&[Status::New, Status::Retry]);
        assert_eq!(all.unwrap().statuses, [Status::New, Status::Retry]);
        let none = TaskFilter {
            statuses: vec![Status::Finished],
            ..Default::default()
        };
        assert_eq!(none.with_statuses_within(&[Status::New]), None);
    }

    #[test]
    fn the_json_form_lists_routes_and_statuses_as_arrays() {
        let q = parse(&[
            ("route", "a"),
            ("route", "b"),
            ("status", "new"),
            ("identifier", "01"),
        ])
        .unwrap();
        assert_eq!(
            q.filter.to_json(),
            serde_json::json!({"route": ["a", "b"], "status": ["new"], "identifier": "01", "identifier_match": "contains"})
        );
    }

    #[test]
    fn a_filter_survives_a_round_trip_through_pairs() {
        let q = parse(&[
            ("route", "a"),
            ("status", "retry"),
            ("created_from", "2026-01-01T00:00:00Z"),
            ("updated_to", "2026-02-01T00:00:00Z"),
            ("entity_schema", "prod"),
            ("entity_schema_match", "equals"),
        ])
        .unwrap();
        let pairs = q.filter.to_pairs();
        let back = TaskQuery::parse(
            pairs.iter().map(|(k, v)| (*k, v.as_str())),
            Accept::FiltersOnly,
        )
        .unwrap();
        assert_eq!(back.filter, q.filter);
    }
}
