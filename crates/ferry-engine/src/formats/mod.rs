//! Documents in and out: XML and CSV beside JSON, for webhooks, the file and http
//! subscribers and the file and http publishers. Pure functions over bytes and values.
//!
//! The JSON of an XML document (documented in the README, *XML and CSV*):
//! `{"<root>": …}`; an element with neither attributes nor child elements is its text
//! (or `null` when empty); otherwise an object with its attributes as `@name`, its child
//! elements by name (repeated ones as an array, in document order; `force_array` paths
//! always an array) and its text as `#text`. Namespace prefixes stay in the names
//! (`ns:item`, `@xmlns:ns`).

mod csv;
mod xml;

use serde::Deserialize;
use serde_json::Value;

pub use csv::{read_csv, write_csv_header, write_csv_row};
pub use xml::{read_xml, write_xml_document, write_xml_element, xml_entities};

/// A problem in a document, where it is: the line and column (from 1) when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl FormatError {
    pub fn new(message: impl Into<String>) -> FormatError {
        FormatError {
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// At a byte offset of `text`.
    pub fn at(text: &str, offset: usize, message: impl Into<String>) -> FormatError {
        let (line, column) = line_column(text, offset);
        FormatError {
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }
}

/// The line and column (from 1, columns in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// How a document's bytes become text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    #[serde(
        rename = "latin-1",
        alias = "latin1",
        alias = "iso-8859-1",
        alias = "ISO-8859-1"
    )]
    Latin1,
    #[serde(rename = "windows-1252", alias = "cp1252", alias = "Windows-1252")]
    Windows1252,
}

impl Encoding {
    /// From a `charset` or an XML declaration's `encoding` (case-insensitive); `None`
    /// for one ferry does not read.
    pub fn from_label(label: &str) -> Option<Encoding> {
        match label.trim().trim_matches('"').to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" | "us-ascii" | "ascii" => Some(Encoding::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => Some(Encoding::Latin1),
            "windows-1252" | "cp1252" | "x-cp1252" => Some(Encoding::Windows1252),
            _ => None,
        }
    }

    /// The bytes as text: UTF-8 is checked (the error says where the first bad byte is
    /// and what to set), Latin-1 and Windows-1252 always decode.
    pub fn decode(self, bytes: &[u8]) -> Result<String, FormatError> {
        match self {
            Encoding::Utf8 => {
                let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| {
                    let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
                    let (line, column) = line_column(good, good.len());
                    FormatError {
                        line: Some(line),
                        column: Some(column),
                        message: "not UTF-8; if the document is Latin-1 or Windows-1252, say so with encoding = \"latin-1\" or \"windows-1252\" (or charset= in its Content-Type)".into(),
                    }
                })
            }
            Encoding::Latin1 => Ok(bytes.iter().map(|b| char::from(*b)).collect()),
            Encoding::Windows1252 => Ok(bytes.iter().map(|b| windows_1252(*b)).collect()),
        }
    }
}

/// Windows-1252: Latin-1 but for 0x80–0x9F, which hold `€`, typographic quotes, `Š`…
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// CSV settings, read and written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSettings {
    /// One character (`","`, `";"`, `"\t"`, `"|"`).
    #[serde(default = "comma")]
    pub delimiter: String,
    /// One character.
    #[serde(default = "double_quote")]
    pub quote: String,
    /// Reading: the first row names the columns; without it, `columns` does (else
    /// `column1`, `column2`…). Writing: a header row starts a new file.
    #[serde(default = "yes")]
    pub header: bool,
    /// Writing: the fields written, in order (required); reading without a header: the
    /// names of the columns.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub encoding: Encoding,
}

impl Default for CsvSettings {
    fn default() -> Self {
        CsvSettings {
            delimiter: comma(),
            quote: double_quote(),
            header: true,
            columns: None,
            encoding: Encoding::Utf8,
        }
    }
}

impl CsvSettings {
    /// What is wrong with these settings, for the configuration's check.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, value) in [("delimiter", &self.delimiter), ("quote", &self.quote)] {
            if value.len() != 1 {
                out.push((
                    key,
                    format!("'{value}' is not one character; use e.g. \",\", \";\" or \"\\t\""),
                ));
            }
        }
        out
    }

    fn byte(s: &str, default: u8) -> u8 {
        s.as_bytes().first().copied().unwrap_or(default)
    }
}

fn comma() -> String {
    ",".into()
}
fn double_quote() -> String {
    "\"".into()
}
fn yes() -> bool {
    true
}

/// XML settings, read and written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmlSettings {
    /// Element paths from the root, dot-separated (`products.product`,
    /// `products.product.tag`), whose elements are always arrays, even when one.
    #[serde(default)]
    pub force_array: Vec<String>,
    /// Writing: the root element (the file publisher's document, an http body that is
    /// not an object of one key).
    #[serde(default)]
    pub root: Option<String>,
    /// Writing: the element of each entity in the file publisher's document.
    #[serde(default)]
    pub item: Option<String>,
}

/// The formats a document can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Ndjson,
    Csv,
    Xml,
}

impl Format {
    /// From a `Content-Type` (its media type; `charset` is read apart).
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/xml" | "text/xml" => Some(Format::Xml),
            "text/csv" | "application/csv" => Some(Format::Csv),
            "application/x-ndjson" | "application/jsonl" | "application/ndjson" => {
                Some(Format::Ndjson)
            }
            m if m.ends_with("+xml") => Some(Format::Xml),
            "application/json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The `charset` of a `Content-Type`, when it names one ferry reads.
pub fn charset(content_type: &str) -> Option<Result<Encoding, String>> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| {
            Encoding::from_label(v).ok_or_else(|| {
                format!(
                    "charset '{}' is not one ferry reads; send UTF-8, Latin-1 (ISO-8859-1) or Windows-1252",
                    v.trim()
                )
            })
        })
    })
}

/// The entities of a CSV or XML document with these settings (XML: `items`, a jq
/// expression over the document's JSON, or the default selection of [`xml_entities`]).
pub fn document_entities(
    format: Format,
    bytes: &[u8],
    encoding: Option<Encoding>,
    csv: &CsvSettings,
    xml: &XmlSettings,
    items: Option<&crate::jq::JqProgram>,
) -> Result<Vec<Value>, FormatError> {
    match format {
        Format::Csv => {
            let text = encoding.unwrap_or(csv.encoding).decode(bytes)?;
            Ok(read_csv(&text, csv)?.into_iter().map(|(v, _)| v).collect())
        }
        Format::Xml => {
            let doc = read_xml(bytes, encoding, xml)?;
            match items {
                Some(p) => {
                    let out = p
                        .run(&doc)
                        .map_err(|e| FormatError::new(format!("items `{}`: {e}", p.code())))?;
                    for (i, v) in out.iter().enumerate() {
                        if !v.is_object() {
                            return Err(FormatError::new(format!(
                                "items `{}` gave a {} as item {i}; each entity must be an object",
                                p.code(),
                                ferry_core::entity::kind_of(v)
                            )));
                        }
                    }
                    Ok(out)
                }
                None => xml_entities(doc),
            }
        }
        Format::Json | Format::Ndjson => Err(FormatError::new(
            "JSON documents are read by their own reader",
        )),
    }
}
