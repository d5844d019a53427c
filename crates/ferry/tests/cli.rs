//! The `ferry` binary end to end: `serve` on a real port, the operator CLI against it,
//! and configuration errors at start.

mod common;

use common::{FERRY, Server, write_config};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const CONFIG: &str = r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = { type = "webhook" }

[[outgoing]]
id = "archive"
transformers = [{ type = "filter", condition = ".price > 0" }]
publisher = { type = "file", path = "out/archive.ndjson" }

[[routes]]
id = "archive"
incoming = ["shop"]
outgoing = "archive"

[[routes]]
id = "idle"
incoming = ["shop"]
outgoing = "archive"
disabled = true
"#;

async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    (Server::start(&config).await, dir)
}

fn ferry(server: &Server, args: &[&str]) -> Output {
    Command::new(FERRY)
        .args(args)
        .args(["--server", &server.base])
        .env("FERRY_TOKEN", &server.token)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn failing(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn operators_list_show_run_skip_and_retry_from_the_command_line() {
    let (server, _dir) = start().await;
    let products: Vec<Value> = (1..=6)
        .map(|i| json!({"sku": format!("P-{i}"), "price": if i == 3 { 0 } else { 5 }}))
        .collect();
    let r = server
        .http()
        .post(format!("{}/api/v1/webhooks/shop", server.base))
        .json(&products)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let routes = ok(ferry(&server, &["routes", "list"]));
    assert!(
        routes.contains("archive") && routes.contains("disabled"),
        "{routes}"
    );
    let run = ok(ferry(&server, &["routes", "run", "archive"]));
    assert_eq!(
        run.trim(),
        "claimed 6: finished 5, failed 0, skipped 1, retry 0"
    );
    let run = ok(ferry(&server, &["routes", "run", "idle"]));
    assert!(run.contains("disabled"), "{run}");

    let table = ok(ferry(
        &server,
        &[
            "tasks", "list", "--route", "archive", "--status", "finished",
        ],
    ));
    assert!(table.starts_with("IDENTIFIER"), "{table}");
    assert_eq!(table.matches("finished").count(), 5, "{table}");
    assert!(table.contains("5 task(s) match"), "{table}");

    let json_out = ok(ferry(
        &server,
        &[
            "tasks",
            "list",
            "--json",
            "--entity-identifier",
            "P-3",
            "--entity-identifier-match",
            "equals",
        ],
    ));
    let list: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(list["total"], 2, "archive and idle");
    let id = list["items"][0]["identifier"].as_str().unwrap().to_owned();

    let shown = ok(ferry(&server, &["tasks", "show", &id]));
    assert!(
        shown.contains(&format!("Task {id}"))
            && shown.contains("Entity data")
            && shown.contains("Import messages"),
        "{shown}"
    );

    // Without --yes and without a terminal, nothing happens.
    let err = failing(ferry(&server, &["tasks", "skip", "--route", "idle"]));
    assert!(
        err.contains("6 task(s) match; 6 can be skipped") && err.contains("--yes"),
        "{err}"
    );
    let err = failing(ferry(&server, &["tasks", "retry"]));
    assert!(err.contains("--all"), "{err}");

    let skipped = ok(ferry(
        &server,
        &[
            "tasks",
            "skip",
            "--route",
            "idle",
            "--yes",
            "--reason",
            "not needed",
        ],
    ));
    assert_eq!(
        skipped.trim(),
        "matched 6, changed 6, not eligible 0, not found 0"
    );
    // A skip by filter is a bulk job, listed with its progress.
    let jobs = ok(ferry(&server, &["tasks", "jobs"]));
    let line = jobs.lines().nth(1).unwrap_or_default();
    assert!(
        jobs.starts_with("JOB")
            && line.contains("skip")
            && line.contains("done")
            && line.contains("100%")
            && line.contains("6/6")
            && line.contains("idle"),
        "{jobs}"
    );
    let err = failing(ferry(&server, &["tasks", "jobs", "--cancel", "99"]));
    assert!(
        err.contains("404") && err.contains("no bulk job '99'"),
        "{err}"
    );
    let retried = ok(ferry(&server, &["tasks", "retry", &id, "--yes"]));
    assert_eq!(
        retried.trim(),
        "matched 1, changed 1, not eligible 0, not found 0"
    );
    let shown = ok(ferry(&server, &["tasks", "show", &id, "--json"]));
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["task"]["status"], "new");
    // The rest of the route, without following the job.
    let started = ok(ferry(
        &server,
        &["tasks", "retry", "--route", "idle", "--yes", "--no-wait"],
    ));
    assert!(
        started.starts_with("bulk job 2 started: 6 task(s) match, 5 can be acted on"),
        "{started}"
    );

    let err = failing(ferry(&server, &["tasks", "list", "--status", "done"]));
    assert!(
        err.contains("400") && err.contains("unknown status 'done'"),
        "{err}"
    );
    let err = failing(ferry(
        &server,
        &["tasks", "show", "01JDQ8M5V3W3K1C7Y2P6Z0A9BX"],
    ));
    assert!(err.contains("404"), "{err}");
}

#[tokio::test]
async fn an_admin_resets_a_since_mark_from_the_command_line() {
    let (server, dir) = start().await;
    let store = ferry_store::open(&format!(
        "sqlite://{}",
        dir.path().join("ferry.db").display()
    ))
    .await
    .expect("the server's store");
    let at = ferry_core::Timestamp::parse_rfc3339("2026-01-05T10:03:00Z").unwrap();
    store
        .set_since_mark("shop", "2026-01-05T10:00:00Z", at)
        .await
        .unwrap();

    let out = ok(ferry(&server, &["incoming", "reset-since", "shop"]));
    assert_eq!(
        out.trim(),
        "reset the since mark of shop: it was 2026-01-05T10:00:00Z (stored 2026-01-05T10:03:00.000Z); the next run starts from the configured initial"
    );
    assert_eq!(store.since_mark("shop").await.unwrap(), None);
    let out = ok(ferry(&server, &["incoming", "reset-since", "shop"]));
    assert_eq!(out.trim(), "no since mark was stored for shop");

    let err = failing(ferry(&server, &["incoming", "reset-since", "nope"]));
    assert!(
        err.contains("404")
            && err.contains(
                "no incoming configuration is called 'nope'; the incoming configurations are: shop"
            ),
        "{err}"
    );
    let err = failing(ferry(&server, &["incoming", "reset-since", "Shop/x"]));
    assert!(err.contains("'Shop/x' is not a valid identifier"), "{err}");

    store.set_since_mark("shop", "7", at).await.unwrap();
    let operator = common::create_token(&dir.path().join("ferry.toml"), "operator", "ops");
    let out = Command::new(FERRY)
        .args(["incoming", "reset-since", "shop", "--server", &server.base])
        .env("FERRY_TOKEN", &operator)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = failing(out);
    assert!(err.contains("403") && err.contains("admin role"), "{err}");
    assert!(
        store.since_mark("shop").await.unwrap().is_some(),
        "an operator's reset changes nothing"
    );
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("bad.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn an_invalid_configuration_is_refused_at_start_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = CONFIG.replace(
        r#"outgoing = "archive"
disabled"#,
        r#"outgoing = "archve"
disabled"#,
    );
    let path = write(dir.path(), &text);
    let out = Command::new(FERRY)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = failing(out);
    assert!(
        err.contains("bad.toml:24: routes[1].outgoing: unknown outgoing configuration 'archve'"),
        "{err}"
    );

    let path = write(
        dir.path(),
        &CONFIG.replace(r#"".price > 0""#, r#"".price >""#),
    );
    let err = failing(
        Command::new(FERRY)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("outgoing[0].transformers[0]") && err.contains("jq"),
        "{err}"
    );

    // A JSON Schema that is not one is found by check, with the key and what is wrong.
    std::fs::write(
        dir.path().join("product.schema.json"),
        r#"{"type": "thing"}"#,
    )
    .unwrap();
    let path = write(
        dir.path(),
        &CONFIG.replacen(
            "[[entity_schemas]]",
            "[[entity_schemas]]\njson_schema = \"product.schema.json\"",
            1,
        ),
    );
    let err = failing(
        Command::new(FERRY)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("entity_schemas[0].json_schema: product.schema.json is not a valid JSON Schema (draft 2020-12): at /type"),
        "{err}"
    );

    let out = Command::new(FERRY)
        .args(["serve", "--config", "/nonexistent/ferry.toml"])
        .output()
        .unwrap();
    assert!(failing(out).contains("cannot read the configuration file /nonexistent/ferry.toml"));

    let good = write(dir.path(), CONFIG);
    let out = ok(Command::new(FERRY)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap());
    assert!(out.contains("is valid"), "{out}");
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CONFIG);
    let out = Command::new(FERRY)
        .args(["serve", "--config"])
        .arg(&path)
        .env("FERRY_STORAGE__URL", "mysql://nowhere")
        .output()
        .unwrap();
    let err = failing(out);
    assert!(err.contains("mysql://nowhere"), "{err}");
}

#[test]
fn ferry_try_prints_each_step_and_the_request_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[storage]
url = "sqlite://ferry.db"

[[connections]]
id = "erp"
type = "http"
base_url = "https://erp.example/api/"
auth = { type = "bearer", token = "${env:ERP_TOKEN}" }

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop"
entity_schema = "product"
subscriber = { type = "webhook" }
transformers = [{ type = "jq", filter = ".price |= tonumber" }]

[[outgoing]]
id = "erp"
transformers = [{ type = "jq", filter = "{sku, price}" }]
publisher = { type = "http", connection = "erp", method = "PUT", path = "/products/{sku}" }

[[routes]]
id = "shop-to-erp"
incoming = ["shop"]
outgoing = "erp"
"#;
    std::fs::write(dir.path().join("ferry.toml"), config).unwrap();
    std::fs::write(
        dir.path().join("sample.json"),
        r#"{"sku": "A-1", "price": "12.50", "x": 1}"#,
    )
    .unwrap();
    let out = ok(Command::new(FERRY)
        .current_dir(dir.path())
        .args([
            "try",
            "--config",
            "ferry.toml",
            "--route",
            "shop-to-erp",
            "--entity",
            "sample.json",
        ])
        .env("ERP_TOKEN", "tok-very-secret")
        .output()
        .unwrap());
    assert!(
        out.contains("1. incoming: jq `.price |= tonumber` (incoming[0].transformers[0]): applied"),
        "{out}"
    );
    assert!(out.contains("task 1 of 1: entity identifier A-1"), "{out}");
    assert!(
        out.contains("PUT https://erp.example/api/products/A-1"),
        "{out}"
    );
    assert!(out.contains("authorization: ***"), "{out}");
    assert!(out.contains("\"price\": 12.50"), "{out}");
    assert!(!out.contains("tok-very-secret"), "{out}");
    assert!(
        !dir.path().join("ferry.db").exists(),
        "nothing stored, no store opened"
    );

    let err = failing(
        Command::new(FERRY)
            .current_dir(dir.path())
            .args([
                "try",
                "--config",
                "ferry.toml",
                "--route",
                "nope",
                "--entity",
                "sample.json",
            ])
            .env("ERP_TOKEN", "t")
            .output()
            .unwrap(),
    );
    assert!(err.contains("no route is called 'nope'"), "{err}");
}
