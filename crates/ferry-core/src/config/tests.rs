use super::*;

const REFERENCE: &str = r#"
[server]
listen = "127.0.0.1:8080"

[storage]
url = "sqlite://ferry.db"

[retention]
max_age = "30d"
max_tasks = 500000

[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "shop-webhook"
entity_schema = "product"
subscriber = { type = "webhook" }
transformers = [
  { type = "jq", filter = ".price |= tonumber" },
  { type = "filter", condition = ".active != false" },
]

[[incoming]]
id = "catalog-files"
entity_schema = "product"
subscriber = { type = "file", path = "inbox/*.ndjson", format = "ndjson" }

[[incoming]]
id = "pim"
entity_schema = "product"
subscriber = { type = "http", url = "http://127.0.0.1:9000/products", items = ".data[]" }

[[outgoing]]
id = "erp"
transformers = [{ type = "jq", filter = "{sku, name, price}" }]
publisher = { type = "http", method = "POST", url = "http://127.0.0.1:9000/erp/products" }

[[outgoing]]
id = "archive"
transformers = [{ type = "filter", condition = ".price > 0" }]
publisher = { type = "file", path = "out/products.ndjson" }

[[routes]]
id = "shop-to-erp"
name = "Shop to ERP"
incoming = ["shop-webhook", "catalog-files"]
outgoing = "erp"
transformers = []
batch_size = 100
realtime = false
disabled = false
schedule = { incoming = "*/5 * * * *", outgoing = "* * * * *" }
retry = { enabled = true, max_attempts = 3, interval = "10m", backoff = "fixed", on_http_status = [429, 503], on_message = ["timeout"] }
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn problems(text: &str) -> Vec<Problem> {
    load("ferry.toml", text, no_env()).unwrap_err().problems
}

#[test]
fn the_reference_configuration_loads() {
    let c = load("ferry.toml", REFERENCE, no_env()).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.retention.max_tasks, Some(500_000));
    assert_eq!(c.incoming.len(), 3);
    let route = c.route("shop-to-erp").unwrap();
    assert_eq!(route.name, "Shop to ERP");
    assert_eq!(route.retry.max_attempts, 3);
    assert_eq!(route.retry.on_http_status, [429, 503]);
    assert_eq!(c.routes_using("catalog-files").count(), 1);
    assert_eq!(
        c.incoming[0].transformers[1].at.key,
        "incoming[0].transformers[1]"
    );
    assert_eq!(c.incoming[0].transformers[1].at.line, Some(22));
}

#[test]
fn only_identifiers_and_references_are_required() {
    let c = load(
        "f.toml",
        r#"
[[entity_schemas]]
id = "p"
[[incoming]]
id = "in"
entity_schema = "p"
subscriber = { type = "webhook" }
[[outgoing]]
id = "out"
publisher = { type = "file", path = "out.ndjson" }
[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#,
        no_env(),
    )
    .unwrap();
    let r = &c.routes[0];
    assert_eq!(
        (r.name.as_str(), r.batch_size, r.realtime, r.disabled),
        ("r", 100, false, false)
    );
    assert!(!r.retry.enabled);
    assert_eq!(c.server.listen, DEFAULT_LISTEN);
    assert_eq!(c.storage.url, DEFAULT_STORAGE_URL);
    assert_eq!(c.retention.max_age, Duration::from_secs(30 * 86_400));
}

#[test]
fn an_unknown_reference_is_reported_with_its_line_and_key() {
    let text = REFERENCE.replace(r#"outgoing = "erp""#, r#"outgoing = "erpp""#);
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "routes[0].outgoing");
    assert_eq!(p[0].line, Some(49));
    assert!(
        p[0].message
            .contains("unknown outgoing configuration 'erpp'")
    );
    assert!(p[0].message.contains("erp, archive"));
}

#[test]
fn a_misspelt_key_is_refused_with_its_line() {
    let text = REFERENCE.replace("batch_size = 100", "batchsize = 100");
    let err = load("ferry.toml", &text, no_env()).unwrap_err();
    assert_eq!(err.problems[0].line, Some(51));
    assert!(err.problems[0].message.contains("batchsize"), "{err}");
    assert!(err.to_string().starts_with("ferry.toml is not a valid"));
}

#[test]
fn several_problems_are_reported_together() {
    let text = REFERENCE
        .replace("max_attempts = 3", "max_attempts = 11")
        .replace("batch_size = 100", "batch_size = 0")
        .replace(r#"id = "erp""#, r#"id = "ERP""#);
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert!(
        keys.contains(&"routes[0].retry.max_attempts".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"routes[0].batch_size".to_owned()),
        "{keys:?}"
    );
    assert!(keys.contains(&"outgoing[0].id".to_owned()), "{keys:?}");
}

#[test]
fn duplicate_ids_are_refused() {
    let text = REFERENCE.replace(r#"id = "archive""#, r#"id = "erp""#);
    let p = problems(&text);
    assert!(
        p.iter().any(|p| p.message.contains("defined twice")),
        "{p:?}"
    );
}

#[test]
fn bad_durations_and_cron_are_refused() {
    let text = REFERENCE.replace(r#"interval = "10m""#, r#"interval = "7h""#);
    assert_eq!(problems(&text)[0].key, "routes[0].retry.interval");
    let text = REFERENCE.replace(r#"max_age = "30d""#, r#"max_age = "30 days""#);
    assert_eq!(problems(&text)[0].key, "retention.max_age");
    let text = REFERENCE.replace(r#"outgoing = "* * * * *""#, r#"outgoing = "every minute""#);
    assert_eq!(problems(&text)[0].key, "routes[0].schedule.outgoing");
}

#[test]
fn an_unknown_transformer_type_is_refused() {
    let text = REFERENCE.replace(
        r#"{ type = "jq", filter = "{sku"#,
        r#"{ type = "xslt", filter = "{sku"#,
    );
    let p = problems(&text);
    assert!(p[0].message.contains("xslt"), "{p:?}");
}

#[test]
fn environment_variables_override_the_file() {
    let env = vec![
        ("FERRY_SERVER__LISTEN".to_owned(), "0.0.0.0:9999".to_owned()),
        (
            "FERRY_STORAGE__URL".to_owned(),
            "sqlite:///tmp/x.db".to_owned(),
        ),
        ("FERRY_RETENTION__MAX_TASKS".to_owned(), "10".to_owned()),
        ("HOME".to_owned(), "/root".to_owned()),
    ];
    let c = load("ferry.toml", REFERENCE, env).unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:9999");
    assert_eq!(c.storage.url, "sqlite:///tmp/x.db");
    assert_eq!(c.retention.max_tasks, Some(10));
}

#[test]
fn a_bad_environment_override_names_the_variable() {
    let env = vec![("FERRY_SERVER__LISTN".to_owned(), "x".to_owned())];
    let p = load("ferry.toml", REFERENCE, env).unwrap_err().problems;
    assert_eq!(p[0].key, "environment variable FERRY_SERVER__LISTN");
    let env = vec![("FERRY_RETENTION__MAX_TASKS".to_owned(), "many".to_owned())];
    let p = load("ferry.toml", REFERENCE, env).unwrap_err().problems;
    assert_eq!(p[0].key, "environment variable FERRY_RETENTION__MAX_TASKS");
}

#[test]
fn workers_have_defaults_and_can_be_tuned_from_file_or_environment() {
    let c = load("ferry.toml", REFERENCE, no_env()).unwrap();
    assert_eq!(c.workers, WorkersConfig::default());
    let text = format!("{REFERENCE}\n[workers]\nconcurrency = 8\nlease = \"30s\"\n");
    let env = vec![(
        "FERRY_WORKERS__POLL_INTERVAL".to_owned(),
        "250ms".to_owned(),
    )];
    let c = load("ferry.toml", &text, env).unwrap();
    assert_eq!(c.workers.concurrency, 8);
    assert_eq!(c.workers.lease, Duration::from_secs(30));
    assert_eq!(c.workers.poll_interval, Duration::from_millis(250));
    let bad = format!("{REFERENCE}\n[workers]\nconcurrency = 0\nlease = \"soon\"\n");
    let keys: Vec<String> = problems(&bad).into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["workers.concurrency", "workers.lease"]);
}

#[test]
fn schedules_are_parsed_cron_expressions() {
    let c = load("ferry.toml", REFERENCE, no_env()).unwrap();
    let s = &c.routes[0].schedule;
    assert_eq!(s.incoming.as_ref().unwrap().expression(), "*/5 * * * *");
    assert_eq!(s.outgoing.as_ref().unwrap().expression(), "* * * * *");
}

#[test]
fn a_webhook_secret_never_shows_in_debug_output() {
    let text = REFERENCE.replace(
        r#"subscriber = { type = "webhook" }"#,
        r#"subscriber = { type = "webhook", secret = "hunter2" }"#,
    );
    let c = load("ferry.toml", &text, no_env()).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "the secret shows in Debug");
}

fn with_connection(connection: &str) -> String {
    format!("{REFERENCE}\n[[connections]]\n{connection}\n")
}

#[test]
fn secrets_come_from_the_environment_and_from_files_and_never_show_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("erp-password"), "pa55-from-file\n").unwrap();
    let text = with_connection(
        r#"id = "erp"
type = "http"
base_url = "https://erp.example/"
headers = { authorization = "Bearer ${env:ERP_TOKEN}" }
auth = { type = "basic", username = "ferry", password = "${file:erp-password}" }"#,
    );
    let file = dir.path().join("ferry.toml").display().to_string();
    let env = vec![("ERP_TOKEN".to_owned(), "tok-from-env".to_owned())];
    let c = load(&file, &text, env).unwrap();
    let spec = &c.connection("erp").unwrap().spec;
    assert_eq!(spec.kind, "http");
    assert_eq!(
        spec.settings["headers"]["authorization"].as_str(),
        Some("Bearer tok-from-env")
    );
    assert_eq!(
        spec.settings["auth"]["password"].as_str(),
        Some("pa55-from-file")
    );
    let mut secrets = c.secrets().to_vec();
    secrets.sort();
    assert_eq!(secrets, ["pa55-from-file", "tok-from-env"]);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("pa55") && !shown.contains("tok-from"),
        "a secret shows in Debug"
    );
    assert_eq!(
        redact("GET failed: tok-from-env refused", c.secrets()),
        "GET failed: *** refused"
    );
}

#[test]
fn a_missing_secret_is_a_problem_naming_the_key_and_the_variable_or_file() {
    let text = with_connection(
        r#"id = "erp"
type = "http"
base_url = "https://erp.example/"
auth = { type = "bearer", token = "${env:NOPE_TOKEN}" }
headers = { x-key = "${file:secrets/none}" }"#,
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    let token = p
        .iter()
        .find(|p| p.key == "connections[0].auth.token")
        .expect("token");
    assert!(token.message.contains("NOPE_TOKEN"), "{}", token.message);
    assert_eq!(token.line, Some(line_with(&text, "NOPE_TOKEN")));
    let file = p
        .iter()
        .find(|p| p.key == "connections[0].headers.x-key")
        .expect("file");
    assert!(file.message.contains("secrets/none"), "{}", file.message);
}

#[test]
fn a_connection_needs_a_unique_id_and_a_type() {
    let text = with_connection("type = \"http\"\nbase_url = \"https://a.example/\"");
    assert_eq!(problems(&text)[0].key, "connections[0].id");
    let text = with_connection("id = \"a\"\nbase_url = \"https://a.example/\"");
    assert_eq!(problems(&text)[0].key, "connections[0].type");
    let twice = format!(
        "{}\n[[connections]]\nid = \"a\"\ntype = \"http\"\n",
        with_connection("id = \"a\"\ntype = \"http\"")
    );
    assert!(problems(&twice)[0].message.contains("defined twice"));
}

#[test]
fn a_connector_key_is_found_on_its_line() {
    let c = load("ferry.toml", REFERENCE, no_env()).unwrap();
    let spec = &c.outgoing[0].publisher;
    assert_eq!(spec.kind, "http");
    assert_eq!(spec.key, "outgoing[0].publisher");
    let p = spec.problem("url", "x");
    assert_eq!(p.key, "outgoing[0].publisher.url");
    assert_eq!(p.line, Some(line_with(REFERENCE, "erp/products")));
}

fn line_with(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}
