//! CSV: rows as objects of strings (the header's names, in its order), and objects as
//! rows of configured columns.

use super::{CsvSettings, FormatError};
use serde_json::{Map, Value};

/// The rows of `text` as objects of strings, each with its line number. Any bad row
/// fails the whole document (line and, where the reader knows it, column).
pub fn read_csv(text: &str, s: &CsvSettings) -> Result<Vec<(Value, usize)>, FormatError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(CsvSettings::byte(&s.delimiter, b','))
        .quote(CsvSettings::byte(&s.quote, b'"'))
        .has_headers(s.header)
        .flexible(false)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| {
        let line = e.position().map(|p| p.line() as usize);
        let message = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("the row has {len} fields where the header has {expected_len}"),
            _ => e.to_string(),
        };
        FormatError {
            line,
            column: None,
            message,
        }
    };
    let names: Vec<String> = if s.header {
        reader
            .headers()
            .map_err(bad)?
            .iter()
            .map(str::to_owned)
            .collect()
    } else {
        s.columns.clone().unwrap_or_default()
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let r = record.map_err(bad)?;
        let line = r.position().map_or(0, |p| p.line() as usize);
        let object: Map<String, Value> = r
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let name = names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("column{}", i + 1));
                (name, Value::String(v.to_owned()))
            })
            .collect();
        out.push((Value::Object(object), line));
    }
    Ok(out)
}

fn writer(s: &CsvSettings) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .delimiter(CsvSettings::byte(&s.delimiter, b','))
        .quote(CsvSettings::byte(&s.quote, b'"'))
        .from_writer(Vec::new())
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<String, FormatError> {
    let bytes = w
        .into_inner()
        .map_err(|e| FormatError::new(format!("cannot write CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The header row of `columns`, with its line end.
pub fn write_csv_header(columns: &[String], s: &CsvSettings) -> Result<String, FormatError> {
    let mut w = writer(s);
    w.write_record(columns)
        .map_err(|e| FormatError::new(format!("cannot write CSV: {e}")))?;
    finish(w)
}

/// One row: each column's field of `entity` (a string as it is, a number or boolean as
/// JSON writes it, null or missing as nothing, an object or array as its JSON).
pub fn write_csv_row(
    entity: &Value,
    columns: &[String],
    s: &CsvSettings,
) -> Result<String, FormatError> {
    let fields: Vec<String> = columns
        .iter()
        .map(|c| match entity.get(c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        })
        .collect();
    let mut w = writer(s);
    w.write_record(&fields)
        .map_err(|e| FormatError::new(format!("cannot write CSV: {e}")))?;
    finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Encoding;
    use serde_json::json;

    #[test]
    fn rows_become_objects_with_the_headers_names_in_order() {
        let rows = read_csv(
            "sku;name\nA;\"Caf\u{e9}; cr\u{e8}me\"\nB;x\n",
            &CsvSettings {
                delimiter: ";".into(),
                ..CsvSettings::default()
            },
        )
        .unwrap();
        assert_eq!(rows[0].0.to_string(), r#"{"sku":"A","name":"Café; crème"}"#);
        assert_eq!(rows[1].1, 3);
    }

    #[test]
    fn without_a_header_the_columns_name_the_fields() {
        let s = CsvSettings {
            header: false,
            columns: Some(vec!["sku".into()]),
            ..CsvSettings::default()
        };
        let rows = read_csv("A,1\n", &s).unwrap();
        assert_eq!(rows[0].0, json!({"sku": "A", "column2": "1"}));
    }

    #[test]
    fn a_short_row_fails_the_document_with_its_line() {
        let e = read_csv("sku,price\nA,1\nB\n", &CsvSettings::default()).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.to_string().contains("1 fields where the header has 2"),
            "{e}"
        );
    }

    #[test]
    fn windows_1252_and_latin_1_decode_to_utf_8() {
        assert_eq!(
            Encoding::Windows1252
                .decode(b"\x80 caf\xe9 \x93q\x94")
                .unwrap(),
            "€ café “q”"
        );
        assert_eq!(Encoding::Latin1.decode(b"caf\xe9").unwrap(), "café");
        let e = Encoding::Utf8.decode(b"sku\nA\xe9").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(2)), "{e}");
    }

    #[test]
    fn rows_are_written_with_quotes_where_needed() {
        let cols = vec![
            "sku".to_string(),
            "name".to_string(),
            "price".to_string(),
            "tags".to_string(),
        ];
        let s = CsvSettings::default();
        assert_eq!(
            write_csv_header(&cols, &s).unwrap(),
            "sku,name,price,tags\n"
        );
        let row = write_csv_row(
            &json!({"sku": "A", "name": "a, \"b\"", "price": 1.5, "tags": ["x"]}),
            &cols,
            &s,
        )
        .unwrap();
        assert_eq!(row, "A,\"a, \"\"b\"\"\",1.5,\"[\"\"x\"\"]\"\n");
    }
}
