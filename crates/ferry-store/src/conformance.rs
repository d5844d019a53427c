//! The conformance suite: the behaviour every [`Store`] backend must show.
//!
//! Each case is a public async function over a fresh, empty store. A backend's test file
//! runs them all with [`conformance_suite!`](crate::conformance_suite), giving it a
//! function that opens a fresh store (its own file, database or schema).

use crate::access::{NewSession, NewToken, NewUser, UserChange};
use crate::jobs::BulkJob;
use crate::store::*;
use ferry_core::filter::{Accept, TaskQuery};
use ferry_core::task::{Level, Message, NewTask, Phase, Task, TaskSummary};
use ferry_core::{Action, ConfigId, JobState, Role, Status, TaskFilter, TaskId, Timestamp};
use serde_json::json;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// A store under test and whatever keeps it alive (a temp dir, a database to drop).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub guard: Box<dyn Any + Send>,
}

/// Generates one `#[tokio::test]` per case, each with its own store from `$make`
/// (an async function returning `Some(Fixture)`, or `None` to skip — a backend that is
/// not reachable on this machine; it must not skip under CI=true).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make;
            inserted_tasks_are_read_back_with_their_import_messages,
            the_list_is_newest_first_and_pages_with_a_total,
            sorting_by_updated_at_ascending_breaks_ties_by_identifier,
            a_creation_window_finds_its_tasks_whatever_time_their_identifiers_carry,
            every_filter_agrees_with_the_in_memory_semantics,
            contains_is_case_sensitive_and_wildcards_are_literal,
            counts_by_status_follow_the_filter,
            counts_by_route_cover_every_route,
            each_action_from_each_status_follows_the_rules,
            retry_resets_attempts_and_clears_the_next_attempt,
            a_refused_action_changes_nothing,
            bulk_by_identifiers_reports_matched_changed_ineligible_and_not_found,
            bulk_by_filter_changes_only_the_eligible_matching_tasks,
            actions_are_recorded_with_actor_reason_and_tasks,
            claims_take_new_and_due_retry_tasks_oldest_first_up_to_the_limit,
            a_claimed_task_is_not_claimed_again,
            completions_record_outcome_attempt_and_export_messages,
            a_response_is_kept_on_the_task_until_a_later_attempt_gives_another,
            a_route_keeps_the_digest_its_last_finished_task_published_per_entity,
            a_late_completion_of_a_recovered_task_is_ignored,
            expired_leases_return_tasks_to_new_with_a_message,
            messages_of_an_unknown_task_are_none,
            a_completion_by_a_worker_that_lost_the_task_is_ignored,
            released_tasks_return_to_new_with_the_attempt_undone,
            extended_leases_keep_tasks_from_recovery,
            a_schedule_fires_once_per_due_time,
            a_since_mark_is_kept_per_incoming_and_can_be_reset,
            a_since_mark_is_stored_as_given_whatever_its_text_or_order,
            syncing_schedules_keeps_next_runs_unless_the_expression_changed,
            pruning_removes_old_final_tasks_only,
            pruning_by_count_keeps_the_newest_tasks,
            the_audit_trail_lists_actions_newest_first_with_filters,
            users_are_added_once_listed_and_changed,
            disabling_a_user_or_changing_its_password_ends_its_sessions,
            sessions_expire_and_follow_their_users_role,
            tokens_are_found_by_digest_until_revoked,
            credentials_exist_once_an_enabled_user_or_live_token_does,
            audit_events_record_origin_and_are_never_deleted,
            a_filter_action_in_steps_acts_once_on_each_task_eligible_when_it_began,
            bulk_jobs_record_progress_cancel_requests_and_their_end,
            the_audit_entry_of_a_filter_action_counts_each_step_as_it_commits,
            a_stale_job_is_taken_over_once_and_only_once,
            a_capped_count_is_exact_up_to_the_cap_and_a_marked_lower_bound_above,
            status_counts_agree_with_counting_the_tasks_after_every_kind_of_change,
            imported_tasks_are_searchable_and_counted_once,
            a_task_with_a_long_history_is_imported_whole,
            every_piece_of_an_identifier_finds_its_task
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(fixture) = $make().await else { return };
                $crate::conformance::$case(&*fixture.store).await;
                drop(fixture);
            }
        )*
    };
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// The time `offset_ms` after the suite's fixed start.
pub fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

/// A new task on `route`, created at `T0 + offset` ms.
pub fn new_task(route: &str, schema: &str, entity: &str, offset_ms: i64) -> NewTask {
    NewTask {
        id: TaskId::generate(at(offset_ms)),
        route: ConfigId::parse(route).expect("valid route id"),
        entity_schema: ConfigId::parse(schema).expect("valid schema id"),
        entity_identifier: entity.to_owned(),
        entity_data: json!({ "sku": entity, "price": 10 }),
        created_at: at(offset_ms),
        import_messages: vec![Message::new(
            at(offset_ms),
            Level::Info,
            "received by webhook",
        )],
    }
}

/// An operator action by "conformance", `at_ms` after the suite's fixed start.
pub fn request(action: Action, at_ms: i64) -> ActionRequest {
    ActionRequest {
        action,
        actor: "conformance".into(),
        reason: None,
        at: at(at_ms),
        origin: Some("127.0.0.1".into()),
    }
}

async fn claim_all(store: &dyn Store, route: &str, now_ms: i64) -> Vec<Task> {
    store
        .claim(&ClaimRequest {
            route,
            limit: 10_000,
            now: at(now_ms),
            lease: Duration::from_secs(60),
            worker: "w1",
        })
        .await
        .expect("claim")
}

fn completion(task: &Task, outcome: Outcome, now_ms: i64) -> Completion {
    Completion {
        id: task.summary.id.clone(),
        attempt: task.summary.attempts,
        started_at: at(now_ms),
        ended_at: at(now_ms),
        outcome,
        messages: vec![Message::new(at(now_ms), Level::Info, "published")],
        response: None,
        published: None,
    }
}

/// Inserts a task on `route` and drives it to `status` through the store's own
/// operations; answers its identifier.
pub async fn seed(store: &dyn Store, route: &str, status: Status, offset_ms: i64) -> TaskId {
    let task = new_task(route, "product", &format!("SKU-{offset_ms}"), offset_ms);
    let id = task.id.clone();
    store.insert_tasks(&[task]).await.expect("insert");
    if status == Status::New {
        return id;
    }
    let claimed = store
        .claim(&ClaimRequest {
            route,
            limit: 1_000_000,
            now: at(offset_ms + 1),
            lease: Duration::ZERO,
            worker: "seeder",
        })
        .await
        .expect("claim");
    let outcome_for = |t: &Task| -> Option<Outcome> {
        if t.summary.id != id {
            return None;
        }
        match status {
            Status::Finished => Some(Outcome::Finished),
            Status::Skipped => Some(Outcome::Skipped),
            Status::Failed => Some(Outcome::Failed {
                error: "HTTP 500 from target".into(),
            }),
            Status::Retry => Some(Outcome::Retry {
                at: at(offset_ms + 60_000),
                error: "HTTP 503 from target".into(),
            }),
            _ => None,
        }
    };
    let completions: Vec<Completion> = claimed
        .iter()
        .filter_map(|t| outcome_for(t).map(|o| completion(t, o, offset_ms + 2)))
        .collect();
    store
        .complete("seeder", &completions)
        .await
        .expect("complete");
    // Other tasks of the route claimed on the way go back to `new` as their lease ends.
    store
        .recover_expired(at(offset_ms + 2))
        .await
        .expect("recover");
    id
}

async fn status_of(store: &dyn Store, id: &TaskId) -> Status {
    store
        .get_task(id)
        .await
        .unwrap()
        .expect("task exists")
        .summary
        .status
}

fn query(pairs: &[(&str, &str)]) -> TaskQuery {
    TaskQuery::parse(pairs.iter().copied(), Accept::All).expect("valid query")
}

async fn all_tasks(store: &dyn Store) -> Vec<TaskSummary> {
    store
        .list_tasks(&query(&[("per_page", "500"), ("order", "asc")]))
        .await
        .unwrap()
        .items
}

// ------------------------------------------------------------------ cases

pub async fn inserted_tasks_are_read_back_with_their_import_messages(store: &dyn Store) {
    let t = new_task("shop-to-erp", "product", "SKU-1", 0);
    store.insert_tasks(std::slice::from_ref(&t)).await.unwrap();
    let got = store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(got.summary.status, Status::New);
    assert_eq!(got.summary.route, "shop-to-erp");
    assert_eq!(got.summary.entity_identifier, "SKU-1");
    assert_eq!(got.summary.attempts, 0);
    assert_eq!(got.summary.created_at, t.created_at);
    assert_eq!(got.entity_data, t.entity_data);
    assert_eq!(got.last_error, None);
    let import = store.messages(&t.id, Phase::Import).await.unwrap().unwrap();
    assert_eq!(import, t.import_messages);
    assert_eq!(
        store.messages(&t.id, Phase::Export).await.unwrap(),
        Some(vec![])
    );
}

pub async fn the_list_is_newest_first_and_pages_with_a_total(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..7)
        .map(|i| new_task("r", "product", "e", i * 10))
        .collect();
    store.insert_tasks(&tasks).await.unwrap();
    let page1 = store
        .list_tasks(&query(&[("per_page", "3")]))
        .await
        .unwrap();
    assert_eq!(page1.total, 7);
    let ids: Vec<&TaskId> = page1.items.iter().map(|t| &t.id).collect();
    assert_eq!(ids, [&tasks[6].id, &tasks[5].id, &tasks[4].id]);
    let page3 = store
        .list_tasks(&query(&[("per_page", "3"), ("page", "3")]))
        .await
        .unwrap();
    assert_eq!(page3.items.len(), 1);
    assert_eq!(page3.items[0].id, tasks[0].id);
    let beyond = store
        .list_tasks(&query(&[("per_page", "3"), ("page", "4")]))
        .await
        .unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 7);
}

pub async fn sorting_by_updated_at_ascending_breaks_ties_by_identifier(store: &dyn Store) {
    // Three tasks created in the same millisecond; one of them updated later.
    let tasks: Vec<NewTask> = (0..3).map(|_| new_task("r", "product", "e", 0)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    store
        .act_on_task(&tasks[0].id, &request(Action::Skip, 500))
        .await
        .unwrap();
    let got = store
        .list_tasks(&query(&[("sort", "updated_at"), ("order", "asc")]))
        .await
        .unwrap();
    let ids: Vec<&TaskId> = got.items.iter().map(|t| &t.id).collect();
    assert_eq!(ids, [&tasks[1].id, &tasks[2].id, &tasks[0].id]);
    let got = store
        .list_tasks(&query(&[("sort", "created_at"), ("order", "desc")]))
        .await
        .unwrap();
    let ids: Vec<&TaskId> = got.items.iter().map(|t| &t.id).collect();
    assert_eq!(ids, [&tasks[2].id, &tasks[1].id, &tasks[0].id]);
}

pub async fn a_creation_window_finds_its_tasks_whatever_time_their_identifiers_carry(
    store: &dyn Store,
) {
    // Identifiers are ULIDs made from the creation time, but not always: a clock set
    // back, tasks imported with their own. In the window: one whose identifier says
    // 2016, one made as usual, one whose identifier is the greatest there is. Outside
    // it, before and after, two made as usual, which sort between those identifiers.
    let with_id = |mut t: NewTask, id: &str| {
        t.id = TaskId::parse(id).unwrap();
        t
    };
    let tasks = vec![
        new_task("r", "product", "before", 1_000),
        with_id(
            new_task("r", "product", "early-id", 5_000),
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ),
        new_task("r", "product", "usual", 6_000),
        with_id(
            new_task("r", "product", "late-id", 7_000),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
        ),
        new_task("r", "product", "after", 60_000),
    ];
    store.insert_tasks(&tasks).await.unwrap();
    let (from, to) = (at(4_000).to_rfc3339(), at(8_000).to_rfc3339());
    for (order, expected) in [("desc", [3, 2, 1]), ("asc", [1, 2, 3])] {
        let mut q = query(&[
            ("created_from", &from),
            ("created_to", &to),
            ("sort", "updated_at"),
            ("order", order),
        ]);
        q.count = ferry_core::CountMode::Capped;
        let page = store.list_tasks(&q).await.unwrap();
        let ids: Vec<&TaskId> = page.items.iter().map(|t| &t.id).collect();
        let expected: Vec<&TaskId> = expected.iter().map(|&k| &tasks[k].id).collect();
        assert_eq!(ids, expected, "{order}");
        assert_eq!((page.total, page.total_exact), (3, true), "{order}");
    }
}

/// A small varied data set: two routes, two schemas, every status.
pub async fn varied_data(store: &dyn Store) {
    let mut offset = 0;
    for route in ["alpha", "beta"] {
        for status in Status::ALL {
            if status == Status::Processing {
                continue;
            }
            seed(store, route, status, offset).await;
            offset += 1_000;
        }
    }
    let mut extra = vec![
        new_task("alpha", "order", "ORD-100%", offset),
        new_task("beta", "order", "ord_7", offset + 1_000),
        new_task("gamma", "customer", "Cust-A", offset + 2_000),
    ];
    extra[0].entity_data = json!({"id": "ORD-100%"});
    store.insert_tasks(&extra).await.unwrap();
    // One processing task, left claimed.
    claim_all(store, "gamma", offset + 3_000).await;
}

pub async fn every_filter_agrees_with_the_in_memory_semantics(store: &dyn Store) {
    varied_data(store).await;
    let all = all_tasks(store).await;
    assert_eq!(all.len(), 13);
    let some_id = all[3].id.as_str().to_owned();
    let id_part = some_id[20..].to_owned();
    let mid = all[5].created_at.to_rfc3339();
    let later = all[9].created_at.to_rfc3339();
    let upd = all[4].updated_at.to_rfc3339();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("route", "alpha")],
        vec![("route", "alpha"), ("route", "gamma")],
        vec![("status", "failed")],
        vec![("status", "new"), ("status", "retry")],
        vec![("status", "processing")],
        vec![("created_from", &mid)],
        vec![("created_to", &mid)],
        vec![("created_from", &mid), ("created_to", &later)],
        vec![("updated_from", &upd)],
        vec![("updated_to", &upd)],
        vec![("identifier", &id_part)],
        vec![("identifier", &some_id), ("identifier_match", "equals")],
        vec![("entity_schema", "ord")],
        vec![
            ("entity_schema", "order"),
            ("entity_schema_match", "equals"),
        ],
        vec![("entity_identifier", "SKU-1")],
        vec![
            ("entity_identifier", "ORD-100%"),
            ("entity_identifier_match", "equals"),
        ],
        vec![
            ("route", "beta"),
            ("status", "failed"),
            ("status", "finished"),
            ("created_from", &mid),
        ],
        vec![
            ("route", "alpha"),
            ("entity_schema", "product"),
            ("entity_identifier", "00"),
        ],
        // With a status or an updated-at range, PostgreSQL reads `tasks` and finds the
        // identifiers through `task_search`; without, it reads `task_search` alone.
        vec![
            ("entity_identifier", "ORD-100%"),
            ("entity_identifier_match", "equals"),
            ("status", "new"),
        ],
        vec![
            ("identifier", &id_part),
            ("entity_identifier", "SKU"),
            ("updated_from", &upd),
        ],
        vec![
            ("entity_schema", "order"),
            ("entity_schema_match", "equals"),
            ("status", "new"),
        ],
    ];
    for pairs in cases {
        let q = query(&pairs);
        let expected: Vec<&TaskId> = all
            .iter()
            .rev()
            .filter(|t| q.filter.matches(t))
            .map(|t| &t.id)
            .collect();
        let mut q500 = q.clone();
        q500.page.per_page = 500;
        let got = store.list_tasks(&q500).await.unwrap();
        let got_ids: Vec<&TaskId> = got.items.iter().map(|t| &t.id).collect();
        assert_eq!(got_ids, expected, "filter {pairs:?}");
        assert_eq!(got.total, expected.len() as u64, "total for {pairs:?}");
        let counts = store.count_tasks(&q.filter).await.unwrap();
        assert_eq!(
            counts.total(),
            expected.len() as u64,
            "counts for {pairs:?}"
        );
        // The same matches by updated-at, both ways, in pages of 2 (on PostgreSQL, with
        // no status filter, each status's first pages read apart and merged).
        let mut by_updated: Vec<&TaskSummary> =
            all.iter().filter(|t| q.filter.matches(t)).collect();
        by_updated.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        for order in ["asc", "desc"] {
            let mut expected: Vec<&TaskId> = by_updated.iter().map(|t| &t.id).collect();
            if order == "desc" {
                expected.reverse();
            }
            let mut paged = Vec::new();
            for page in 1..=8 {
                let mut pairs = pairs.clone();
                let page = page.to_string();
                pairs.extend([
                    ("sort", "updated_at"),
                    ("order", order),
                    ("per_page", "2"),
                    ("page", page.as_str()),
                ]);
                let got = store.list_tasks(&query(&pairs)).await.unwrap();
                paged.extend(got.items.into_iter().map(|t| t.id));
            }
            let paged: Vec<&TaskId> = paged.iter().collect();
            assert_eq!(paged, expected, "by updated-at {order}, filter {pairs:?}");
        }
    }
}

pub async fn contains_is_case_sensitive_and_wildcards_are_literal(store: &dyn Store) {
    varied_data(store).await;
    let count = |pairs: Vec<(&'static str, &'static str)>| async move {
        store.list_tasks(&query(&pairs)).await.unwrap().total
    };
    assert_eq!(count(vec![("entity_identifier", "ORD")]).await, 1);
    assert_eq!(count(vec![("entity_identifier", "ord")]).await, 1);
    assert_eq!(count(vec![("entity_identifier", "%")]).await, 1);
    assert_eq!(count(vec![("entity_identifier", "_")]).await, 1);
    assert_eq!(count(vec![("entity_identifier", "ord_")]).await, 1);
    assert_eq!(count(vec![("entity_identifier", "SKU_")]).await, 0);
    assert_eq!(count(vec![("entity_identifier", "sku")]).await, 0);
    assert_eq!(count(vec![("entity_schema", "PRODUCT")]).await, 0);
}

pub async fn counts_by_status_follow_the_filter(store: &dyn Store) {
    varied_data(store).await;
    let all = store.count_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(all.total(), 13);
    assert_eq!(all.get(Status::Processing), 1);
    assert_eq!(all.get(Status::New), 4);
    assert_eq!(all.get(Status::Failed), 2);
    let alpha = store
        .count_tasks(&query(&[("route", "alpha")]).filter)
        .await
        .unwrap();
    assert_eq!(alpha.total(), 6);
    assert_eq!(alpha.get(Status::Processing), 0);
    assert_eq!(alpha.0.len(), Status::ALL.len(), "every status is present");
}

pub async fn counts_by_route_cover_every_route(store: &dyn Store) {
    varied_data(store).await;
    let by_route = store.counts_by_route().await.unwrap();
    let routes: Vec<&String> = by_route.keys().collect();
    assert_eq!(routes, ["alpha", "beta", "gamma"]);
    assert_eq!(by_route["gamma"].get(Status::Processing), 1);
    assert_eq!(by_route["beta"].get(Status::Finished), 1);
}

pub async fn each_action_from_each_status_follows_the_rules(store: &dyn Store) {
    let mut offset = 0;
    for action in [Action::Skip, Action::Retry] {
        for status in Status::ALL {
            let id = if status == Status::Processing {
                let t = new_task("p", "product", "x", offset);
                store.insert_tasks(std::slice::from_ref(&t)).await.unwrap();
                claim_all(store, "p", offset + 1).await;
                t.id
            } else {
                seed(store, "r", status, offset).await
            };
            assert_eq!(status_of(store, &id).await, status);
            let result = store.act_on_task(&id, &request(action, offset + 5)).await;
            match action.apply(status) {
                Ok(target) => {
                    let task = result.unwrap_or_else(|e| panic!("{action} from {status}: {e}"));
                    assert_eq!(task.summary.status, target, "{action} from {status}");
                    assert_eq!(task.summary.updated_at, at(offset + 5));
                }
                Err(_) => {
                    let err = result.expect_err("refused");
                    assert!(
                        matches!(err, ActionError::NotEligible { .. }),
                        "{action} from {status}"
                    );
                    assert_eq!(status_of(store, &id).await, status);
                }
            }
            offset += 1_000;
        }
    }
    let unknown = TaskId::generate(at(0));
    let err = store
        .act_on_task(&unknown, &request(Action::Skip, 0))
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::NotFound(_)));
}

pub async fn retry_resets_attempts_and_clears_the_next_attempt(store: &dyn Store) {
    let id = seed(store, "r", Status::Failed, 0).await;
    let failed = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(failed.summary.attempts, 1);
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 500 from target"));
    let task = store
        .act_on_task(&id, &request(Action::Retry, 10))
        .await
        .unwrap();
    assert_eq!(task.summary.status, Status::New);
    assert_eq!(task.summary.attempts, 0);
    let retrying = seed(store, "r", Status::Retry, 100).await;
    let t = store.get_task(&retrying).await.unwrap().unwrap();
    assert!(t.next_attempt_at.is_some());
    let t = store
        .act_on_task(&retrying, &request(Action::Skip, 200))
        .await
        .unwrap();
    assert_eq!(t.next_attempt_at, None);
}

pub async fn a_refused_action_changes_nothing(store: &dyn Store) {
    let id = seed(store, "r", Status::Finished, 0).await;
    let before = store.get_task(&id).await.unwrap().unwrap();
    let before_log = store.messages(&id, Phase::Export).await.unwrap();
    store
        .act_on_task(&id, &request(Action::Skip, 50))
        .await
        .unwrap_err();
    assert_eq!(store.get_task(&id).await.unwrap().unwrap(), before);
    assert_eq!(
        store.messages(&id, Phase::Export).await.unwrap(),
        before_log
    );
    assert!(store.task_actions(&id).await.unwrap().is_empty());
}

pub async fn bulk_by_identifiers_reports_matched_changed_ineligible_and_not_found(
    store: &dyn Store,
) {
    let a = seed(store, "r", Status::New, 0).await;
    let b = seed(store, "r", Status::Retry, 1_000).await;
    let c = seed(store, "r", Status::Finished, 2_000).await;
    let missing = TaskId::generate(at(5));
    let ids = vec![a.clone(), b.clone(), c.clone(), missing, a.clone()];
    let o = store
        .act_on_ids(&ids, &request(Action::Skip, 3_000))
        .await
        .unwrap();
    assert_eq!(
        o,
        BulkOutcome {
            matched: 3,
            changed: 2,
            ineligible: 1,
            not_found: 1
        }
    );
    assert_eq!(status_of(store, &a).await, Status::Skipped);
    assert_eq!(status_of(store, &b).await, Status::Skipped);
    assert_eq!(status_of(store, &c).await, Status::Finished);
}

pub async fn bulk_by_filter_changes_only_the_eligible_matching_tasks(store: &dyn Store) {
    varied_data(store).await;
    let before = all_tasks(store).await;
    let filter = query(&[("route", "beta")]).filter;
    let o = store
        .act_on_filter(&filter, &request(Action::Retry, 99_000))
        .await
        .unwrap();
    let matching: Vec<&TaskSummary> = before.iter().filter(|t| filter.matches(t)).collect();
    let eligible = matching
        .iter()
        .filter(|t| Action::Retry.is_allowed_from(t.status))
        .count() as u64;
    assert_eq!(o.matched, matching.len() as u64);
    assert_eq!(o.changed, eligible);
    assert_eq!(o.ineligible, o.matched - o.changed);
    let after = all_tasks(store).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.id, b.id);
        let expected = if filter.matches(b) && Action::Retry.is_allowed_from(b.status) {
            Status::New
        } else {
            b.status
        };
        assert_eq!(a.status, expected, "{} {}", b.route, b.status);
    }
    // A filter whose statuses leave nothing eligible changes nothing.
    let finished = query(&[("status", "finished")]).filter;
    let o = store
        .act_on_filter(&finished, &request(Action::Skip, 99_500))
        .await
        .unwrap();
    assert_eq!((o.matched, o.changed, o.ineligible), (1, 0, 1));
    // The empty filter means every task.
    let o = store
        .act_on_filter(&TaskFilter::default(), &request(Action::Skip, 99_900))
        .await
        .unwrap();
    assert_eq!(o.matched, 13);
}

pub async fn actions_are_recorded_with_actor_reason_and_tasks(store: &dyn Store) {
    let id = seed(store, "r", Status::Failed, 0).await;
    let mut req = request(Action::Retry, 10);
    req.actor = "alice".into();
    req.reason = Some("target fixed".into());
    store.act_on_task(&id, &req).await.unwrap();
    let actions = store.task_actions(&id).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].actor, "alice");
    assert_eq!(actions[0].action, "retry");
    assert_eq!(actions[0].reason.as_deref(), Some("target fixed"));
    assert_eq!(actions[0].outcome.changed, 1);
    let log = store.messages(&id, Phase::Export).await.unwrap().unwrap();
    let last = log.last().unwrap();
    assert!(
        last.message.contains("alice") && last.message.contains("target fixed"),
        "{last:?}"
    );
    let filter = query(&[("route", "r")]).filter;
    store
        .act_on_filter(&filter, &request(Action::Skip, 20))
        .await
        .unwrap();
    let actions = store.task_actions(&id).await.unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[1].target["filter"]["route"], json!(["r"]));
}

pub async fn claims_take_new_and_due_retry_tasks_oldest_first_up_to_the_limit(store: &dyn Store) {
    let retry = seed(store, "r", Status::Retry, 0).await; // due at 60_000
    let tasks: Vec<NewTask> = (1..=4)
        .map(|i| new_task("r", "product", "e", i * 1_000))
        .collect();
    store.insert_tasks(&tasks).await.unwrap();
    store
        .insert_tasks(&[new_task("other", "product", "e", 500)])
        .await
        .unwrap();
    let req = |now_ms, limit| ClaimRequest {
        route: "r",
        limit,
        now: at(now_ms),
        lease: Duration::from_secs(60),
        worker: "w",
    };
    // Before the retry is due: only new tasks, oldest first, up to the limit.
    let got = store.claim(&req(10_000, 2)).await.unwrap();
    let ids: Vec<&TaskId> = got.iter().map(|t| &t.summary.id).collect();
    assert_eq!(ids, [&tasks[0].id, &tasks[1].id]);
    assert!(
        got.iter()
            .all(|t| t.summary.status == Status::Processing && t.summary.attempts == 1)
    );
    // Once due, the retry task comes first: it is the oldest.
    let got = store.claim(&req(60_000, 10)).await.unwrap();
    let ids: Vec<&TaskId> = got.iter().map(|t| &t.summary.id).collect();
    assert_eq!(ids, [&retry, &tasks[2].id, &tasks[3].id]);
    assert_eq!(got[0].summary.attempts, 2);
}

pub async fn a_claimed_task_is_not_claimed_again(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..5).map(|i| new_task("r", "product", "e", i)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    let first = claim_all(store, "r", 10).await;
    let second = claim_all(store, "r", 20).await;
    assert_eq!(first.len(), 5);
    assert!(second.is_empty());
    for claimed in &first {
        let stored = store.get_task(&claimed.summary.id).await.unwrap();
        assert_eq!(
            Some(claimed),
            stored.as_ref(),
            "a claim answers the task as stored"
        );
        assert_eq!(claimed.summary.status, Status::Processing);
        assert_eq!(claimed.summary.attempts, 1);
    }
}

pub async fn completions_record_outcome_attempt_and_export_messages(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..4).map(|i| new_task("r", "product", "e", i)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    let claimed = claim_all(store, "r", 10).await;
    let outcomes = [
        Outcome::Finished,
        Outcome::Skipped,
        Outcome::Failed {
            error: "boom".into(),
        },
        Outcome::Retry {
            at: at(70_000),
            error: "busy".into(),
        },
    ];
    let completions: Vec<Completion> = claimed
        .iter()
        .zip(outcomes)
        .map(|(t, o)| completion(t, o, 20))
        .collect();
    assert_eq!(store.complete("w1", &completions).await.unwrap(), 4);
    let expected = [
        Status::Finished,
        Status::Skipped,
        Status::Failed,
        Status::Retry,
    ];
    for (t, s) in tasks.iter().zip(expected) {
        let got = store.get_task(&t.id).await.unwrap().unwrap();
        assert_eq!(got.summary.status, s);
        assert_eq!(got.summary.updated_at, at(20));
        let attempts = store.attempts(&t.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, s);
        let log = store.messages(&t.id, Phase::Export).await.unwrap().unwrap();
        assert_eq!(log[0].message, "published");
    }
    let failed = store.get_task(&tasks[2].id).await.unwrap().unwrap();
    assert_eq!(failed.last_error.as_deref(), Some("boom"));
    let retry = store.get_task(&tasks[3].id).await.unwrap().unwrap();
    assert_eq!(retry.next_attempt_at, Some(at(70_000)));
}

pub async fn a_response_is_kept_on_the_task_until_a_later_attempt_gives_another(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..2).map(|i| new_task("r", "product", "e", i)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    let claimed = claim_all(store, "r", 10).await;
    let mut kept = completion(&claimed[0], Outcome::Finished, 20);
    kept.response = Some(serde_json::json!({"id": "ERP-1", "name": "Zoë's \"mug\""}));
    let mut busy = completion(
        &claimed[1],
        Outcome::Retry {
            at: at(1_000),
            error: "busy".into(),
        },
        20,
    );
    busy.response = None;
    store.complete("w1", &[kept, busy]).await.unwrap();
    let first = store.get_task(&tasks[0].id).await.unwrap().unwrap();
    assert_eq!(
        first.response,
        Some(serde_json::json!({"id": "ERP-1", "name": "Zoë's \"mug\""}))
    );
    assert_eq!(
        store
            .get_task(&tasks[1].id)
            .await
            .unwrap()
            .unwrap()
            .response,
        None
    );

    // The second task's next attempt gives one; the first, retried, gives none.
    store
        .act_on_task(&tasks[0].id, &request(Action::Retry, 30))
        .await
        .unwrap();
    let again = claim_all(store, "r", 2_000).await;
    assert_eq!(again.len(), 2);
    let answers: Vec<Completion> = again
        .iter()
        .map(|t| {
            let mut c = completion(t, Outcome::Finished, 2_010);
            if t.summary.id == tasks[1].id {
                c.response = Some(serde_json::json!(42));
            }
            c
        })
        .collect();
    store.complete("w1", &answers).await.unwrap();
    let first = store.get_task(&tasks[0].id).await.unwrap().unwrap();
    assert_eq!(
        first.response.unwrap()["id"],
        "ERP-1",
        "kept from attempt 1"
    );
    let second = store.get_task(&tasks[1].id).await.unwrap().unwrap();
    assert_eq!(second.response, Some(serde_json::json!(42)));
    let claimed_again = claim_all(store, "r", 3_000).await;
    assert!(claimed_again.is_empty());
}

pub async fn a_route_keeps_the_digest_its_last_finished_task_published_per_entity(
    store: &dyn Store,
) {
    let tasks = vec![
        new_task("r", "product", "e", 0),
        new_task("r", "product", "e", 1),
        new_task("r", "product", "f", 2),
        new_task("other", "product", "e", 3),
    ];
    store.insert_tasks(&tasks).await.unwrap();
    let mut claimed = claim_all(store, "r", 10).await;
    claimed.extend(claim_all(store, "other", 10).await);
    assert_eq!(claimed.len(), 4);
    let by_id = |id: &TaskId| claimed.iter().find(|t| &t.summary.id == id).unwrap();
    let with = |t: &Task, outcome: Outcome, digest: &str| {
        let mut c = completion(t, outcome, 20);
        c.published = Some(digest.to_owned());
        c
    };
    // Both tasks of entity e in one call: the later one's digest is kept.
    let completions = vec![
        with(by_id(&tasks[0].id), Outcome::Finished, "d1"),
        with(by_id(&tasks[1].id), Outcome::Finished, "d2"),
        with(
            by_id(&tasks[2].id),
            Outcome::Retry {
                at: at(1_000),
                error: "busy".into(),
            },
            "d3",
        ),
        with(by_id(&tasks[3].id), Outcome::Finished, "d4"),
    ];
    assert_eq!(store.complete("w1", &completions).await.unwrap(), 4);
    let entities = vec!["e".to_owned(), "f".to_owned(), "g".to_owned()];
    let kept = store.published_digests("r", &entities).await.unwrap();
    assert_eq!(
        kept.len(),
        1,
        "f was not finished, g never published: {kept:?}"
    );
    assert_eq!(
        kept["e"],
        PublishedDigest {
            digest: "d2".into(),
            task: tasks[1].id.clone()
        }
    );
    let other = store.published_digests("other", &entities).await.unwrap();
    assert_eq!(other["e"].digest, "d4", "per route");
    assert!(store.published_digests("r", &[]).await.unwrap().is_empty());
}

pub async fn a_late_completion_of_a_recovered_task_is_ignored(store: &dyn Store) {
    let t = new_task("r", "product", "e", 0);
    store.insert_tasks(std::slice::from_ref(&t)).await.unwrap();
    let claimed = claim_all(store, "r", 10).await;
    assert_eq!(store.recover_expired(at(10 + 61_000)).await.unwrap(), 1);
    store
        .complete("w1", &[completion(&claimed[0], Outcome::Finished, 80_000)])
        .await
        .unwrap();
    assert_eq!(status_of(store, &t.id).await, Status::New);
}

pub async fn expired_leases_return_tasks_to_new_with_a_message(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..3).map(|i| new_task("r", "product", "e", i)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    claim_all(store, "r", 10).await;
    assert_eq!(
        store.recover_expired(at(30_000)).await.unwrap(),
        0,
        "lease still valid"
    );
    assert_eq!(store.recover_expired(at(70_000)).await.unwrap(), 3);
    for t in &tasks {
        assert_eq!(status_of(store, &t.id).await, Status::New);
        let log = store.messages(&t.id, Phase::Export).await.unwrap().unwrap();
        assert!(log[0].message.contains("lease"), "{log:?}");
        assert_eq!(log[0].level, Level::Warn);
    }
    assert_eq!(claim_all(store, "r", 80_000).await.len(), 3);
}

pub async fn messages_of_an_unknown_task_are_none(store: &dyn Store) {
    let id = TaskId::generate(at(0));
    assert_eq!(store.messages(&id, Phase::Import).await.unwrap(), None);
    assert_eq!(store.get_task(&id).await.unwrap(), None);
}

pub async fn a_completion_by_a_worker_that_lost_the_task_is_ignored(store: &dyn Store) {
    let t = new_task("r", "product", "e", 0);
    store.insert_tasks(std::slice::from_ref(&t)).await.unwrap();
    let first = claim_all(store, "r", 10).await;
    store.recover_expired(at(10 + 61_000)).await.unwrap();
    let second = store
        .claim(&ClaimRequest {
            route: "r",
            limit: 10,
            now: at(80_000),
            lease: Duration::from_secs(60),
            worker: "w2",
        })
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    let late = store
        .complete(
            "w1",
            &[completion(
                &first[0],
                Outcome::Failed {
                    error: "late".into(),
                },
                81_000,
            )],
        )
        .await
        .unwrap();
    assert_eq!(late, 0, "w1 lost the task to w2");
    assert_eq!(status_of(store, &t.id).await, Status::Processing);
    let done = store
        .complete("w2", &[completion(&second[0], Outcome::Finished, 82_000)])
        .await
        .unwrap();
    assert_eq!(done, 1);
    assert_eq!(status_of(store, &t.id).await, Status::Finished);
    assert_eq!(store.attempts(&t.id).await.unwrap().len(), 1);
}

pub async fn released_tasks_return_to_new_with_the_attempt_undone(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..3).map(|i| new_task("r", "product", "e", i)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    let claimed = claim_all(store, "r", 10).await;
    let ids: Vec<TaskId> = claimed.iter().map(|t| t.summary.id.clone()).collect();
    assert_eq!(store.release("someone-else", &ids).await.unwrap(), 0);
    assert_eq!(store.release("w1", &ids[1..]).await.unwrap(), 2);
    let t = store.get_task(&ids[2]).await.unwrap().unwrap();
    assert_eq!((t.summary.status, t.summary.attempts), (Status::New, 0));
    assert_eq!(status_of(store, &ids[0]).await, Status::Processing);
    let again = claim_all(store, "r", 20).await;
    let again: Vec<&TaskId> = again.iter().map(|t| &t.summary.id).collect();
    assert_eq!(again, [&ids[1], &ids[2]], "released tasks keep their order");
}

pub async fn extended_leases_keep_tasks_from_recovery(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..2).map(|i| new_task("r", "product", "e", i)).collect();
    store.insert_tasks(&tasks).await.unwrap();
    let claimed = claim_all(store, "r", 10).await; // lease until 60_010
    let ids: Vec<TaskId> = claimed.iter().map(|t| t.summary.id.clone()).collect();
    assert_eq!(
        store
            .extend_leases("w1", &ids[..1], at(200_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .extend_leases("intruder", &ids, at(900_000))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.recover_expired(at(100_000)).await.unwrap(), 1);
    assert_eq!(status_of(store, &ids[0]).await, Status::Processing);
    assert_eq!(status_of(store, &ids[1]).await, Status::New);
}

fn schedule(name: &str, expression: &str, next_ms: i64) -> ScheduleEntry {
    ScheduleEntry {
        name: name.into(),
        expression: expression.into(),
        next_run_at: at(next_ms),
    }
}

/// The store keeps what it is given: the engine decides which value is greatest (numbers
/// by value, text as text), so a later write of a "smaller" value still replaces.
pub async fn a_since_mark_is_stored_as_given_whatever_its_text_or_order(store: &dyn Store) {
    let odd = format!("ünïcode 'quoted' \"double\" %_ {}", "x".repeat(1_000));
    store.set_since_mark("shop", &odd, at(1_000)).await.unwrap();
    let mark = store.since_mark("shop").await.unwrap().unwrap();
    assert_eq!(
        mark,
        SinceMark {
            value: odd,
            updated_at: at(1_000)
        }
    );
    store.set_since_mark("shop", "10", at(2_000)).await.unwrap();
    store.set_since_mark("shop", "9", at(3_000)).await.unwrap();
    assert_eq!(
        store.since_mark("shop").await.unwrap(),
        Some(SinceMark {
            value: "9".into(),
            updated_at: at(3_000)
        }),
        "the last write wins"
    );
    assert!(!store.reset_since_mark("never-stored").await.unwrap());
    assert_eq!(store.since_marks().await.unwrap().len(), 1);
}

pub async fn a_since_mark_is_kept_per_incoming_and_can_be_reset(store: &dyn Store) {
    assert_eq!(store.since_mark("shop").await.unwrap(), None);
    store
        .set_since_mark("shop", "2026-01-05T10:00:00Z", at(1_000))
        .await
        .unwrap();
    store.set_since_mark("pim", "41", at(2_000)).await.unwrap();
    store
        .set_since_mark("shop", "2026-01-06T08:00:00Z", at(3_000))
        .await
        .unwrap();
    let mark = store.since_mark("shop").await.unwrap().unwrap();
    assert_eq!(mark.value, "2026-01-06T08:00:00Z");
    assert_eq!(mark.updated_at, at(3_000));
    let all = store.since_marks().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all["pim"].value, "41");
    assert!(store.reset_since_mark("shop").await.unwrap());
    assert!(
        !store.reset_since_mark("shop").await.unwrap(),
        "nothing left to reset"
    );
    assert_eq!(store.since_mark("shop").await.unwrap(), None);
    assert_eq!(store.since_marks().await.unwrap().len(), 1);
}

pub async fn a_schedule_fires_once_per_due_time(store: &dyn Store) {
    store
        .sync_schedules(&[schedule("route:r:outgoing", "* * * * *", 60_000)])
        .await
        .unwrap();
    assert!(store.due_schedules(at(59_999)).await.unwrap().is_empty());
    let due = store.due_schedules(at(60_500)).await.unwrap();
    assert_eq!(due.len(), 1);
    // Two nodes saw it due; only the first to move it fires.
    let a = store
        .advance_schedule("route:r:outgoing", at(60_000), at(120_000), at(60_500))
        .await
        .unwrap();
    let b = store
        .advance_schedule("route:r:outgoing", at(60_000), at(120_000), at(60_501))
        .await
        .unwrap();
    assert!(a && !b);
    assert!(store.due_schedules(at(61_000)).await.unwrap().is_empty());
}

pub async fn syncing_schedules_keeps_next_runs_unless_the_expression_changed(store: &dyn Store) {
    store
        .sync_schedules(&[
            schedule("a", "* * * * *", 60_000),
            schedule("b", "*/5 * * * *", 300_000),
            schedule("c", "0 * * * *", 3_600_000),
        ])
        .await
        .unwrap();
    store
        .sync_schedules(&[
            schedule("a", "* * * * *", 999_000),
            schedule("b", "*/10 * * * *", 600_000),
        ])
        .await
        .unwrap();
    let due = store.due_schedules(at(10_000_000)).await.unwrap();
    let got: Vec<(&str, i64)> = due
        .iter()
        .map(|s| (s.name.as_str(), s.next_run_at.millis() - T0))
        .collect();
    assert_eq!(
        got,
        [("a", 60_000), ("b", 600_000)],
        "a kept, b changed, c dropped"
    );
}

pub async fn pruning_removes_old_final_tasks_only(store: &dyn Store) {
    let mut offset = 0;
    let mut by_status = Vec::new();
    for status in Status::ALL {
        if status == Status::Processing {
            continue;
        }
        for _ in 0..3 {
            by_status.push((status, seed(store, "r", status, offset).await));
            offset += 1_000;
        }
    }
    let rule = PruneRule {
        updated_before: at(offset + 10_000),
        max_tasks: None,
    };
    let mut pruned = 0;
    loop {
        let n = store.prune(&rule, 4).await.unwrap();
        assert!(n <= 4, "batches are bounded");
        if n == 0 {
            break;
        }
        pruned += n;
    }
    assert_eq!(pruned, 9, "3 finished, 3 skipped, 3 failed");
    for (status, id) in &by_status {
        let exists = store.get_task(id).await.unwrap().is_some();
        assert_eq!(exists, !status.is_final(), "{status}");
        if status.is_final() {
            assert_eq!(store.messages(id, Phase::Import).await.unwrap(), None);
            assert!(store.attempts(id).await.unwrap().is_empty());
        }
    }
    // Nothing of a pruned task is left behind (its entity, its log): a task with its
    // identifier can be stored again, and starts with its own history only.
    let (_, pruned_id) = by_status.iter().find(|(s, _)| s.is_final()).unwrap();
    let mut again = new_task("r", "product", "SKU-AGAIN", offset + 30_000);
    again.id = pruned_id.clone();
    store.insert_tasks(&[again]).await.unwrap();
    let stored = store.get_task(pruned_id).await.unwrap().unwrap();
    assert_eq!(stored.entity_data["sku"], "SKU-AGAIN");
    assert_eq!(
        store
            .messages(pruned_id, Phase::Import)
            .await
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    assert!(store.attempts(pruned_id).await.unwrap().is_empty());
    // Recent final tasks are kept.
    let recent = seed(store, "r", Status::Finished, offset + 20_000).await;
    assert_eq!(store.prune(&rule, 100).await.unwrap(), 0);
    assert!(store.get_task(&recent).await.unwrap().is_some());
}

pub async fn pruning_by_count_keeps_the_newest_tasks(store: &dyn Store) {
    // The final statuses take turns, so the oldest are taken across all three in order.
    let mut ended = Vec::new();
    for i in 0..6 {
        let status = [Status::Finished, Status::Failed, Status::Skipped][i % 3];
        ended.push(seed(store, "r", status, i as i64 * 1_000).await);
    }
    let new = seed(store, "r", Status::New, 10_000).await;
    let rule = PruneRule {
        updated_before: at(0),
        max_tasks: Some(4),
    };
    assert_eq!(store.prune(&rule, 2).await.unwrap(), 2);
    assert_eq!(store.prune(&rule, 100).await.unwrap(), 1);
    assert_eq!(store.prune(&rule, 100).await.unwrap(), 0);
    assert_eq!(
        store
            .count_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .total(),
        4
    );
    for (i, id) in ended.iter().enumerate() {
        assert_eq!(
            store.get_task(id).await.unwrap().is_some(),
            i >= 3,
            "task {i}"
        );
    }
    assert!(store.get_task(&new).await.unwrap().is_some());
}

pub async fn the_audit_trail_lists_actions_newest_first_with_filters(store: &dyn Store) {
    let a = seed(store, "r", Status::New, 0).await;
    let b = seed(store, "r", Status::Failed, 1_000).await;
    let mut alice = request(Action::Skip, 2_000);
    alice.actor = "alice".into();
    store.act_on_task(&a, &alice).await.unwrap();
    let mut bob = request(Action::Retry, 3_000);
    bob.actor = "bob".into();
    bob.reason = Some("fixed".into());
    store
        .act_on_filter(&query(&[("route", "r"), ("status", "failed")]).filter, &bob)
        .await
        .unwrap();
    let all = |q: AuditQuery| async move { store.list_actions(&q).await.unwrap() };
    let (items, total) = all(AuditQuery::default()).await;
    assert_eq!(total, 2);
    assert_eq!(
        (items[0].actor.as_str(), items[1].actor.as_str()),
        ("bob", "alice"),
        "newest first"
    );
    assert_eq!(items[0].outcome.changed, 1);
    let (items, _) = all(AuditQuery {
        actor: Some("alice".into()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(items.len(), 1);
    let (items, _) = all(AuditQuery {
        action: Some("retry".into()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(items[0].reason.as_deref(), Some("fixed"));
    let (items, _) = all(AuditQuery {
        task: Some(b.clone()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].actor, "bob");
    let (items, total) = all(AuditQuery {
        from: Some(at(2_500)),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!((items.len(), total), (1, 1));
    let (items, total) = all(AuditQuery {
        page: ferry_core::Page {
            page: 2,
            per_page: 1,
        },
        ..AuditQuery::default()
    })
    .await;
    assert_eq!((items[0].actor.as_str(), total), ("alice", 2));
}

// ------------------------------------------------------------------ access

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        name: name.into(),
        role,
        password_hash: format!("hash-of-{name}"),
        at: at(0),
    }
}

fn new_session(digest: &str, user: &str, expires_ms: i64) -> NewSession {
    NewSession {
        digest: digest.into(),
        user: user.into(),
        csrf: format!("csrf-{digest}"),
        created_at: at(0),
        expires_at: at(expires_ms),
    }
}

pub async fn users_are_added_once_listed_and_changed(store: &dyn Store) {
    assert!(
        store
            .add_user(&new_user("bob", Role::Viewer))
            .await
            .unwrap()
    );
    assert!(
        store
            .add_user(&new_user("alice", Role::Admin))
            .await
            .unwrap()
    );
    assert!(
        !store.add_user(&new_user("bob", Role::Admin)).await.unwrap(),
        "a taken name is refused"
    );
    let users = store.users().await.unwrap();
    let names: Vec<_> = users.iter().map(|u| (u.name.as_str(), u.role)).collect();
    assert_eq!(names, [("alice", Role::Admin), ("bob", Role::Viewer)]);

    let (bob, hash) = store.user_credentials("bob").await.unwrap().unwrap();
    assert_eq!(
        (bob.role, bob.disabled, hash.as_str()),
        (Role::Viewer, false, "hash-of-bob")
    );
    assert!(store.user_credentials("carol").await.unwrap().is_none());

    let change = UserChange {
        role: Some(Role::Operator),
        ..Default::default()
    };
    let changed = store
        .change_user("bob", &change, at(5_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.role, changed.updated_at),
        (Role::Operator, at(5_000))
    );
    assert!(
        store
            .change_user("carol", &change, at(5_000))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn disabling_a_user_or_changing_its_password_ends_its_sessions(store: &dyn Store) {
    store
        .add_user(&new_user("bob", Role::Operator))
        .await
        .unwrap();
    store
        .add_session(&new_session("s1", "bob", 60_000))
        .await
        .unwrap();
    assert!(store.session("s1", at(1)).await.unwrap().is_some());

    let password = UserChange {
        password_hash: Some("new".into()),
        ..Default::default()
    };
    store.change_user("bob", &password, at(2)).await.unwrap();
    assert!(store.session("s1", at(3)).await.unwrap().is_none());
    assert_eq!(
        store.user_credentials("bob").await.unwrap().unwrap().1,
        "new"
    );

    store
        .add_session(&new_session("s2", "bob", 60_000))
        .await
        .unwrap();
    let disable = UserChange {
        disabled: Some(true),
        ..Default::default()
    };
    store.change_user("bob", &disable, at(4)).await.unwrap();
    assert!(store.session("s2", at(5)).await.unwrap().is_none());
    store
        .add_session(&new_session("s3", "bob", 60_000))
        .await
        .unwrap();
    assert!(
        store.session("s3", at(5)).await.unwrap().is_none(),
        "a disabled user has no live session"
    );
}

pub async fn sessions_expire_and_follow_their_users_role(store: &dyn Store) {
    store
        .add_user(&new_user("bob", Role::Viewer))
        .await
        .unwrap();
    store
        .add_session(&new_session("s1", "bob", 10_000))
        .await
        .unwrap();
    let live = store.session("s1", at(9_999)).await.unwrap().unwrap();
    assert_eq!(live.user, "bob");
    assert_eq!(live.role, Role::Viewer);
    assert_eq!(live.csrf, "csrf-s1");
    assert!(
        store.session("s1", at(10_000)).await.unwrap().is_none(),
        "expired"
    );
    assert!(store.session("nope", at(1)).await.unwrap().is_none());

    store
        .add_session(&new_session("s2", "bob", 60_000))
        .await
        .unwrap();
    let admin = UserChange {
        role: Some(Role::Admin),
        ..Default::default()
    };
    store.change_user("bob", &admin, at(1)).await.unwrap();
    assert_eq!(
        store.session("s2", at(2)).await.unwrap().unwrap().role,
        Role::Admin
    );

    store.end_session("s2").await.unwrap();
    assert!(store.session("s2", at(2)).await.unwrap().is_none());
}

pub async fn tokens_are_found_by_digest_until_revoked(store: &dyn Store) {
    let token = |name: &str, digest: &str| NewToken {
        name: name.into(),
        role: Role::Operator,
        digest: digest.into(),
        created_by: "alice".into(),
        at: at(0),
    };
    assert!(store.add_token(&token("ci", "d1")).await.unwrap());
    assert!(
        !store.add_token(&token("ci", "d2")).await.unwrap(),
        "name taken"
    );
    let found = store.token_by_digest("d1").await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.role), ("ci", Role::Operator));
    assert!(store.token_by_digest("d2").await.unwrap().is_none());

    assert!(store.revoke_token("ci", at(7)).await.unwrap());
    assert!(
        !store.revoke_token("ci", at(8)).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_token("other", at(8)).await.unwrap());
    assert!(store.token_by_digest("d1").await.unwrap().is_none());
    let listed = store.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(at(7)));
    assert!(
        !store.add_token(&token("ci", "d3")).await.unwrap(),
        "a revoked token keeps its name"
    );
}

pub async fn credentials_exist_once_an_enabled_user_or_live_token_does(store: &dyn Store) {
    assert!(!store.has_credentials().await.unwrap());
    store
        .add_user(&new_user("bob", Role::Viewer))
        .await
        .unwrap();
    assert!(store.has_credentials().await.unwrap());
    let disable = UserChange {
        disabled: Some(true),
        ..Default::default()
    };
    store.change_user("bob", &disable, at(1)).await.unwrap();
    assert!(!store.has_credentials().await.unwrap());
    let token = NewToken {
        name: "ci".into(),
        role: Role::Viewer,
        digest: "d".into(),
        created_by: "cli".into(),
        at: at(0),
    };
    store.add_token(&token).await.unwrap();
    assert!(store.has_credentials().await.unwrap());
    store.revoke_token("ci", at(2)).await.unwrap();
    assert!(!store.has_credentials().await.unwrap());
}

pub async fn audit_events_record_origin_and_are_never_deleted(store: &dyn Store) {
    let mut event = crate::access::event(
        "alice",
        "token.create",
        Some("10.0.0.7".into()),
        json!({"token": "ci", "role": "operator"}),
    );
    event.at = at(0);
    let id = store.record_event(&event).await.unwrap();
    let query = AuditQuery {
        action: Some("token.create".into()),
        ..Default::default()
    };
    let (items, total) = store.list_actions(&query).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(items[0].id, id);
    assert_eq!(items[0].origin.as_deref(), Some("10.0.0.7"));
    assert_eq!(items[0].target, json!({"token": "ci", "role": "operator"}));

    let task = seed(store, "r", Status::New, 0).await;
    let mut skip = request(Action::Skip, 1_000);
    skip.origin = Some("192.0.2.1".into());
    store.act_on_task(&task, &skip).await.unwrap();
    let actions = store.task_actions(&task).await.unwrap();
    assert_eq!(actions[0].origin.as_deref(), Some("192.0.2.1"));
    // Retention deletes old tasks, never the record of what was done to them.
    let rule = PruneRule {
        updated_before: at(1_000_000),
        max_tasks: None,
    };
    assert_eq!(store.prune(&rule, 100).await.unwrap(), 1);
    let (_, total) = store.list_actions(&AuditQuery::default()).await.unwrap();
    assert_eq!(total, 2);
}

pub async fn a_filter_action_in_steps_acts_once_on_each_task_eligible_when_it_began(
    store: &dyn Store,
) {
    let mut failed = Vec::new();
    for k in 0..7 {
        failed.push(seed(store, "r", Status::Failed, k * 10).await);
    }
    seed(store, "r", Status::New, 100).await;
    let filter = query(&[("route", "r")]).filter;
    let req = request(Action::Retry, 1_000);
    let begun = store.begin_filter_action(&filter, &req).await.unwrap();
    assert_eq!((begun.matched, begun.eligible), (8, 7));
    // A task that failed after the action began is not part of it.
    let late = seed(store, "r", Status::Failed, 2_000).await;
    let mut steps = Vec::new();
    let mut after = None;
    loop {
        let step = store
            .step_filter_action(&filter, &req, begun.action_id, after.as_ref(), 3)
            .await
            .unwrap();
        steps.push(step.changed);
        if !step.more {
            break;
        }
        after = step.resume_after;
    }
    assert_eq!(steps, vec![3, 3, 1]);
    for id in &failed {
        assert_eq!(status_of(store, id).await, Status::New);
    }
    assert_eq!(status_of(store, &late).await, Status::Failed);
    // Once more: nothing left, however often it is asked.
    for after in [None, after.as_ref()] {
        let again = store
            .step_filter_action(&filter, &req, begun.action_id, after, 3)
            .await
            .unwrap();
        assert_eq!((again.changed, again.more), (0, false));
    }
    let outcome = begun.outcome(7);
    store
        .finish_filter_action(begun.action_id, &outcome)
        .await
        .unwrap();
    let actions = store.task_actions(&failed[0]).await.unwrap();
    let last = actions.last().unwrap();
    assert_eq!(last.id, begun.action_id);
    assert_eq!(
        (
            last.outcome.matched,
            last.outcome.changed,
            last.outcome.ineligible
        ),
        (8, 7, 1)
    );
    assert!(store.task_actions(&late).await.unwrap().is_empty());
}

pub async fn bulk_jobs_record_progress_cancel_requests_and_their_end(store: &dyn Store) {
    for k in 0..4 {
        seed(store, "r", Status::Failed, k * 10).await;
    }
    let filter = query(&[("route", "r")]).filter;
    let mut req = request(Action::Retry, 1_000);
    req.actor = "alice".into();
    req.reason = Some("target fixed".into());
    let begun = store.begin_filter_action(&filter, &req).await.unwrap();
    let id = store
        .add_bulk_job(begun.action_id, begun.matched, begun.eligible, at(1_000))
        .await
        .unwrap();
    let job = store.bulk_job(id).await.unwrap().expect("the job");
    assert_eq!(job.state, JobState::Running);
    assert_eq!((job.matched, job.eligible, job.changed), (4, 4, 0));
    assert_eq!(job.action.actor, "alice");
    assert_eq!(job.action.reason.as_deref(), Some("target fixed"));
    assert_eq!(job.action.target["filter"]["route"], json!(["r"]));
    assert_eq!(job.started_at, at(1_000));
    assert!(!job.cancel_requested);

    assert!(!store.bulk_job_progress(id, 2, at(1_500)).await.unwrap());
    let job = store.cancel_bulk_job(id, "bob").await.unwrap().unwrap();
    assert!(job.cancel_requested);
    assert_eq!(job.cancelled_by.as_deref(), Some("bob"));
    assert_eq!((job.changed, job.updated_at), (2, at(1_500)));
    assert!(store.bulk_job_progress(id, 3, at(1_600)).await.unwrap());
    assert_eq!(store.bulk_jobs(true, 10).await.unwrap().len(), 1);

    store
        .end_bulk_job(id, JobState::Cancelled, 3, None, at(1_700))
        .await
        .unwrap();
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!((job.changed, job.finished_at), (3, Some(at(1_700))));
    // An ended job stays as it ended.
    store
        .end_bulk_job(id, JobState::Done, 4, None, at(1_800))
        .await
        .unwrap();
    let cancelled_again = store.cancel_bulk_job(id, "carol").await.unwrap().unwrap();
    assert_eq!(cancelled_again.state, JobState::Cancelled);
    assert_eq!(cancelled_again.cancelled_by.as_deref(), Some("bob"));

    let second = store.add_bulk_job(begun.action_id, 0, 0, at(2_000)).await;
    // One job per operator action.
    assert!(second.is_err());
    assert!(store.bulk_jobs(true, 10).await.unwrap().is_empty());
    let all = store.bulk_jobs(false, 10).await.unwrap();
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    assert!(store.bulk_job(id + 1_000).await.unwrap().is_none());
    assert!(
        store
            .cancel_bulk_job(id + 1_000, "x")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn the_audit_entry_of_a_filter_action_counts_each_step_as_it_commits(store: &dyn Store) {
    for k in 0..6 {
        seed(store, "r", Status::Failed, k * 10).await;
    }
    seed(store, "r", Status::New, 100).await;
    let filter = query(&[("route", "r")]).filter;
    let req = request(Action::Retry, 1_000);
    let begun = store.begin_filter_action(&filter, &req).await.unwrap();
    let id = store
        .add_bulk_job(begun.action_id, begun.matched, begun.eligible, at(1_000))
        .await
        .unwrap();
    let counts = |job: BulkJob| {
        let o = job.action.outcome;
        (o.matched, o.changed, o.ineligible)
    };
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(counts(job), (7, 0, 1), "known as the action begins");

    // One step, and then the node running it is gone: the entry has what committed.
    let step = store
        .step_filter_action(&filter, &req, begun.action_id, None, 4)
        .await
        .unwrap();
    assert_eq!((step.changed, step.more), (4, true));
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(counts(job), (7, 4, 1));

    // The steps again from the start, as a resumed job runs them: only what is left.
    let step = store
        .step_filter_action(&filter, &req, begun.action_id, None, 4)
        .await
        .unwrap();
    assert_eq!((step.changed, step.more), (2, false));
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(counts(job), (7, 6, 1));
    store
        .finish_filter_action(begun.action_id, &begun.outcome(6))
        .await
        .unwrap();
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(counts(job), (7, 6, 1));
}

pub async fn a_stale_job_is_taken_over_once_and_only_once(store: &dyn Store) {
    use ferry_core::bulk::STALE_AFTER_MS;
    seed(store, "r", Status::Failed, 0).await;
    let filter = query(&[("route", "r")]).filter;
    let req = request(Action::Retry, 1_000);
    let begun = store.begin_filter_action(&filter, &req).await.unwrap();
    let id = store
        .add_bulk_job(begun.action_id, begun.matched, begun.eligible, at(1_000))
        .await
        .unwrap();
    assert!(store.renew_bulk_job(id, "node-a", at(2_000)).await.unwrap());
    // While its node renews its sign of life, no one takes it.
    assert!(
        !store
            .take_over_bulk_job(id, "node-b", at(2_000 + STALE_AFTER_MS))
            .await
            .unwrap()
    );
    let stale = at(2_001 + STALE_AFTER_MS);
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(job.state_at(stale), JobState::Interrupted);
    assert_eq!(job.runner.as_deref(), Some("node-a"));

    // Two nodes try at once: one wins.
    let (b, c) = tokio::join!(
        store.take_over_bulk_job(id, "node-b", stale),
        store.take_over_bulk_job(id, "node-c", stale)
    );
    let (b, c) = (b.unwrap(), c.unwrap());
    assert!(b ^ c, "exactly one takes the job over: {b} {c}");
    let winner = if b { "node-b" } else { "node-c" };
    let job = store.bulk_job(id).await.unwrap().unwrap();
    assert_eq!(job.runner.as_deref(), Some(winner));
    assert_eq!(
        (job.updated_at, job.state_at(stale)),
        (stale, JobState::Running)
    );
    // And once more, by anyone: refused, the job is alive again.
    assert!(!store.take_over_bulk_job(id, "node-a", stale).await.unwrap());
    // The node that lost it can no longer renew it; the winner can.
    assert!(!store.renew_bulk_job(id, "node-a", stale).await.unwrap());
    assert!(store.renew_bulk_job(id, winner, stale).await.unwrap());

    // An ended job is never taken over, however old.
    store
        .end_bulk_job(id, JobState::Done, 1, None, stale)
        .await
        .unwrap();
    let later = at(10 * STALE_AFTER_MS + 10_000);
    assert!(!store.take_over_bulk_job(id, "node-a", later).await.unwrap());
    assert!(!store.renew_bulk_job(id, winner, later).await.unwrap());
    assert!(
        !store
            .take_over_bulk_job(id + 1_000, "node-a", later)
            .await
            .unwrap()
    );
}

pub async fn a_capped_count_is_exact_up_to_the_cap_and_a_marked_lower_bound_above(
    store: &dyn Store,
) {
    let cap = COUNT_CAP as i64;
    let tasks: Vec<NewTask> = (0..cap + 5)
        .map(|k| {
            let route = if k < 3 { "few" } else { "many" };
            new_task(route, "product", &format!("SKU-{k}"), k)
        })
        .collect();
    store.insert_tasks(&tasks).await.unwrap();
    let list = |pairs: &[(&str, &str)]| {
        let mut q = query(pairs);
        q.count = ferry_core::CountMode::Capped;
        q
    };
    let page = store.list_tasks(&list(&[("route", "few")])).await.unwrap();
    assert_eq!((page.total, page.total_exact), (3, true));
    let page = store.list_tasks(&list(&[])).await.unwrap();
    assert_eq!((page.total, page.total_exact), (COUNT_CAP, false));
    assert_eq!(page.items.len(), 50);
    let exact = store.list_tasks(&query(&[])).await.unwrap();
    assert_eq!((exact.total, exact.total_exact), (COUNT_CAP + 5, true));
    // Sorted by updated-at, a store may count to choose how to read the list, and that
    // count may give the total: the same totals.
    let by_updated = [("route", "many"), ("sort", "updated_at")];
    let page = store.list_tasks(&list(&by_updated)).await.unwrap();
    assert_eq!((page.total, page.total_exact), (COUNT_CAP, false));
    let exact = store.list_tasks(&query(&by_updated)).await.unwrap();
    assert_eq!((exact.total, exact.total_exact), (COUNT_CAP + 2, true));
    let few = [("route", "few"), ("sort", "updated_at")];
    let page = store.list_tasks(&list(&few)).await.unwrap();
    assert_eq!((page.total, page.total_exact), (3, true));
    let mut skip = query(&[("route", "many")]);
    skip.count = ferry_core::CountMode::Skip;
    let page = store.list_tasks(&skip).await.unwrap();
    assert_eq!(
        (page.total, page.total_exact, page.items.len()),
        (0, false, 50)
    );
    // Status counts that may be estimated: exact up to the cap; above it a store may
    // estimate, and then says so and estimates above the cap.
    let few = store
        .estimate_counts(&query(&[("route", "few")]).filter)
        .await
        .unwrap();
    assert_eq!((few.counts.get(Status::New), few.exact), (3, true));
    let all = store.estimate_counts(&TaskFilter::default()).await.unwrap();
    if all.exact {
        assert_eq!(all.counts.total(), COUNT_CAP + 5);
    } else {
        assert!(all.counts.total() > COUNT_CAP, "{all:?}");
    }
}

/// Status counts by routes and statuses alone may come from running totals (SQLite
/// keeps them by triggers); any other filter counts the tasks. Both must agree, and
/// the per-route counts with them, whatever changed the tasks.
/// The running status counts (no filter, and by route `a` and `b`) equal a real count
/// of the tasks, and the counts by route agree.
async fn counts_agree(store: &dyn Store, when: &str) {
    let by_route = store.counts_by_route().await.unwrap();
    for routes in [vec![], vec!["a".to_owned()], vec!["b".to_owned()]] {
        let kept = TaskFilter {
            routes: routes.clone(),
            ..TaskFilter::default()
        };
        let counted = TaskFilter {
            created_from: Some(Timestamp::from_millis(0)),
            ..kept.clone()
        };
        let counts = store.count_tasks(&counted).await.unwrap();
        assert_eq!(
            store.count_tasks(&kept).await.unwrap(),
            counts,
            "{when}, routes {routes:?}"
        );
        if let [route] = &routes[..] {
            let listed = by_route.get(route).cloned().unwrap_or_default();
            assert_eq!(listed, counts, "{when}, counts by route of {route}");
        }
    }
}
pub async fn status_counts_agree_with_counting_the_tasks_after_every_kind_of_change(
    store: &dyn Store,
) {
    let tasks: Vec<NewTask> = (0..12)
        .map(|k| {
            let route = if k % 2 == 0 { "a" } else { "b" };
            new_task(route, "product", &format!("SKU-{k}"), k)
        })
        .collect();
    store.insert_tasks(&tasks).await.unwrap();
    counts_agree(store, "after inserting").await;
    let claimed = claim_all(store, "a", 100).await;
    assert_eq!(claimed.len(), 6);
    counts_agree(store, "after a claim").await;
    let outcomes = [
        Outcome::Finished,
        Outcome::Failed { error: "x".into() },
        Outcome::Skipped,
        Outcome::Retry {
            at: at(150),
            error: "y".into(),
        },
    ];
    let completions: Vec<Completion> = claimed
        .iter()
        .zip(outcomes)
        .map(|(t, o)| completion(t, o, 200))
        .collect();
    store.complete("w1", &completions).await.unwrap();
    counts_agree(store, "after completions").await;
    store
        .release("w1", std::slice::from_ref(&claimed[4].summary.id))
        .await
        .unwrap();
    counts_agree(store, "after a release").await;
    assert_eq!(store.recover_expired(at(70_000)).await.unwrap(), 1);
    counts_agree(store, "after recovering an expired lease").await;
    let on = |route: &str| TaskFilter {
        routes: vec![route.to_owned()],
        ..TaskFilter::default()
    };
    store
        .act_on_filter(&on("a"), &request(Action::Retry, 80_000))
        .await
        .unwrap();
    counts_agree(store, "after a bulk retry").await;
    store
        .act_on_filter(&on("b"), &request(Action::Skip, 90_000))
        .await
        .unwrap();
    counts_agree(store, "after a bulk skip").await;
    let skipped = &tasks[1].id; // on route b, skipped above
    store
        .act_on_task(skipped, &request(Action::Retry, 91_000))
        .await
        .unwrap();
    counts_agree(store, "after retrying one task").await;
    store
        .act_on_ids(
            std::slice::from_ref(skipped),
            &request(Action::Skip, 92_000),
        )
        .await
        .unwrap();
    counts_agree(store, "after skipping by identifiers").await;
    let rule = PruneRule {
        updated_before: at(100_000),
        max_tasks: None,
    };
    assert_eq!(store.prune(&rule, 100).await.unwrap(), 6);
    counts_agree(store, "after pruning").await;
    assert!(!store.counts_by_route().await.unwrap().contains_key("b"));
}

/// A task as an export from another store holds it, with an empty history.
fn exported(route: &str, status: Status, entity: &str, offset_ms: i64) -> TaskRecord {
    let t = new_task(route, "product", entity, offset_ms);
    TaskRecord {
        task: Task {
            summary: TaskSummary {
                id: t.id,
                route: route.to_owned(),
                entity_schema: "product".into(),
                entity_identifier: entity.into(),
                status,
                attempts: 1,
                created_at: t.created_at,
                updated_at: t.created_at,
            },
            entity_data: t.entity_data,
            last_error: None,
            next_attempt_at: None,
            response: None,
        },
        messages: Vec::new(),
        attempts: Vec::new(),
        action_ids: Vec::new(),
    }
}

pub async fn a_task_with_a_long_history_is_imported_whole(store: &dyn Store) {
    // More lines, attempts and action links than one statement can take parameters
    // for (65,535 on PostgreSQL, 32,766 on SQLite).
    let action = ActionRecord {
        id: 0,
        at: at(5),
        actor: "elsewhere".into(),
        action: "retry".into(),
        reason: None,
        origin: None,
        target: json!({ "identifiers": [] }),
        outcome: BulkOutcome {
            matched: 1,
            changed: 1,
            ineligible: 0,
            not_found: 0,
        },
    };
    let real = store.import_actions(&[action]).await.unwrap()[0];
    let mut record = exported("a", Status::Failed, "LONG-1", 10);
    record.messages = (0..14_000)
        .map(|k| {
            let phase = if k % 2 == 0 {
                Phase::Import
            } else {
                Phase::Export
            };
            (phase, Message::new(at(k), Level::Info, format!("line {k}")))
        })
        .collect();
    record.attempts = (1..=12_000)
        .map(|k| Attempt {
            attempt: k,
            started_at: at(i64::from(k)),
            ended_at: at(i64::from(k) + 1),
            outcome: Status::Failed,
            error: Some(format!("error {k}")),
        })
        .collect();
    // The real action last: every chunk of links has to be stored for it to show.
    record.action_ids = (1..=33_000).map(|k| real + k).chain([real]).collect();
    assert_eq!(store.import_tasks(&[record.clone()]).await.unwrap(), 1);
    let id = &record.task.summary.id;
    for phase in [Phase::Import, Phase::Export] {
        let stored = store.messages(id, phase).await.unwrap().unwrap();
        let sent: Vec<&Message> = record
            .messages
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            stored.iter().collect::<Vec<_>>(),
            sent,
            "{phase:?} lines in order"
        );
    }
    let attempts = store.attempts(id).await.unwrap();
    assert_eq!(attempts.len(), 12_000);
    assert_eq!(attempts[11_999].error.as_deref(), Some("error 12000"));
    let actions = store.task_actions(id).await.unwrap();
    assert_eq!(actions.iter().map(|a| a.id).collect::<Vec<_>>(), [real]);
}

pub async fn imported_tasks_are_searchable_and_counted_once(store: &dyn Store) {
    store
        .insert_tasks(&[new_task("a", "product", "SKU-1", 0)])
        .await
        .unwrap();
    let records: Vec<TaskRecord> = [
        ("a", Status::Finished, "IMP-1"),
        ("b", Status::Failed, "IMP-2"),
        ("b", Status::Processing, "IMP-3"),
    ]
    .into_iter()
    .enumerate()
    .map(|(k, (route, status, entity))| exported(route, status, entity, 10 + k as i64))
    .collect();
    assert_eq!(store.import_tasks(&records).await.unwrap(), 3);
    assert_eq!(store.import_tasks(&records).await.unwrap(), 0, "again");
    counts_agree(store, "after importing").await;
    let all = store.count_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(all.total(), 4);
    assert_eq!(
        all.get(Status::New),
        2,
        "the processing task comes back new"
    );
    let found = |pairs: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        store.list_tasks(&query(&pairs)).await.unwrap().items
    };
    let imported = found(vec![("entity_identifier", "IMP-".into())]).await;
    assert_eq!(imported.len(), 3);
    let id = records[1].task.summary.id.as_str();
    let by_id = found(vec![("identifier", id[10..].to_owned())]).await;
    assert_eq!(by_id.len(), 1, "found by a piece of its identifier");
    assert_eq!(by_id[0].entity_identifier, "IMP-2");
}

pub async fn every_piece_of_an_identifier_finds_its_task(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..3)
        .map(|k| new_task("a", "product", &format!("SKU-{k}"), k))
        .collect();
    store.insert_tasks(&tasks).await.unwrap();
    let id = tasks[1].id.as_str();
    for len in [3, 5, 6, 7, 9, 26] {
        for at in 0..=id.len() - len {
            let piece = &id[at..at + len];
            let found = store
                .list_tasks(&query(&[("identifier", piece)]))
                .await
                .unwrap()
                .items;
            assert!(
                found.iter().any(|t| t.id == tasks[1].id),
                "{piece} (at {at}) is in {id}"
            );
            assert!(found.iter().all(|t| t.id.as_str().contains(piece)));
        }
    }
    let lower = id[18..].to_lowercase();
    let found = store
        .list_tasks(&query(&[("identifier", &lower)]))
        .await
        .unwrap();
    let holding = tasks.iter().filter(|t| t.id.as_str().contains(&id[18..]));
    assert_eq!(
        found.total,
        holding.count() as u64,
        "identifiers are matched in any case"
    );
    for absent in ["ZZZZZZZZZ", "01-23-45", "\"AND\""] {
        let found = store.list_tasks(&query(&[("identifier", absent)])).await;
        assert_eq!(found.unwrap().total, 0, "{absent}");
    }
}
