//! Each connector kind checks its own typed settings when the configuration is read
//! (`ferry check`), without touching the network: every problem with its file, line
//! and key.

use ferry_core::config::{ConfigError, Problem, load};
use ferry_engine::Prepared;
use std::path::Path;

fn config(subscriber: &str, publisher: &str, connections: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]
{connections}
[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {subscriber}

[[outgoing]]
id = "out"
publisher = {publisher}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#
    )
}

fn prepare(text: &str) -> Result<Prepared, ConfigError> {
    prepare_in("ferry.toml", text)
}

fn prepare_in(file: &str, text: &str) -> Result<Prepared, ConfigError> {
    let config = load(file, text, Vec::new())?;
    let folder = Path::new(file).parent().unwrap_or(Path::new(""));
    Prepared::new(config, folder, file)
}

fn problems(text: &str) -> Vec<Problem> {
    match prepare(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e.problems,
    }
}

fn line_with(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

const WEBHOOK: &str = r#"{ type = "webhook" }"#;
const FILE_OUT: &str = r#"{ type = "file", path = "out.ndjson" }"#;

#[test]
fn an_unknown_kind_names_the_kinds_there_are_for_that_role() {
    let p = problems(&config(r#"{ type = "ftp" }"#, FILE_OUT, ""));
    assert_eq!(p[0].key, "incoming[0].subscriber.type");
    assert!(
        p[0].message.contains("'ftp' is not a subscriber kind"),
        "{}",
        p[0].message
    );
    assert!(
        p[0].message.contains("file, http, webhook"),
        "{}",
        p[0].message
    );
    let p = problems(&config(WEBHOOK, r#"{ type = "webhook" }"#, ""));
    assert!(
        p[0].message.contains("use one of: file, http"),
        "{}",
        p[0].message
    );
}

#[test]
fn a_wrong_setting_is_reported_with_its_key_and_line() {
    let text = config(
        WEBHOOK,
        "{ type = \"http\", url = \"https://erp.example/p\",\n  method = \"FETCH ME\" }",
        "",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "outgoing[0].publisher.method");
    assert_eq!(p[0].line, Some(line_with(&text, "FETCH ME")));
    assert!(
        p[0].message.contains("not an HTTP method"),
        "{}",
        p[0].message
    );

    let text = config(
        WEBHOOK,
        "{ type = \"http\", url = \"https://erp.example/p\",\n  timeout = \"soon\" }",
        "",
    );
    let p = problems(&text);
    assert_eq!(p[0].key, "outgoing[0].publisher.timeout");
    assert_eq!(p[0].line, Some(line_with(&text, "soon")));

    let text = config(r#"{ type = "webhook", secrett = "x" }"#, FILE_OUT, "");
    let p = problems(&text);
    assert_eq!(p[0].key, "incoming[0].subscriber.secrett");
    assert!(p[0].message.contains("unknown field"), "{}", p[0].message);
}

#[test]
fn problems_of_every_connector_are_reported_together() {
    let text = config(
        r#"{ type = "http", url = "ftp://pim.example/", items = ".data[" }"#,
        r#"{ type = "http", connection = "nope", path = "p" }"#,
        "\n[[connections]]\nid = \"erp\"\ntype = \"http\"\nbase_url = \"https://erp.example/\"\nauth = { type = \"api_key\", value = \"k\" }\n",
    );
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert!(keys.contains(&"connections[0].auth".to_owned()), "{keys:?}");
    assert!(
        keys.contains(&"incoming[0].subscriber.url".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"incoming[0].subscriber.items".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"outgoing[0].publisher.connection".to_owned()),
        "{keys:?}"
    );
}

#[test]
fn a_connection_and_its_delivery_settings_are_checked() {
    let connection = |extra: &str| {
        config(
            WEBHOOK,
            r#"{ type = "http", connection = "erp", path = "products/{sku}" }"#,
            &format!(
                "\n[[connections]]\nid = \"erp\"\ntype = \"http\"\nbase_url = \"https://erp.example/v1\"\n{extra}\n"
            ),
        )
    };
    let ok = prepare(&connection(
        "max_in_flight = 16\nrate_limit = \"50/s\"\ncircuit_breaker = { failures = 20, cool_down = \"1m\" }",
    ))
    .unwrap();
    assert!(ok.warnings().is_empty(), "{:?}", ok.warnings());
    for (extra, key) in [
        ("max_in_flight = 0", "connections[0].max_in_flight"),
        ("max_in_flight = \"lots\"", "connections[0].max_in_flight"),
        ("rate_limit = \"fast\"", "connections[0].rate_limit"),
        ("rate_limit = \"0/s\"", "connections[0].rate_limit"),
        (
            "circuit_breaker = { failures = 0, cool_down = \"1m\" }",
            "connections[0].circuit_breaker.failures",
        ),
        (
            "tls = { ca_file = \"missing.pem\" }",
            "connections[0].tls.ca_file",
        ),
        (
            "tls = { client_cert = \"c.pem\" }",
            "connections[0].tls.client_key",
        ),
        ("auth = { type = \"oauth\" }", "connections[0].auth.type"),
        (
            "headers = { \"bad header\" = \"x\" }",
            "connections[0].headers.bad header",
        ),
    ] {
        let p = problems(&connection(extra));
        assert_eq!(p.len(), 1, "only the connection's problem: {p:?}");
        assert_eq!(p[0].key, key, "{extra}: {p:?}");
    }
    let p = problems(&config(WEBHOOK, r#"{ type = "http", path = "p" }"#, ""));
    assert!(p[0].message.contains("connection"), "{}", p[0].message);
}

#[test]
fn a_full_url_through_a_connection_must_stay_on_its_origin() {
    let text = config(
        WEBHOOK,
        r#"{ type = "http", connection = "erp", url = "https://elsewhere.example/p" }"#,
        "\n[[connections]]\nid = \"erp\"\ntype = \"http\"\nbase_url = \"https://erp.example/\"\n",
    );
    let p = problems(&text);
    assert_eq!(p[0].key, "outgoing[0].publisher.url");
    assert!(
        p[0].message.contains("https://erp.example"),
        "{}",
        p[0].message
    );
}

// ------------------------------------------------------------------ file publisher paths

fn with_file_out(path: &str, extra: &str) -> String {
    config(
        WEBHOOK,
        &format!(r#"{{ type = "file", path = "{path}"{extra} }}"#),
        "",
    )
}

#[test]
fn a_file_publisher_path_that_leaves_the_folder_is_refused_with_its_line_and_key() {
    for path in ["../../etc/x", "out/../../x.ndjson", "/etc/x", "./../x"] {
        let text = with_file_out(path, "");
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{path}: {p:?}");
        assert_eq!(p[0].key, "outgoing[0].publisher.path");
        assert_eq!(p[0].line, Some(line_with(&text, path)), "{path}");
        assert!(
            p[0].message.contains(path) && p[0].message.contains("allow_outside = true"),
            "{}",
            p[0].message
        );
    }
}

#[test]
fn a_path_resolved_lexically_inside_the_folder_loads_without_a_warning() {
    let inside = prepare(&with_file_out("out/../archive/./x.ndjson", "")).unwrap();
    assert!(inside.warnings().is_empty(), "{:?}", inside.warnings());
    // An absolute path is judged against the configuration file's own folder.
    let absolute = prepare_in(
        "/srv/ferry/ferry.toml",
        &with_file_out("/srv/ferry/out/x.ndjson", ""),
    );
    assert!(absolute.unwrap().warnings().is_empty());
    let climbing = prepare_in(
        "/srv/ferry/ferry.toml",
        &with_file_out("/srv/ferry/../x.ndjson", ""),
    );
    assert_eq!(
        climbing.err().unwrap().problems[0].key,
        "outgoing[0].publisher.path"
    );
}

#[test]
fn allow_outside_lets_a_path_out_of_the_folder_load_with_a_warning() {
    let text = with_file_out("../shared/x.ndjson", ", allow_outside = true");
    let prepared = prepare(&text).unwrap();
    let w = prepared.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "outgoing[0].publisher.path");
    assert_eq!(w[0].line, Some(line_with(&text, "../shared")));
    assert!(
        w[0].message.contains("allow_outside = true"),
        "{}",
        w[0].message
    );
}
