//! The `map` transformer end to end: a table in the configuration or a CSV file beside
//! it, on the way in (before the task exists) and on the way out (before publishing).

mod common;

use common::{Harness, Target};
use ferry_core::Status;
use serde_json::{Value, json};

fn config(url: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "in"
entity_schema = "product"
subscriber = {{ type = "webhook" }}
transformers = [
  {{ type = "map", field = ".country", table = {{ NL = "Netherlands", BE = "Belgium" }} }},
]

[[outgoing]]
id = "out"
transformers = [
  {{ type = "map", field = ".unit", table_file = "maps/units.csv", default = "fail" }},
]
publisher = {{ type = "http", method = "PUT", url = "{url}/p/{{sku}}" }}

[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
"#
    )
}

#[tokio::test]
async fn values_are_mapped_on_the_way_in_and_out_and_an_unknown_one_fails_its_task() {
    let t = Target::ok().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("maps")).unwrap();
    std::fs::write(
        dir.path().join("maps/units.csv"),
        "unit,erp_unit\npcs,PCE\nkg,KGM\n",
    )
    .unwrap();
    let h = Harness::with_dir(&config(&t.url), dir, "w").await;
    let ids = h
        .push(
            "in",
            vec![
                json!({"sku": "A", "country": "NL", "unit": "pcs"}),
                json!({"sku": "B", "country": "DE", "unit": "kg"}),
                json!({"sku": "C", "country": "BE", "unit": "box"}),
            ],
        )
        .await;
    // On the way in: stored mapped; a country the table lacks is kept.
    let stored: Vec<Value> = {
        let mut out = Vec::new();
        for id in &ids {
            out.push(h.task(id).await.entity_data["country"].clone());
        }
        out
    };
    assert_eq!(
        stored,
        [json!("Netherlands"), json!("DE"), json!("Belgium")]
    );

    let summary = h.engine.drain_route("r").await.unwrap();
    assert_eq!((summary.finished, summary.failed), (2, 1), "{summary:?}");
    let sent: Vec<Value> = t
        .requests()
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(sent[0]["unit"], "PCE");
    assert_eq!(sent[1]["unit"], "KGM");
    assert_eq!(h.task(&ids[2]).await.summary.status, Status::Failed);
    let log = h.export_log(&ids[2]).await.join("\n");
    assert!(
        log.contains("the value \"box\" of .unit is not in the table (default = \"fail\")"),
        "{log}"
    );
}

#[test]
fn a_map_needs_exactly_one_table_and_a_readable_file() {
    let text = config("http://127.0.0.1:9").replace(
        r#"table = { NL = "Netherlands", BE = "Belgium" }"#,
        r#"table = { NL = "Netherlands" }, table_file = "maps/c.csv""#,
    );
    let e = ferry_core::config::load("ferry.toml", &text, Vec::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains("give either table or table_file, not both"),
        "{e}"
    );
    let config =
        ferry_core::config::load("ferry.toml", &config("http://127.0.0.1:9"), Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = ferry_engine::Prepared::new(config, dir.path(), "ferry.toml")
        .err()
        .unwrap();
    assert_eq!(e.problems[0].key, "outgoing[0].transformers[0]");
    assert!(
        e.problems[0]
            .message
            .contains("cannot read table_file maps/units.csv"),
        "{}",
        e.problems[0].message
    );
}
