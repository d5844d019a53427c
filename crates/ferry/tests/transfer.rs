//! `ferry export` from SQLite and `ferry import` into PostgreSQL (and into a second
//! SQLite file when PostgreSQL is missing): every task arrives with its logs, attempts
//! and operator actions; a second import creates nothing.

mod common;

use common::FERRY;
use ferry_core::filter::{Accept, TaskQuery};
use ferry_core::{Phase, Status};
use ferry_store::Store;
use sqlx::Connection;
use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (String, String) {
    let out = Command::new(FERRY).args(args).output().expect("run ferry");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "ferry {args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

async fn all(store: &dyn Store) -> Vec<ferry_core::Task> {
    let mut out = Vec::new();
    let mut page = 1;
    loop {
        let q = TaskQuery::parse(
            [
                ("per_page", "500"),
                ("order", "asc"),
                ("page", &page.to_string()),
            ],
            Accept::All,
        )
        .unwrap();
        let list = store.list_tasks(&q).await.unwrap();
        if list.items.is_empty() {
            return out;
        }
        for t in list.items {
            out.push(store.get_task(&t.id).await.unwrap().unwrap());
        }
        page += 1;
    }
}

/// A storage URL for the target: a fresh PostgreSQL schema, or a SQLite file.
async fn target_url(dir: &Path) -> (String, Option<(String, String)>) {
    let base = std::env::var("FERRY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match sqlx::PgConnection::connect(&base).await {
        Ok(mut c) => {
            let schema = format!("ferry_transfer_{}", std::process::id());
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            )))
            .execute(&mut c)
            .await
            .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            (
                format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                Some((base, schema)),
            )
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is not reachable at {base} ({e})");
            }
            eprintln!("SKIPPED the PostgreSQL target: {e}; importing into SQLite instead");
            (
                format!("sqlite://{}", dir.join("target.db").display()),
                None,
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_moves_from_sqlite_to_postgresql_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    run(&["demo", "--no-serve", "--dir", demo.to_str().unwrap()]);
    let source_config = demo.join("ferry.toml");
    let dump = dir.path().join("tasks.ndjson");
    let (_, said) = run(&[
        "export",
        "--config",
        source_config.to_str().unwrap(),
        "--output",
        dump.to_str().unwrap(),
    ]);
    assert!(said.contains("exported"), "{said}");

    let (url, cleanup) = target_url(dir.path()).await;
    let text = std::fs::read_to_string(&source_config).unwrap();
    let source_url = text
        .lines()
        .find(|l| l.starts_with("url = \"sqlite"))
        .unwrap()
        .to_owned();
    // Next to the demo's own, where its secret file and CA are found.
    let target_config = demo.join("target.toml");
    std::fs::write(
        &target_config,
        text.replace(&source_url, &format!("url = \"{url}\"")),
    )
    .unwrap();
    let (_, said) = run(&[
        "import",
        "--config",
        target_config.to_str().unwrap(),
        "--input",
        dump.to_str().unwrap(),
    ]);
    let source = ferry_store::open(&format!("sqlite://{}", demo.join("ferry.db").display()))
        .await
        .unwrap();
    let target = ferry_store::open(&url).await.unwrap();
    let before = all(&*source).await;
    assert!(
        said.contains(&format!("imported {n} of {n} tasks", n = before.len())),
        "{said}"
    );
    let after = all(&*target).await;
    assert_eq!(before.len(), after.len());
    let mut statuses = std::collections::BTreeSet::new();
    for (b, a) in before.iter().zip(&after) {
        statuses.insert(b.summary.status);
        let id = &b.summary.id;
        assert_eq!(a.summary.id, *id);
        let mut expected = b.clone();
        if b.summary.status == Status::Processing {
            expected.summary.status = Status::New;
        }
        assert_eq!(*a, expected, "task {id}");
        for phase in [Phase::Import, Phase::Export] {
            let mb = source.messages(id, phase).await.unwrap().unwrap();
            let ma = target.messages(id, phase).await.unwrap().unwrap();
            let extra =
                usize::from(phase == Phase::Export && b.summary.status == Status::Processing);
            assert_eq!(ma.len(), mb.len() + extra, "{id} {phase:?}");
            assert_eq!(ma[..mb.len()], mb[..], "{id} {phase:?}");
        }
        assert_eq!(
            source.attempts(id).await.unwrap(),
            target.attempts(id).await.unwrap(),
            "{id}"
        );
        let (xa, xb) = (
            target.task_actions(id).await.unwrap(),
            source.task_actions(id).await.unwrap(),
        );
        assert_eq!(xa.len(), xb.len(), "{id}");
        for (a, b) in xa.iter().zip(&xb) {
            assert_eq!(
                (&a.actor, &a.action, &a.reason, a.at, &a.target),
                (&b.actor, &b.action, &b.reason, b.at, &b.target)
            );
        }
    }
    // `demo --no-serve` makes every status but `retry` (its ERP runs once the server is up).
    assert!(
        statuses.len() >= 5 && statuses.contains(&Status::Processing),
        "{statuses:?}"
    );

    // Importing again changes nothing.
    let (_, said) = run(&[
        "import",
        "--config",
        target_config.to_str().unwrap(),
        "--input",
        dump.to_str().unwrap(),
    ]);
    assert!(
        said.contains(&format!("imported 0 of {}", before.len())),
        "{said}"
    );
    assert_eq!(all(&*target).await.len(), before.len());

    if let Some((base, schema)) = cleanup {
        let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
}
