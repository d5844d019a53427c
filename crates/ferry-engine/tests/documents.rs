//! XML and CSV in and out, on real files and loopback servers: the file subscriber
//! (XML, and CSV in Windows-1252 with semicolons), the http subscriber (XML and CSV
//! pages), the file publisher (`ndjson`, `json`, `csv`, `xml`) and the http publisher
//! (`format = "xml"`). A broken document creates nothing and says where it breaks.

mod common;

use axum::http::StatusCode;
use common::{Harness, Target};
use serde_json::json;
use std::time::Duration;

fn config(url: &str) -> String {
    format!(
        r#"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]

[[incoming]]
id = "xml-files"
entity_schema = "product"
subscriber = {{ type = "file", path = "inbox/*.xml", format = "xml", xml = {{ force_array = ["products.product.tag"] }} }}

[[incoming]]
id = "csv-files"
entity_schema = "product"
subscriber = {{ type = "file", path = "inbox/*.csv", format = "csv", csv = {{ delimiter = ";", encoding = "windows-1252" }} }}

[[incoming]]
id = "xml-pages"
entity_schema = "product"
subscriber = {{ type = "http", url = "{url}/feed.xml", format = "xml", items = ".feed.item[]" }}

[[incoming]]
id = "csv-pages"
entity_schema = "product"
subscriber = {{ type = "http", url = "{url}/feed.csv", format = "csv" }}

[[incoming]]
id = "hook"
entity_schema = "product"
subscriber = {{ type = "webhook" }}

[[outgoing]]
id = "ndjson"
publisher = {{ type = "file", path = "out/p.ndjson" }}

[[outgoing]]
id = "json"
publisher = {{ type = "file", path = "out/p.json", format = "json" }}

[[outgoing]]
id = "csv"
publisher = {{ type = "file", path = "out/p.csv", format = "csv", csv = {{ columns = ["sku", "name", "price", "tags"] }} }}

[[outgoing]]
id = "xml"
publisher = {{ type = "file", path = "out/p.xml", format = "xml", xml = {{ root = "products", item = "product" }} }}

[[outgoing]]
id = "erp"
publisher = {{ type = "http", method = "PUT", url = "{url}/products/{{sku}}", format = "xml", body = '{{product: {{"@sku": .sku, name, price, tag: .tags}}}}' }}

[[routes]]
id = "to-ndjson"
incoming = ["hook"]
outgoing = "ndjson"
batch_size = 1

[[routes]]
id = "to-json"
incoming = ["hook"]
outgoing = "json"
batch_size = 1

[[routes]]
id = "to-csv"
incoming = ["hook"]
outgoing = "csv"
batch_size = 1

[[routes]]
id = "to-xml"
incoming = ["hook"]
outgoing = "xml"
batch_size = 1

[[routes]]
id = "to-erp"
incoming = ["hook"]
outgoing = "erp"

[[routes]]
id = "from-documents"
incoming = ["xml-files", "csv-files", "xml-pages", "csv-pages"]
outgoing = "ndjson"
"#
    )
}

fn inbox(h: &Harness, name: &str, bytes: &[u8]) {
    let dir = h.dir.path().join("inbox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

async fn entities(h: &Harness, route: &str) -> Vec<serde_json::Value> {
    let q = ferry_core::filter::TaskQuery::parse(
        [("route", route), ("order", "asc"), ("per_page", "100")],
        ferry_core::filter::Accept::All,
    )
    .unwrap();
    let list = h.engine.store().list_tasks(&q).await.unwrap();
    let mut out = Vec::new();
    for t in list.items {
        out.push(h.task(&t.id).await.entity_data);
    }
    out
}

#[tokio::test]
async fn xml_and_csv_files_become_tasks_and_a_broken_file_creates_nothing() {
    let h = Harness::new(&config("http://127.0.0.1:9")).await;
    inbox(
        &h,
        "a.xml",
        br#"<?xml version="1.0" encoding="ISO-8859-1"?>
<products>
  <product id="1"><sku>A</sku><name>Caf&#233; cr&#232;me</name><tag>bio</tag></product>
  <product id="2"><sku>B</sku><name>Tea</name></product>
</products>"#,
    );
    inbox(
        &h,
        "b.xml",
        b"<products>\n  <product><sku>C</sku>\n</products>\n",
    );
    inbox(&h, "c.csv", b"sku;name;price\nD;Caf\xe9 \x80;1,50\n");
    let xml = h.engine.run_incoming("xml-files").await.unwrap();
    assert_eq!(xml.created, 2, "{xml:?}");
    assert_eq!(xml.errors.len(), 1, "{:?}", xml.errors);
    assert!(
        xml.errors[0].contains("b.xml: line 3, column 1: </products> closes <product>"),
        "{:?}",
        xml.errors
    );
    assert!(
        h.dir.path().join("inbox/b.xml").exists(),
        "the broken file stays"
    );
    let csv = h.engine.run_incoming("csv-files").await.unwrap();
    assert_eq!((csv.created, csv.errors.len()), (1, 0), "{csv:?}");
    assert_eq!(
        entities(&h, "from-documents").await,
        [
            json!({"@id": "1", "sku": "A", "name": "Café crème", "tag": ["bio"]}),
            json!({"@id": "2", "sku": "B", "name": "Tea"}),
            json!({"sku": "D", "name": "Café €", "price": "1,50"}),
        ]
    );
}

#[tokio::test]
async fn xml_and_csv_pages_of_an_http_api_become_tasks() {
    let t = Target::start_with_headers(&[], |_, r| {
        let body = if r.path.starts_with("/feed.xml") {
            "<feed><item><sku>X1</sku></item><item><sku>X2</sku><price>2.50</price></item></feed>"
        } else {
            "sku,name\nC1,\"Mug, big\"\nC2,Cup\n"
        };
        (StatusCode::OK, body.into(), Duration::ZERO)
    })
    .await;
    let h = Harness::new(&config(&t.url)).await;
    let run = h.engine.run_incoming("xml-pages").await.unwrap();
    assert_eq!((run.created, run.errors.len()), (2, 0), "{run:?}");
    let run = h.engine.run_incoming("csv-pages").await.unwrap();
    assert_eq!((run.created, run.errors.len()), (2, 0), "{run:?}");
    assert_eq!(
        entities(&h, "from-documents").await,
        [
            json!({"sku": "X1"}),
            json!({"sku": "X2", "price": "2.50"}),
            json!({"sku": "C1", "name": "Mug, big"}),
            json!({"sku": "C2", "name": "Cup"}),
        ]
    );
}

#[tokio::test]
async fn the_file_publisher_writes_ndjson_json_csv_and_xml_documents_whole_after_each_task() {
    let t = Target::ok().await;
    let h = Harness::new(&config(&t.url)).await;
    h.push(
        "hook",
        vec![
            json!({"sku": "A", "name": "Café, \"crème\"", "price": 12.50, "tags": ["bio", "fair"]}),
            json!({"sku": "B & C", "name": null, "price": 3}),
        ],
    )
    .await;
    for route in ["to-ndjson", "to-json", "to-csv", "to-xml"] {
        // One task per run: each file must be a whole document in between.
        let first = h.engine.run_route(route).await.unwrap();
        assert_eq!(first.finished, 1, "{route}: {first:?}");
        assert_eq!(
            h.engine.drain_route(route).await.unwrap().finished,
            1,
            "{route}"
        );
    }
    let read = |name: &str| std::fs::read_to_string(h.dir.path().join("out").join(name)).unwrap();
    assert_eq!(
        read("p.ndjson"),
        "{\"sku\":\"A\",\"name\":\"Café, \\\"crème\\\"\",\"price\":12.5,\"tags\":[\"bio\",\"fair\"]}\n{\"sku\":\"B & C\",\"name\":null,\"price\":3}\n"
    );
    let json: serde_json::Value = serde_json::from_str(&read("p.json")).unwrap();
    assert_eq!(json[1], json!({"sku": "B & C", "name": null, "price": 3}));
    assert_eq!(
        read("p.csv"),
        "sku,name,price,tags\nA,\"Café, \"\"crème\"\"\",12.5,\"[\"\"bio\"\",\"\"fair\"\"]\"\nB & C,,3,\n"
    );
    assert_eq!(
        read("p.xml"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<products>\n\
         <product><sku>A</sku><name>Café, \"crème\"</name><price>12.5</price><tags>bio</tags><tags>fair</tags></product>\n\
         <product><sku>B &amp; C</sku><name/><price>3</price></product>\n</products>\n"
    );
    let doc = ferry_engine::formats::read_xml(
        read("p.xml").as_bytes(),
        None,
        &ferry_engine::formats::XmlSettings::default(),
    )
    .unwrap();
    assert_eq!(doc["products"]["product"][1]["sku"], "B & C");
}

#[tokio::test]
async fn the_http_publisher_sends_the_body_as_xml() {
    let t = Target::ok().await;
    let h = Harness::new(&config(&t.url)).await;
    h.push(
        "hook",
        vec![json!({"sku": "A", "name": "Tea <green>", "price": 4.5, "tags": ["x", "y"]})],
    )
    .await;
    assert_eq!(h.engine.drain_route("to-erp").await.unwrap().finished, 1);
    let sent = t.requests();
    assert_eq!(sent[0].path, "/products/A");
    assert!(
        sent[0]
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/xml"),
        "{:?}",
        sent[0].headers
    );
    assert_eq!(
        sent[0].body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<product sku=\"A\"><name>Tea &lt;green&gt;</name><price>4.5</price><tag>x</tag><tag>y</tag></product>\n"
    );
}
