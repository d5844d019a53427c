//! `ferry users`, `ferry tokens`, the demo's bootstrap and the refusal to serve beyond
//! loopback without credentials, through the real binary.

mod common;

use common::{FERRY, Server, create_token, free_port, write_config};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
publisher = { type = "file", path = "out/archive.ndjson" }

[[routes]]
id = "archive"
incoming = ["shop"]
outgoing = "archive"
"#;

fn run(args: &[&str], config: &std::path::Path, stdin: Option<&str>) -> Output {
    let mut child = Command::new(FERRY)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("FERRY_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn tokens_made_and_revoked_on_the_command_line_take_effect_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    let server = Server::start(&config).await;
    let ci = create_token(&config, "viewer", "ci");
    assert!(ci.starts_with("ferry_") && ci.len() > 40, "{ci}");
    let http = common::client();
    let get = || {
        http.get(format!("{}/api/v1/tasks", server.base))
            .bearer_auth(&ci)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);

    let listed = stdout_ok(&run(&["tokens", "list"], &config, None));
    assert!(listed.contains("ci") && listed.contains("viewer") && !listed.contains(&ci));

    stdout_ok(&run(&["tokens", "revoke", "ci"], &config, None));
    assert_eq!(get().await.unwrap().status(), 401, "revoked at once");
    let again = run(&["tokens", "revoke", "ci"], &config, None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live token"));
    let bad_role = run(
        &["tokens", "create", "--role", "root", "--name", "x"],
        &config,
        None,
    );
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("viewer, operator or admin"));
}

#[tokio::test]
async fn users_are_added_listed_promoted_and_disabled_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    let out = run(
        &["users", "add", "alice", "--role", "viewer"],
        &config,
        Some("alice password 1\n"),
    );
    assert!(stdout_ok(&out).contains("added user alice (viewer)"));
    let short = run(
        &["users", "add", "bob", "--role", "viewer"],
        &config,
        Some("short\n"),
    );
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    let twice = run(
        &[
            "users",
            "add",
            "alice",
            "--role",
            "admin",
            "--generate-password",
        ],
        &config,
        None,
    );
    assert!(String::from_utf8_lossy(&twice.stderr).contains("exists"));
    let generated = stdout_ok(&run(
        &[
            "users",
            "add",
            "carol",
            "--role",
            "operator",
            "--generate-password",
        ],
        &config,
        None,
    ));
    assert!(generated.lines().last().unwrap().trim().len() >= 20);

    stdout_ok(&run(
        &["users", "set-role", "alice", "admin"],
        &config,
        None,
    ));
    stdout_ok(&run(&["users", "disable", "carol"], &config, None));
    let listed = stdout_ok(&run(&["users", "list"], &config, None));
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("alice"), "alice admin enabled");
    assert_eq!(line("carol"), "carol operator disabled");
    let missing = run(&["users", "disable", "nobody"], &config, None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user is called 'nobody'"));
}

#[test]
fn serving_beyond_loopback_without_any_user_or_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CONFIG);
    let listen = format!("0.0.0.0:{}", free_port());
    let out = Command::new(FERRY)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &listen])
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no user or API token exists") && err.contains("ferry users add"),
        "{err}"
    );

    // With a token, the same command serves.
    create_token(&config, "admin", "ops");
    let mut child = Command::new(FERRY)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &listen])
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let port = listen.rsplit(':').next().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
        assert!(Instant::now() < deadline, "ferry serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn the_demo_makes_an_admin_and_an_operator_token_and_prints_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    // Its output goes to a file: a closed pipe would end the demo at its next line.
    let log_path = dir.path().join("demo.out");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(FERRY)
        .args(["demo", "--listen", &listen, "--dir"])
        .arg(dir.path().join("demo"))
        .env("FERRY_LOG", "warn")
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("Then try") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the demo printed no credentials: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = text
        .split("export FERRY_TOKEN=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token printed: {text}"))
        .to_owned();
    let password = text
        .split("sign in as admin with the password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no password printed: {text}"))
        .to_owned();
    assert!(password.len() >= 10);
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match common::client()
            .get(format!("{base}/api/v1/routes"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(r) => break r.status(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the demo did not answer: {e}"),
        }
    };
    assert_eq!(status, 200);
    let anonymous = common::client()
        .get(format!("{base}/api/v1/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "the demo is not open to anyone");

    // The ERP route shows its requests in flight and rate limit, and keeps the id the
    // ERP gave each product it took.
    let get = |path: String| {
        let token = token.clone();
        async move {
            common::client()
                .get(path)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let route = get(format!("{base}/api/v1/routes/catalog-to-erp")).await;
    assert_eq!(route["delivery"]["max_in_flight"], 4, "{route}");
    assert_eq!(route["delivery"]["rate_limit"], "20/s", "{route}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = loop {
        let list = get(format!(
            "{base}/api/v1/tasks?route=catalog-to-erp&status=finished&per_page=1"
        ))
        .await;
        if let Some(id) = list["items"][0]["identifier"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no catalog-to-erp task finished in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let task = get(format!("{base}/api/v1/tasks/{finished}")).await;
    assert!(
        task["response"]
            .as_str()
            .is_some_and(|r| r.starts_with("ERP-")),
        "{task}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
