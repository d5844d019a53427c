//! The operator pages in a real browser: headless Chromium driven through ChromeDriver
//! (Debian's `chromium` and `chromium-driver`). Without them the tests say so and pass,
//! except under CI=true, where they fail. Screenshots land in the target's tmp folder.

mod common;

use common::TestApp;
use fantoccini::{Client, ClientBuilder, Locator};
use ferry_core::Role;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One browser at a time: five Chromiums at once on two cores make every wait flaky.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Browser {
    client: Client,
    _turn: tokio::sync::MutexGuard<'static, ()>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends ChromeDriver and every browser process it started (they share its process
    /// group, whose id is ChromeDriver's pid), also when a test failed before closing its
    /// session. `pkill -g` takes the group as a plain number: procps-ng 4.0.2's
    /// `kill -9 -PGID` misreads the group (`kill -9 -4878` signals group 4, and a pid
    /// starting with 1 becomes `kill(-1)`, every process the user may signal).
    fn drop(&mut self) {
        let group = self.driver.id();
        if group > 1 {
            let _ = Command::new("pkill")
                .args(["-KILL", "-g", &group.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find_program(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

/// A headless Chromium session, or `None` (with the reason printed) on a machine
/// without one; under CI=true a missing browser is a failure.
async fn browser() -> Option<Browser> {
    let driver = find_program(&["chromedriver"]);
    let chrome = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let (Some(driver), Some(chrome)) = (driver, chrome) else {
        let reason = "the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}; .ci/run installs them");
        }
        eprintln!("SKIPPED: {reason}");
        return None;
    };
    let turn = ONE_AT_A_TIME.lock().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&driver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chrome,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps.clone());
        match builder.connect(&url).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "chromedriver did not start a session: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    Some(Browser {
        client,
        _turn: turn,
        driver: child,
        _profile: profile,
    })
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Text with every run of white space as one space, as a reader sees it.
async fn text(c: &Client, selector: &str) -> String {
    let t = css(c, selector).await.text().await.unwrap();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
}

async fn rows(c: &Client) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for row in c
        .find_all(Locator::Css("table.tasks tbody tr"))
        .await
        .unwrap()
    {
        let id = row.attr("data-id").await.unwrap().unwrap();
        let status = row.attr("data-status").await.unwrap().unwrap();
        let route = row
            .find(Locator::Css("td:nth-child(6)"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        out.push((id, status, route));
    }
    out
}

/// Submits the filter form and waits for the new page (its address changes; the old
/// page's elements would otherwise answer the next lookups on a busy machine).
async fn apply(c: &Client) {
    let before = c.current_url().await.unwrap();
    css(c, "#filters button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.current_url().await.unwrap() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    css(c, "main h1").await;
}

fn query_of(url: &reqwest::Url) -> Vec<(String, String)> {
    url.query_pairs()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Adds a user and signs it in through the sign-in page; the page then shows its name.
async fn sign_in(c: &Client, app: &TestApp, name: &str, role: Role) {
    let password = "correct horse battery";
    app.user(name, role, password).await;
    c.goto(&app.url("/login")).await.unwrap();
    css(c, "#login-user").await.send_keys(name).await.unwrap();
    css(c, "#login-password")
        .await
        .send_keys(password)
        .await
        .unwrap();
    css(c, "#login-submit").await.click().await.unwrap();
    let shown = text(c, "#me-name").await;
    assert_eq!(shown, name, "signed in");
}

/// Confirms the open dialog with a reason and waits for the page to report.
async fn confirm(c: &Client, reason: &str) -> String {
    css(c, "#confirm[open] #confirm-reason")
        .await
        .send_keys(reason)
        .await
        .unwrap();
    css(c, "#confirm-ok").await.click().await.unwrap();
    css(c, "#flash .banner").await.text().await.unwrap()
}

#[tokio::test]
async fn filtering_by_each_dimension_changes_the_list_and_the_address() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    app.populate(14, 0).await;
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url("/tasks")).await.unwrap();
    assert_eq!(rows(c).await.len(), 50);
    screenshot(c, "tasks").await;

    // Route.
    css(c, "input[name=route][value=strict]")
        .await
        .click()
        .await
        .unwrap();
    apply(c).await;
    let url = c.current_url().await.unwrap();
    assert_eq!(
        query_of(&url),
        [("route".to_owned(), "strict".to_owned())],
        "only the filters set are in the address: {url}"
    );
    let r = rows(c).await;
    assert_eq!(r.len(), 14);
    assert!(r.iter().all(|(_, _, route)| route == "strict"));

    // Status, added to the route.
    css(c, "input[name=status][value=finished]")
        .await
        .click()
        .await
        .unwrap();
    css(c, "input[name=route][value=archive]")
        .await
        .click()
        .await
        .unwrap();
    apply(c).await;
    let q = query_of(&c.current_url().await.unwrap());
    assert!(
        q.contains(&("status".into(), "finished".into()))
            && q.contains(&("route".into(), "archive".into())),
        "{q:?}"
    );
    let r = rows(c).await;
    assert_eq!(r.len(), 12, "archive's finished tasks");
    assert!(r.iter().all(|(_, s, _)| s == "finished"));

    // Back returns to the route-only view.
    c.back().await.unwrap();
    css(c, "main h1").await;
    assert_eq!(rows(c).await.len(), 14);

    // Entity identifier, equals.
    c.goto(&app.url("/tasks")).await.unwrap();
    css(c, "#f-entity_identifier")
        .await
        .send_keys("SKU-0003")
        .await
        .unwrap();
    css(c, "#f-entity_identifier-match")
        .await
        .select_by_value("equals")
        .await
        .unwrap();
    apply(c).await;
    let q = query_of(&c.current_url().await.unwrap());
    assert!(
        q.contains(&("entity_identifier_match".into(), "equals".into())),
        "{q:?}"
    );
    assert_eq!(rows(c).await.len(), 4, "one product on four routes");

    // Identifier, contains.
    let one = rows(c).await[0].0.clone();
    c.goto(&app.url("/tasks")).await.unwrap();
    css(c, "#f-identifier")
        .await
        .send_keys(&one[14..])
        .await
        .unwrap();
    apply(c).await;
    assert!(rows(c).await.iter().any(|(id, _, _)| *id == one));

    // Entity schema.
    c.goto(&app.url("/tasks?entity_schema=order&entity_schema_match=equals"))
        .await
        .unwrap();
    assert!(
        css(c, ".empty")
            .await
            .text()
            .await
            .unwrap()
            .contains("No task matches")
    );

    // Created range: a preset, then a range with nothing in it.
    c.goto(&app.url("/tasks?route=idle")).await.unwrap();
    css(c, ".presets[data-for=created] button[data-preset='1h']")
        .await
        .click()
        .await
        .unwrap();
    css(c, "main h1").await;
    let q = query_of(&c.current_url().await.unwrap());
    assert!(
        q.iter().any(|(k, _)| k == "created_from") && q.iter().any(|(k, _)| k == "created_to"),
        "{q:?}"
    );
    assert_eq!(rows(c).await.len(), 14);
    let from = css(c, "input[name=created_from]").await;
    from.clear().await.unwrap();
    from.send_keys("2000-01-01T00:00:00Z").await.unwrap();
    let to = css(c, "input[name=created_to]").await;
    to.clear().await.unwrap();
    to.send_keys("2000-01-02T00:00:00Z").await.unwrap();
    apply(c).await;
    assert!(rows(c).await.is_empty());

    // Updated range via the address, like a shared link.
    c.goto(&app.url("/tasks?updated_from=2100-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert!(rows(c).await.is_empty());

    // The status counts follow the filters.
    c.goto(&app.url("/tasks?route=patient")).await.unwrap();
    let counts = text(c, ".counts").await;
    assert!(
        counts.contains("All 14") && counts.contains("retry 14"),
        "{counts}"
    );

    // A bad value in the address is a message on the page.
    c.goto(&app.url("/tasks?status=bogus")).await.unwrap();
    let banner = css(c, ".banner.error").await.text().await.unwrap();
    assert!(banner.contains("unknown status 'bogus'"), "{banner}");
    // It says nothing is shown, not "No tasks yet", and shows no counts it did not make.
    let empty = text(c, ".empty").await;
    assert!(
        empty.contains("Nothing is shown") && !empty.contains("No tasks yet"),
        "{empty}"
    );
    assert!(
        c.find(Locator::Css(".counts")).await.is_err(),
        "no zero counts"
    );
    screenshot(c, "tasks-bad-url").await;

    // A page past the last says so and leads back.
    c.goto(&app.url("/tasks?route=patient&page=99"))
        .await
        .unwrap();
    let empty = text(c, ".empty").await;
    assert!(
        empty.contains("Page 99 is past the last page of these 14 tasks"),
        "{empty}"
    );
    css(c, ".empty a").await.click().await.unwrap();
    assert_eq!(rows(c).await.len(), 14, "the last page");
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn selecting_all_matching_tasks_across_pages_skips_exactly_the_eligible_ones() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    app.populate(30, 0).await; // 30 products × 4 routes
    let before = app.get_ok("/api/v1/tasks/counts").await;
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    // idle: 30 new; strict: 30 failed → 60 tasks on 3 pages of 25; 30 can be skipped.
    c.goto(&app.url("/tasks?route=idle&route=strict&per_page=25"))
        .await
        .unwrap();
    assert_eq!(rows(c).await.len(), 25);
    css(c, "#select-page").await.click().await.unwrap();
    let link = css(c, "#select-all-matching").await;
    assert_eq!(
        link.text().await.unwrap(),
        "Select all 60 tasks that match the filters"
    );
    link.click().await.unwrap();
    let skip = css(c, "#bulk-skip").await;
    assert_eq!(skip.text().await.unwrap(), "Skip 60 tasks");
    assert_eq!(
        css(c, "#bulk-retry").await.text().await.unwrap(),
        "Retry 60 tasks"
    );
    screenshot(c, "tasks-select-all").await;
    skip.click().await.unwrap();
    let report = confirm(c, "not needed any more").await;
    assert!(
        report.contains("30 of 60 tasks skipped") && report.contains("30 could not be skipped"),
        "{report}"
    );
    screenshot(c, "tasks-after-bulk-skip").await;

    let after = app.get_ok("/api/v1/tasks/counts").await;
    let idle = app.get_ok("/api/v1/tasks/counts?route=idle").await;
    assert_eq!(idle["by_status"]["skipped"], 30);
    assert_eq!(idle["by_status"]["new"], 0);
    let n = |v: &Value, s: &str| v["by_status"][s].as_u64().unwrap();
    assert_eq!(n(&after, "skipped"), n(&before, "skipped") + 30);
    assert_eq!(
        n(&after, "failed"),
        n(&before, "failed"),
        "failed tasks cannot be skipped"
    );
    assert_eq!(
        n(&after, "retry"),
        n(&before, "retry"),
        "other routes untouched"
    );
    let history = app
        .get_ok(&format!(
            "/api/v1/tasks/{}/history",
            app.get_ok("/api/v1/tasks?route=idle&per_page=1").await["items"][0]["identifier"]
                .as_str()
                .unwrap()
        ))
        .await;
    assert_eq!(history["actions"][0]["reason"], "not needed any more");

    // Selecting a few rows acts on those rows only.
    c.goto(&app.url("/tasks?route=strict&per_page=25"))
        .await
        .unwrap();
    let boxes = c.find_all(Locator::Css(".row-select")).await.unwrap();
    boxes[0].click().await.unwrap();
    boxes[1].click().await.unwrap();
    let retry = css(c, "#bulk-retry").await;
    assert_eq!(retry.text().await.unwrap(), "Retry 2 tasks");
    retry.click().await.unwrap();
    let report = confirm(c, "").await;
    assert!(report.contains("2 of 2 tasks retried"), "{report}");
    assert_eq!(
        app.get_ok("/api/v1/tasks/counts?route=strict&status=new")
            .await["total"],
        2
    );
    b.client.clone().close().await.unwrap();
}

/// Waits until the element's text satisfies `check`; answers it.
async fn text_until(c: &Client, selector: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = text(c, selector).await;
        if check(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "{selector} stayed: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_bulk_job_running_on_another_node_shows_its_progress_and_can_be_cancelled() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    app.populate(30, 0).await;
    // A job as another node records it: begun and counted, its batches still to come.
    let store = app.state.store().clone();
    let request = ferry_store::ActionRequest {
        action: ferry_core::Action::Retry,
        actor: "alice".into(),
        reason: None,
        at: ferry_core::Timestamp::now(),
        origin: None,
    };
    let filter = ferry_core::TaskFilter::default();
    let begun = store.begin_filter_action(&filter, &request).await.unwrap();
    let id = store
        .add_bulk_job(begun.action_id, begun.matched, begun.eligible, request.at)
        .await
        .unwrap();
    let eligible = begun.eligible;
    assert!(eligible > 10, "{begun:?}");

    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url("/tasks")).await.unwrap();
    let job = format!(".job[data-job='{id}'] .job-text");
    let shown = text_until(c, &job, |t| t.contains("Retrying by alice")).await;
    assert!(
        shown.contains(&format!("0 of {eligible} tasks retried (0%)")),
        "{shown}"
    );

    // The other node gets halfway: the bar follows.
    store
        .bulk_job_progress(id, eligible / 2, ferry_core::Timestamp::now())
        .await
        .unwrap();
    let half = format!("{} of {eligible} tasks retried", eligible / 2);
    text_until(c, &job, |t| t.contains(&half)).await;
    let bar: f64 = css(c, &format!(".job[data-job='{id}'] progress"))
        .await
        .attr("value")
        .await
        .unwrap()
        .expect("the bar has a value")
        .parse()
        .unwrap();
    assert!((0.4..=0.6).contains(&bar), "{bar}");
    screenshot(c, "tasks-bulk-job-running").await;

    // Cancel from the page: the job is asked to stop after its current batch.
    css(c, &format!(".job[data-job='{id}'] button"))
        .await
        .click()
        .await
        .unwrap();
    text_until(c, &job, |t| t.contains("stopping after this batch")).await;
    assert!(
        store
            .bulk_job_progress(id, eligible / 2 + 1, ferry_core::Timestamp::now())
            .await
            .unwrap()
    );
    store
        .end_bulk_job(
            id,
            ferry_core::JobState::Cancelled,
            eligible / 2 + 1,
            None,
            ferry_core::Timestamp::now(),
        )
        .await
        .unwrap();
    let ended = text_until(c, &job, |t| t.starts_with("Cancelled")).await;
    assert!(
        ended.contains("Cancelled by token:") || ended.contains("Cancelled by olga"),
        "{ended}"
    );
    screenshot(c, "tasks-bulk-job-cancelled").await;
    let audit = app.get_ok("/api/v1/audit?action=bulk.cancel").await;
    assert_eq!(audit["items"][0]["actor"], "olga");
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_failed_task_is_retried_from_its_detail_page_and_every_tab_opens() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    app.populate(3, 0).await;
    let failed = app
        .get_ok("/api/v1/tasks?route=strict&status=failed&per_page=1")
        .await;
    let id = failed["items"][0]["identifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url(&format!("/tasks/{id}"))).await.unwrap();
    let overview = css(c, ".tab-panel").await.text().await.unwrap();
    assert!(
        overview.contains("127.0.0.1:9"),
        "the last error shows: {overview}"
    );
    screenshot(c, "task-overview").await;
    for (tab, expect) in [
        ("Entity Data", "\"sku\": \"SKU-000"),
        ("Import Messages", "received from webhook shop"),
        ("Export Messages", "attempt 1"),
        ("History", "Attempts"),
        ("Audit trail", "No operator has acted on this task"),
        ("Overview", "Entity identifier"),
    ] {
        let xpath = format!("//nav[@class='tabs']/a[starts-with(normalize-space(.), '{tab}')]");
        c.find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("tab {tab}"))
            .click()
            .await
            .unwrap();
        let text = css(c, ".tab-panel").await.text().await.unwrap();
        assert!(text.contains(expect), "{tab}: {text}");
        let current = css(c, ".tabs a[aria-current=page]")
            .await
            .text()
            .await
            .unwrap();
        assert!(current.starts_with(tab), "{current}");
        screenshot(c, &format!("task-{}", tab.to_lowercase().replace(' ', "-"))).await;
    }
    // A failed task offers Retry, not Skip.
    assert!(
        c.find(Locator::Css(".task-actions [data-action=skip]"))
            .await
            .is_err()
    );
    css(c, ".task-actions [data-action=retry]")
        .await
        .click()
        .await
        .unwrap();
    let report = confirm(c, "ERP is back").await;
    assert!(report.contains("retried"), "{report}");
    assert_eq!(app.status_of(&id).await, "new");
    assert_eq!(
        css(c, ".task-head .badge").await.text().await.unwrap(),
        "new"
    );
    // The retry is on the task's audit tab, with who, why and from where.
    c.goto(&app.url(&format!("/tasks/{id}?tab=audit")))
        .await
        .unwrap();
    let audit = text(c, ".tab-panel table").await;
    assert!(
        audit.contains("olga retry ERP is back 127.0.0.1"),
        "{audit}"
    );
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_row_menu_offers_only_the_actions_the_status_allows() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    app.populate(7, 0).await;
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url("/tasks?per_page=100")).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for row in c
        .find_all(Locator::Css("table.tasks tbody tr"))
        .await
        .unwrap()
    {
        let status = row.attr("data-status").await.unwrap().unwrap();
        row.find(Locator::Css("summary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let skip = row.find(Locator::Css("[data-action=skip]")).await.is_ok();
        let retry = row.find(Locator::Css("[data-action=retry]")).await.is_ok();
        let (can_skip, can_retry) = match status.as_str() {
            "new" | "retry" => (true, false),
            "finished" | "failed" | "skipped" => (false, true),
            _ => (false, false),
        };
        assert_eq!(
            (skip, retry),
            (can_skip, can_retry),
            "row in status {status}"
        );
        if seen.insert(status.clone()) && status == "retry" {
            screenshot(c, "tasks-row-menu").await;
        }
        // Close with Escape, as a keyboard user would.
        row.find(Locator::Css("summary"))
            .await
            .unwrap()
            .send_keys("\u{E00C}")
            .await
            .unwrap();
    }
    assert!(seen.len() >= 5, "statuses seen: {seen:?}");
    // Skipping from the menu.
    let new_row = css(c, "table.tasks tbody tr[data-status=new]").await;
    let id = new_row.attr("data-id").await.unwrap().unwrap();
    new_row
        .find(Locator::Css("summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    new_row
        .find(Locator::Css("[data-action=skip]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let report = confirm(c, "").await;
    assert!(report.contains(&format!("Task {id} skipped")), "{report}");
    assert_eq!(app.status_of(&id).await, "skipped");
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_routes_page_shows_counts_and_runs_a_route() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    app.push_products(&TestApp::products(5, 0)).await;
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url("/routes")).await.unwrap();
    let archive = css(c, "#route-archive").await;
    assert!(text(c, "#route-archive").await.contains("new 5"));
    screenshot(c, "routes").await;
    archive
        .find(Locator::Css("button.run.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let report = css(c, "#flash .banner").await.text().await.unwrap();
    assert!(report.contains("5 claimed, 4 finished"), "{report}");
    assert!(text(c, "#route-archive").await.contains("finished 4"));
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_try_panel_shows_each_step_and_what_would_be_sent() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url("/routes")).await.unwrap();
    let strict = css(c, "#route-strict").await;
    strict
        .find(Locator::Css("details.try summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let editor = strict
        .find(Locator::Css("textarea.try-entity"))
        .await
        .unwrap();
    assert!(
        editor
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
            .contains("\"sku\""),
        "the editor starts with the identifier field"
    );
    editor.clear().await.unwrap();
    editor
        .send_keys(r#"{"sku": "TRY-1", "name": "Kayak", "price": "99.90"}"#)
        .await
        .unwrap();
    strict
        .find(Locator::Css("button.try-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let shown = text_until(c, "#route-strict .try-result", |t| {
        t.contains("would be sent")
    })
    .await;
    assert!(shown.contains(".price |= tonumber"), "{shown}");
    assert!(shown.contains("condition true, kept"), "{shown}");
    assert!(shown.contains("entity identifier TRY-1"), "{shown}");
    assert!(shown.contains("POST http://127.0.0.1:9/TRY-1"), "{shown}");
    assert!(shown.contains("\"price\": 99.90"), "{shown}");
    c.execute(
        "document.querySelector('#route-strict .try-task').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    screenshot(c, "routes-try").await;
    // Nothing was stored.
    assert_eq!(app.get_ok("/api/v1/tasks").await["total"], 0);
    b.client.clone().close().await.unwrap();
}

/// How much wider than the window the page is (0 when it fits).
async fn overflow(c: &Client) -> i64 {
    let v = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    v.as_i64().unwrap_or(i64::MAX)
}

#[tokio::test]
async fn a_very_long_entity_identifier_is_cut_in_the_list_and_wrapped_on_its_page() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    let long = format!("LONG-{}", "x".repeat(400));
    let ids = app
        .push_products(&[serde_json::json!({"sku": long, "name": "Long one", "price": "1"})])
        .await;
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url("/tasks")).await.unwrap();
    css(c, "td.cut").await;
    // The row's last cell (Actions) is within the window, not pushed off by the value.
    let right = c
        .execute(
            "return Math.ceil(document.querySelector('tbody tr td:last-child').getBoundingClientRect().right - window.innerWidth);",
            vec![],
        )
        .await
        .unwrap()
        .as_i64()
        .unwrap_or(i64::MAX);
    assert!(
        right <= 0,
        "the Actions cell is {right} px beyond the window"
    );
    assert!(
        overflow(c).await <= 0,
        "the list fits the window: {} px too wide",
        overflow(c).await
    );
    let cell = css(c, "td.cut").await;
    assert_eq!(
        cell.attr("title").await.unwrap().as_deref(),
        Some(long.as_str()),
        "the whole value on hover"
    );
    screenshot(c, "tasks-long-identifier").await;
    c.goto(&app.url(&format!("/tasks/{}", ids[0])))
        .await
        .unwrap();
    assert!(
        text(c, "h1").await.contains(&long),
        "the whole value on the task's page"
    );
    assert!(
        overflow(c).await <= 0,
        "the task page fits the window: {} px too wide",
        overflow(c).await
    );
    screenshot(c, "task-long-identifier").await;
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn the_status_pills_count_alike_show_the_active_one_and_group_thousands() {
    let Some(b) = browser().await else { return };
    let app = TestApp::start().await;
    // 250 products on 4 routes: 1,000 tasks; archive finishes its priced ones.
    app.push_products(&TestApp::products(250, 0)).await;
    app.run_route("archive").await;
    let c = &b.client;
    sign_in(c, &app, "olga", Role::Operator).await;
    c.goto(&app.url("/tasks")).await.unwrap();
    let counts = text(c, ".counts").await;
    assert!(counts.contains("All 1,000"), "{counts}");
    let active = css(c, ".counts .count.active").await.text().await.unwrap();
    assert!(
        active.starts_with("All"),
        "no status filter: All is the active pill: {active}"
    );

    // Filtered by a status: All still counts every status (the pills' sum), the
    // filtered pill is the active one, and the pager says how many the list holds.
    c.goto(&app.url("/tasks?route=archive&status=finished"))
        .await
        .unwrap();
    let counts = text(c, ".counts").await;
    assert!(counts.contains("All 250"), "{counts}");
    let active = css(c, ".counts .count.active").await;
    assert_eq!(
        active.attr("aria-current").await.unwrap().as_deref(),
        Some("true")
    );
    let active = active.text().await.unwrap();
    assert!(active.starts_with("finished"), "{active}");
    let finished: u64 = active
        .trim_start_matches("finished")
        .trim()
        .replace(',', "")
        .parse()
        .unwrap();
    let pager = text(c, ".pager").await;
    assert!(pager.contains(&format!("{finished} tasks")), "{pager}");
    screenshot(c, "tasks-status-pills").await;
    b.client.clone().close().await.unwrap();
}
