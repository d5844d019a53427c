//! Statements built once with sea-query and rendered per backend; every value is bound.

use crate::ActionRequest;
use ferry_core::filter::{MatchMode, SortField, SortOrder, TextMatch};
use ferry_core::{Status, TaskFilter, TaskQuery};
use sea_query::{Asterisk, Cond, Expr, ExprTrait, Func, Order, Query, SelectStatement};

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

pub const DETAIL_COLUMNS: [&str; 11] = [
    "id",
    "route",
    "entity_schema",
    "entity_identifier",
    "status",
    "attempts",
    "created_at",
    "updated_at",
    "entity_data",
    "last_error",
    "next_attempt_at",
];

/// The SQL differences between backends that the builder cannot hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A case-sensitive substring test with no wildcard characters: `instr` on
    /// SQLite (whose LIKE ignores ASCII case), `strpos` on PostgreSQL.
    fn contains(self, column: &'static str, value: &str) -> Expr {
        let name = match self {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        };
        Expr::from(
            Func::cust(name)
                .arg(Expr::col(column))
                .arg(value.to_owned()),
        )
        .gt(0)
    }
}

fn text(dialect: Dialect, column: &'static str, m: &TextMatch) -> Expr {
    match m.mode {
        MatchMode::Equals => Expr::col(column).eq(m.value.clone()),
        MatchMode::Contains => dialect.contains(column, &m.value),
    }
}

pub fn statuses(list: &[Status]) -> Vec<&'static str> {
    list.iter().map(|s| s.as_str()).collect()
}

/// The WHERE condition of a filter.
pub fn condition(dialect: Dialect, f: &TaskFilter) -> Cond {
    let mut c = Cond::all();
    if !f.routes.is_empty() {
        c = c.add(Expr::col("route").is_in(f.routes.clone()));
    }
    if !f.statuses.is_empty() {
        c = c.add(Expr::col("status").is_in(statuses(&f.statuses)));
    }
    let ranges = [
        ("created_at", f.created_from, f.created_to),
        ("updated_at", f.updated_from, f.updated_to),
    ];
    for (column, from, to) in ranges {
        if let Some(from) = from {
            c = c.add(Expr::col(column).gte(from.millis()));
        }
        if let Some(to) = to {
            c = c.add(Expr::col(column).lte(to.millis()));
        }
    }
    let texts = [
        ("id", &f.identifier),
        ("entity_schema", &f.entity_schema),
        ("entity_identifier", &f.entity_identifier),
    ];
    for (column, m) in texts {
        if let Some(m) = m {
            c = c.add(text(dialect, column, m));
        }
    }
    c
}

pub fn list(dialect: Dialect, q: &TaskQuery) -> SelectStatement {
    let order = match q.order {
        SortOrder::Desc => Order::Desc,
        SortOrder::Asc => Order::Asc,
    };
    let column = match q.sort {
        SortField::CreatedAt => "created_at",
        SortField::UpdatedAt => "updated_at",
    };
    Query::select()
        .columns(SUMMARY_COLUMNS)
        .from(TASKS)
        .cond_where(condition(dialect, &q.filter))
        .order_by(column, order.clone())
        .order_by("id", order)
        .limit(u64::from(q.page.per_page))
        .offset(q.page.offset())
        .to_owned()
}

pub fn count(dialect: Dialect, f: &TaskFilter) -> SelectStatement {
    Query::select()
        .expr(Func::count(Expr::col(Asterisk)))
        .from(TASKS)
        .cond_where(condition(dialect, f))
        .to_owned()
}

pub fn count_by_status(dialect: Dialect, f: &TaskFilter) -> SelectStatement {
    Query::select()
        .column("status")
        .expr(Func::count(Expr::col(Asterisk)))
        .from(TASKS)
        .cond_where(condition(dialect, f))
        .group_by_col("status")
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

/// A filter as recorded in the audit trail: parameter name → values.
pub fn filter_json(filter: &TaskFilter) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in filter.to_pairs() {
        match map.get_mut(k) {
            Some(serde_json::Value::Array(a)) => a.push(v.into()),
            _ => {
                let value = if k == "route" || k == "status" {
                    serde_json::Value::Array(vec![v.into()])
                } else {
                    v.into()
                };
                map.insert(k.to_owned(), value);
            }
        }
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::filter::Accept;
    use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

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
        assert!(sql.contains("strpos") && sql.contains("$1"), "{sql}");
    }
}
