//! XML to JSON and back (the mapping is described in `formats/mod.rs`).

use super::{Encoding, FormatError, XmlSettings};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

/// An element being read: its name, its dotted path from the root, and what it holds.
struct Open {
    name: String,
    path: String,
    object: Map<String, Value>,
    has_attributes: bool,
    text: String,
    start: usize,
}

/// The JSON of an XML document: `{"<root>": …}`. Its bytes are UTF-8 unless `encoding`
/// (a `charset`) or the declaration (`encoding="ISO-8859-1"`, `"windows-1252"`) says
/// otherwise. A document that is not well-formed is an error with its line and column.
pub fn read_xml(
    bytes: &[u8],
    encoding: Option<Encoding>,
    s: &XmlSettings,
) -> Result<Value, FormatError> {
    let encoding = match encoding {
        Some(e) => e,
        None => declared_encoding(bytes)?,
    };
    let text = encoding.decode(bytes)?;
    let mut reader = Reader::from_str(&text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            FormatError::at(&text, reader.error_position() as usize, xml_message(&e))
        })?;
        match event {
            Event::Start(e) => {
                let open = open(&e, &stack, &text, at)?;
                if stack.is_empty() && root.is_some() {
                    return Err(FormatError::at(
                        &text,
                        at,
                        format!("a second root element <{}>; a document has one", open.name),
                    ));
                }
                stack.push(open);
            }
            Event::Empty(e) => {
                let open = open(&e, &stack, &text, at)?;
                if stack.is_empty() && root.is_some() {
                    return Err(FormatError::at(
                        &text,
                        at,
                        format!("a second root element <{}>; a document has one", open.name),
                    ));
                }
                close(open, &mut stack, &mut root, s);
            }
            Event::End(_) => {
                let open = stack.pop().expect("quick-xml checks end tags");
                close(open, &mut stack, &mut root, s);
            }
            Event::Text(t) => {
                let decoded = t
                    .decode()
                    .map_err(|e| FormatError::at(&text, at, e.to_string()))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&decoded.replace("\r\n", "\n")),
                    None if decoded.trim().is_empty() => (),
                    None => {
                        return Err(FormatError::at(&text, at, "text outside the root element"));
                    }
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::GeneralRef(r) => {
                let name = r
                    .decode()
                    .map_err(|e| FormatError::at(&text, at, e.to_string()))?;
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_owned(),
                        None => {
                            return Err(FormatError::at(
                                &text,
                                at,
                                format!(
                                    "the entity &{name}; is not defined (XML knows &amp; &lt; &gt; &quot; &apos; and &#…;)"
                                ),
                            ));
                        }
                    },
                    Err(e) => return Err(FormatError::at(&text, at, e.to_string())),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => (),
        }
    }
    if let Some(open) = stack.last() {
        return Err(FormatError::at(
            &text,
            open.start,
            format!("the element <{}> is not closed", open.name),
        ));
    }
    let (name, value) = root.ok_or_else(|| FormatError::new("the document has no element"))?;
    let mut doc = Map::new();
    doc.insert(name, value);
    Ok(Value::Object(doc))
}

fn xml_message(e: &quick_xml::Error) -> String {
    match e {
        quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::MismatchedEndTag {
            expected,
            found,
        }) => format!("</{found}> closes <{expected}>"),
        quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::UnmatchedEndTag(t)) => {
            format!("</{t}> closes nothing")
        }
        other => other.to_string(),
    }
}

/// An XML declaration's encoding, read from the bytes (ASCII) before decoding them.
fn declared_encoding(bytes: &[u8]) -> Result<Encoding, FormatError> {
    let head = &bytes[..bytes.len().min(200)];
    let head = String::from_utf8_lossy(head);
    let Some(decl) = head
        .strip_prefix('\u{feff}')
        .unwrap_or(&head)
        .strip_prefix("<?xml")
        .and_then(|d| d.split_once("?>"))
        .map(|(d, _)| d)
    else {
        return Ok(Encoding::Utf8);
    };
    let Some(rest) = decl.split_once("encoding").map(|(_, r)| r) else {
        return Ok(Encoding::Utf8);
    };
    let value: String = rest
        .trim_start()
        .trim_start_matches('=')
        .trim_start()
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| !matches!(c, '"' | '\''))
        .collect();
    Encoding::from_label(&value).ok_or_else(|| {
        FormatError::at(
            &head,
            0,
            format!("the declared encoding '{value}' is not one ferry reads; use UTF-8, ISO-8859-1 or windows-1252"),
        )
    })
}

fn open(e: &BytesStart<'_>, stack: &[Open], text: &str, at: usize) -> Result<Open, FormatError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let path = match stack.last() {
        Some(parent) => format!("{}.{name}", parent.path),
        None => name.clone(),
    };
    let mut object = Map::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|err| FormatError::at(text, at, err.to_string()))?;
        let key = format!("@{}", String::from_utf8_lossy(attr.key.as_ref()));
        let value = attr
            .unescape_value()
            .map_err(|err| FormatError::at(text, at, err.to_string()))?;
        object.insert(key, Value::String(value.into_owned()));
    }
    Ok(Open {
        name,
        path,
        has_attributes: !object.is_empty(),
        object,
        text: String::new(),
        start: at,
    })
}

/// An element read to its end goes into its parent (or becomes the root).
fn close(open: Open, stack: &mut [Open], root: &mut Option<(String, Value)>, s: &XmlSettings) {
    let text = open.text.trim();
    let value = if open.object.is_empty() && !open.has_attributes {
        if text.is_empty() {
            Value::Null
        } else {
            Value::String(text.to_owned())
        }
    } else {
        let mut object = open.object;
        if !text.is_empty() {
            object.insert("#text".into(), Value::String(text.to_owned()));
        }
        Value::Object(object)
    };
    let forced = s.force_array.iter().any(|p| p == &open.path);
    let Some(parent) = stack.last_mut() else {
        *root = Some((open.name, value));
        return;
    };
    match parent.object.get_mut(&open.name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None if forced => {
            parent.object.insert(open.name, Value::Array(vec![value]));
        }
        None => {
            parent.object.insert(open.name, value);
        }
    }
}

/// The entities of an XML document's JSON, without `items`: a list document (a root
/// without attributes or text whose child elements all have one name and are objects:
/// `<products><product>…</product>…</products>`) gives each child, even a single one;
/// any other document is one entity, its root element's value.
pub fn xml_entities(doc: Value) -> Result<Vec<Value>, FormatError> {
    let Value::Object(doc) = doc else {
        return Err(FormatError::new("the document has no element"));
    };
    let Some((root, value)) = doc.into_iter().next() else {
        return Err(FormatError::new("the document has no element"));
    };
    match value {
        Value::Object(children) => {
            let list = children.len() == 1
                && children
                    .keys()
                    .all(|k| !k.starts_with('@') && !k.starts_with('#'))
                && children.values().all(|v| match v {
                    Value::Object(_) => true,
                    Value::Array(items) => items.iter().all(Value::is_object),
                    _ => false,
                });
            if list {
                let (_, items) = children.into_iter().next().expect("one child");
                Ok(match items {
                    Value::Array(items) => items,
                    one => vec![one],
                })
            } else {
                Ok(vec![Value::Object(children)])
            }
        }
        _ => Err(FormatError::new(format!(
            "the root element <{root}> holds only text; an entity must be an element with fields (or set items)"
        ))),
    }
}

fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

/// Text as element content: `<`, `>` and `&` escaped.
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::partial_escape(text)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `value` as the element `name` (an array as that element repeated), appended to
/// `out`: `@key`s as attributes, `#text` as text, other keys as child elements.
pub fn write_xml_element(name: &str, value: &Value, out: &mut String) -> Result<(), FormatError> {
    if !is_xml_name(name) {
        return Err(FormatError::new(format!(
            "'{name}' cannot be an XML element name; rename the field (e.g. with a jq transformer)"
        )));
    }
    match value {
        Value::Array(items) => {
            for item in items {
                write_xml_element(name, item, out)?;
            }
        }
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::Object(fields) => {
            out.push('<');
            out.push_str(name);
            for (k, v) in fields {
                if let Some(attr) = k.strip_prefix('@') {
                    if !is_xml_name(attr) {
                        return Err(FormatError::new(format!(
                            "'{k}' cannot be an XML attribute name"
                        )));
                    }
                    if v.is_object() || v.is_array() {
                        return Err(FormatError::new(format!(
                            "the attribute '{k}' holds a {}; an attribute holds text",
                            ferry_core::entity::kind_of(v)
                        )));
                    }
                    out.push_str(&format!(
                        " {attr}=\"{}\"",
                        quick_xml::escape::escape(scalar_text(v))
                    ));
                }
            }
            let children: Vec<_> = fields.iter().filter(|(k, _)| !k.starts_with('@')).collect();
            if children.is_empty() {
                out.push_str("/>");
                return Ok(());
            }
            out.push('>');
            for (k, v) in children {
                if k == "#text" {
                    out.push_str(&escape(&scalar_text(v)));
                } else {
                    write_xml_element(k, v, out)?;
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        scalar => out.push_str(&format!(
            "<{name}>{}</{name}>",
            escape(&scalar_text(scalar))
        )),
    }
    Ok(())
}

/// A whole document of `value`: an object of one key is that root element (as read);
/// anything else goes inside `<{root}>` (the settings' `root`, default `entity`).
pub fn write_xml_document(value: &Value, s: &XmlSettings) -> Result<String, FormatError> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    match (value, &s.root) {
        (Value::Object(fields), None)
            if fields.len() == 1
                && !fields
                    .keys()
                    .any(|k| k.starts_with('@') || k.starts_with('#')) =>
        {
            let (name, inner) = fields.iter().next().expect("one field");
            if inner.is_array() {
                return Err(FormatError::new(format!(
                    "the root '{name}' is an array; a document has one root element: set xml.root"
                )));
            }
            write_xml_element(name, inner, &mut out)?;
        }
        (v, root) => write_xml_element(root.as_deref().unwrap_or("entity"), v, &mut out)?,
    }
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str, force: &[&str]) -> Result<Value, FormatError> {
        let s = XmlSettings {
            force_array: force.iter().map(|p| p.to_string()).collect(),
            ..XmlSettings::default()
        };
        read_xml(text.as_bytes(), None, &s)
    }

    #[test]
    fn attributes_text_and_repeated_elements_map_to_json_in_document_order() {
        let doc = read(
            r#"<?xml version="1.0"?>
<products xmlns:g="http://base.google.com/ns/1.0">
  <product id="1"><sku>A</sku><name>Caf&#233; &amp; cr&#xE8;me</name><tag>x</tag><tag>y</tag>
    <price currency="EUR">12.50</price><g:color/></product>
</products>"#,
            &[],
        )
        .unwrap();
        assert_eq!(
            doc.to_string(),
            r##"{"products":{"@xmlns:g":"http://base.google.com/ns/1.0","product":{"@id":"1","sku":"A","name":"Café & crème","tag":["x","y"],"price":{"@currency":"EUR","#text":"12.50"},"g:color":null}}}"##
        );
    }

    #[test]
    fn forced_paths_are_arrays_even_with_one_element() {
        let doc = read("<p><tag>x</tag></p>", &["p.tag"]).unwrap();
        assert_eq!(doc, json!({"p": {"tag": ["x"]}}));
    }

    #[test]
    fn a_list_document_gives_each_child_and_any_other_one_entity() {
        let one = xml_entities(
            read("<products><product><sku>A</sku></product></products>", &[]).unwrap(),
        )
        .unwrap();
        assert_eq!(one, [json!({"sku": "A"})]);
        let two =
            xml_entities(read("<ps><p><sku>A</sku></p><p><sku>B</sku></p></ps>", &[]).unwrap())
                .unwrap();
        assert_eq!(two.len(), 2);
        let single =
            xml_entities(read("<product><sku>A</sku><name>n</name></product>", &[]).unwrap())
                .unwrap();
        assert_eq!(single, [json!({"sku": "A", "name": "n"})]);
    }

    #[test]
    fn a_bad_document_says_where() {
        let e = read("<a>\n  <b>x</c>\n</a>", &[]).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("</c> closes <b>"), "{e}");
        let e = read("<a>\n<b>", &[]).unwrap_err();
        assert!(e.to_string().contains("not closed"), "{e}");
        let e = read("<a>&nbsp;</a>", &[]).unwrap_err();
        assert!(e.to_string().contains("&nbsp;"), "{e}");
    }

    #[test]
    fn a_latin_1_declaration_is_honoured() {
        let doc = read_xml(
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><p>caf\xe9</p>",
            None,
            &XmlSettings::default(),
        )
        .unwrap();
        assert_eq!(doc, json!({"p": "café"}));
    }

    #[test]
    fn json_becomes_xml_and_reads_back_the_same() {
        let value = json!({"product": {"@id": "1", "sku": "A & B", "tag": ["x", "y"], "price": {"@currency": "EUR", "#text": "12.50"}, "none": null}});
        let text = write_xml_document(&value, &XmlSettings::default()).unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<product id=\"1\"><sku>A &amp; B</sku><tag>x</tag><tag>y</tag><price currency=\"EUR\">12.50</price><none/></product>\n"
        );
        assert_eq!(read(&text, &[]).unwrap(), value);
        let e =
            write_xml_document(&json!({"a b": 1, "c": 2}), &XmlSettings::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("'a b' cannot be an XML element name"),
            "{e}"
        );
    }
}
