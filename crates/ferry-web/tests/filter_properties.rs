//! Property: for any combination of filters, sort and order, the API's list is exactly
//! the filter applied in memory (`TaskFilter::matches`) to every task, in the same order.

mod common;

use common::TestApp;
use ferry_core::filter::{Accept, SortField, SortOrder, TaskQuery};
use ferry_core::task::TaskSummary;
use ferry_core::{Status, TaskId, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

fn summary(v: &Value) -> TaskSummary {
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    TaskSummary {
        id: TaskId::parse(&s("identifier")).unwrap(),
        route: s("route"),
        entity_schema: s("entity_schema"),
        entity_identifier: s("entity_identifier"),
        status: Status::parse(&s("status")).unwrap(),
        attempts: v["attempts"].as_u64().unwrap() as u32,
        created_at: Timestamp::parse_rfc3339(&s("created_at")).unwrap(),
        updated_at: Timestamp::parse_rfc3339(&s("updated_at")).unwrap(),
    }
}

/// A query as pairs, drawn from values that hit and miss the data set.
fn query_strategy(
    times: Vec<String>,
    ids: Vec<String>,
) -> impl Strategy<Value = Vec<(String, String)>> {
    let routes =
        prop::sample::subsequence(vec!["archive", "strict", "patient", "idle", "ghost"], 0..=3);
    let statuses = prop::sample::subsequence(
        vec![
            "new",
            "finished",
            "failed",
            "skipped",
            "retry",
            "processing",
        ],
        0..=3,
    );
    let time = prop::option::of(prop::sample::select(times));
    let id_part = prop::option::of((prop::sample::select(ids), 0usize..20, 1usize..8));
    let text =
        |values: Vec<&'static str>| prop::option::of((prop::sample::select(values), any::<bool>()));
    (
        routes,
        statuses,
        (time.clone(), time.clone(), time.clone(), time),
        id_part,
        text(vec!["product", "prod", "order", "Product", "duct"]),
        text(vec![
            "SKU-0001",
            "SKU-00",
            "1",
            "sku",
            "%",
            "_",
            "SKU_0001",
            "{\"order\":3}",
            "order",
        ]),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(routes, statuses, (cf, ct, uf, ut), id_part, schema, entity, (by_updated, asc))| {
                let mut q: Vec<(String, String)> = Vec::new();
                q.extend(routes.into_iter().map(|r| ("route".into(), r.into())));
                q.extend(statuses.into_iter().map(|s| ("status".into(), s.into())));
                for (k, v) in [
                    ("created_from", cf),
                    ("created_to", ct),
                    ("updated_from", uf),
                    ("updated_to", ut),
                ] {
                    if let Some(v) = v {
                        q.push((k.into(), v));
                    }
                }
                if let Some((id, start, len)) = id_part {
                    let end = (start + len).min(id.len());
                    let value = if len == 7 {
                        id.clone()
                    } else {
                        id[start.min(end)..end].to_owned()
                    };
                    q.push(("identifier".into(), value));
                    if len == 7 {
                        q.push(("identifier_match".into(), "equals".into()));
                    }
                }
                for (k, v) in [("entity_schema", schema), ("entity_identifier", entity)] {
                    if let Some((value, equals)) = v {
                        q.push((k.into(), value.into()));
                        q.push((
                            format!("{k}_match"),
                            if equals { "equals" } else { "contains" }.into(),
                        ));
                    }
                }
                q.push((
                    "sort".into(),
                    if by_updated {
                        "updated_at"
                    } else {
                        "created_at"
                    }
                    .into(),
                ));
                q.push(("order".into(), if asc { "asc" } else { "desc" }.into()));
                q
            },
        )
}

#[test]
fn a_filtered_list_equals_the_filter_applied_in_memory_to_all_tasks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (app, all) = rt.block_on(async {
        let app = TestApp::start().await;
        // Several deliveries spread over time, then runs and actions: every status but
        // processing, and updated times that differ from created times.
        for i in 0..6 {
            app.push_products(&TestApp::products(5, i * 5)).await;
            let orders: Vec<Value> = (0..3)
                .map(|j| serde_json::json!({"order": i * 3 + j}))
                .collect();
            app.post_ok("/api/v1/webhooks/orders", &serde_json::json!(orders))
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        for route in ["archive", "strict", "patient"] {
            app.run_route(route).await;
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        app.post_ok(
            "/api/v1/tasks/skip",
            &serde_json::json!({"filter": {"route": "idle", "entity_identifier": "SKU-001"}}),
        )
        .await;
        let list = app.get_ok("/api/v1/tasks?per_page=500&order=asc").await;
        let all: Vec<TaskSummary> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(summary)
            .collect();
        assert_eq!(all.len(), 6 * (5 * 4 + 3));
        (app, all)
    });
    let mut times: Vec<String> = all
        .iter()
        .flat_map(|t| [t.created_at, t.updated_at])
        .map(Timestamp::to_rfc3339)
        .collect();
    times.sort();
    times.dedup();
    let ids: Vec<String> = all.iter().map(|t| t.id.to_string()).collect();

    let mut runner = TestRunner::new(Config {
        cases: 150,
        ..Config::default()
    });
    runner
        .run(&query_strategy(times, ids), |pairs| {
            let query = TaskQuery::parse(
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                Accept::All,
            );
            let Ok(query) = query else {
                // Only an inverted range is refused; the API must refuse it too.
                let url = app.url("/api/v1/tasks");
                let status = rt.block_on(async {
                    app.http
                        .get(&url)
                        .query(&pairs)
                        .send()
                        .await
                        .unwrap()
                        .status()
                });
                prop_assert_eq!(status, 400);
                return Ok(());
            };
            let mut expected: Vec<&TaskSummary> =
                all.iter().filter(|t| query.filter.matches(t)).collect();
            expected.sort_by_key(|t| {
                let at = match query.sort {
                    SortField::CreatedAt => t.created_at,
                    SortField::UpdatedAt => t.updated_at,
                };
                (at, t.id.clone())
            });
            if query.order == SortOrder::Desc {
                expected.reverse();
            }
            let mut with_page = pairs.clone();
            with_page.push(("per_page".into(), "500".into()));
            let got = rt.block_on(async {
                let url = app.url("/api/v1/tasks");
                let r = app.http.get(&url).query(&with_page).send().await.unwrap();
                assert_eq!(r.status(), 200, "{with_page:?}");
                r.json::<Value>().await.unwrap()
            });
            let got_ids: Vec<&str> = got["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["identifier"].as_str().unwrap())
                .collect();
            let expected_ids: Vec<&str> = expected.iter().map(|t| t.id.as_str()).collect();
            prop_assert_eq!(&got_ids, &expected_ids, "query {:?}", pairs);
            prop_assert_eq!(got["total"].as_u64().unwrap(), expected.len() as u64);
            Ok(())
        })
        .unwrap();
}
