//! Transformer chains: `jq` maps an entity (an empty output drops it), `filter` keeps it
//! only when its condition is true, `map` replaces a value by a table's, `lookup` merges
//! another system's answer into it.

use crate::jq::{JqProgram, truthy};
use ferry_core::config::{Location, MapDefault, MapTable, Transformer, TransformerKind};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub enum Step {
    Jq(JqProgram),
    Filter(JqProgram),
    Map(ValueMap),
    /// Compared when published (see `run`): passes the entity on as it is.
    OnlyChanged,
    Lookup(Arc<dyn Lookup>),
}

impl std::fmt::Debug for dyn Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup")
    }
}

/// A `lookup` transformer's request (built with the connectors): called on a blocking
/// thread of the runtime, it may wait for the answer.
pub trait Lookup: Send + Sync {
    fn enrich(&self, entity: Value) -> Result<Enriched, String>;
}

/// What a lookup did with an entity, and a line for its log.
pub enum Enriched {
    Merged { entity: Value, note: String },
    Kept { entity: Value, note: String },
    Skipped { note: String },
}

/// A compiled `map` transformer.
#[derive(Debug)]
pub struct ValueMap {
    /// The field as written, for messages.
    field: String,
    /// `path(<field>)`: the paths the field names (several with `[]`).
    paths: JqProgram,
    /// By the value's text: a string as it is, anything else as JSON.
    table: HashMap<String, Value>,
    default: MapDefault,
}

/// The text a value is looked up by; `None` for a missing value or null.
fn key_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl ValueMap {
    fn compile(
        field: &str,
        table: &MapTable,
        default: &MapDefault,
        base_dir: &Path,
    ) -> Result<ValueMap, String> {
        let paths = JqProgram::compile(&format!("path({field})"))
            .map_err(|e| format!("field `{field}` is not a jq path: {e}"))?;
        let table = match table {
            MapTable::Inline(t) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            MapTable::File(file) => read_table(&base_dir.join(file), file)?,
        };
        Ok(ValueMap {
            field: field.to_owned(),
            paths,
            table,
            default: default.clone(),
        })
    }

    /// Maps every value the field names in `entity`; answers how many were mapped and
    /// how many kept.
    fn apply(&self, entity: &mut Value) -> Result<(usize, usize), String> {
        let paths = self.paths.run(entity)?;
        let (mut mapped, mut kept) = (0, 0);
        for path in paths {
            let Value::Array(path) = path else { continue };
            let current = get_path(entity, &path).cloned().unwrap_or(Value::Null);
            let found = key_of(&current).and_then(|k| self.table.get(&k));
            let new = match (found, &self.default) {
                (Some(v), _) => v.clone(),
                (None, MapDefault::Keep) => {
                    kept += 1;
                    continue;
                }
                (None, MapDefault::Fail) => {
                    return Err(format!(
                        "{} of {} is not in the table (default = \"fail\")",
                        match &current {
                            Value::Null => "no value".to_owned(),
                            v => format!("the value {v}"),
                        },
                        self.field
                    ));
                }
                (None, MapDefault::Value(v)) => Value::String(v.clone()),
            };
            set_path(entity, &path, new);
            mapped += 1;
        }
        Ok((mapped, kept))
    }
}

/// A `table_file`: a header row, then `from,to` rows (further columns ignored).
fn read_table(path: &Path, shown: &str) -> Result<HashMap<String, Value>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("cannot read table_file {shown}: {e}"))?;
    let mut table = HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("table_file {shown}: {e}"))?;
        match (row.get(0), row.get(1)) {
            (Some(from), Some(to)) => {
                table.insert(from.to_owned(), Value::String(to.to_owned()));
            }
            _ => {
                return Err(format!(
                    "table_file {shown}, row {}: give two columns, the value and what it becomes",
                    i + 2
                ));
            }
        }
    }
    Ok(table)
}

fn get_path<'a>(v: &'a Value, path: &[Value]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, step| match step {
        Value::String(k) => v.get(k.as_str()),
        Value::Number(n) => v.get(usize::try_from(n.as_u64()?).ok()?),
        _ => None,
    })
}

/// Sets the value at `path`, making the last object key if it is missing.
pub(crate) fn set_path(v: &mut Value, path: &[Value], new: Value) {
    let Some((last, parents)) = path.split_last() else {
        *v = new;
        return;
    };
    let mut at = v;
    for step in parents {
        let next = match step {
            Value::String(k) => at.get_mut(k.as_str()),
            Value::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| at.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    match (last, at) {
        (Value::String(k), Value::Object(o)) => {
            o.insert(k.clone(), new);
        }
        (Value::Number(n), Value::Array(a)) => {
            if let Some(slot) = n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| a.get_mut(i))
            {
                *slot = new;
            }
        }
        _ => {}
    }
}

/// A compiled transformer and where it was configured.
#[derive(Debug)]
pub struct Compiled {
    pub step: Step,
    pub at: Location,
}

impl Compiled {
    pub fn describe(&self) -> String {
        match &self.step {
            Step::Jq(p) => format!("jq `{}` ({})", p.code(), self.at.key),
            Step::Filter(p) => format!("filter `{}` ({})", p.code(), self.at.key),
            Step::Map(m) => format!("map {} ({})", m.field, self.at.key),
            Step::OnlyChanged => format!("only_changed ({})", self.at.key),
            Step::Lookup(_) => format!("lookup ({})", self.at.key),
        }
    }
}

pub type Chain = Arc<Vec<Compiled>>;

/// Whether the chain ends with `only_changed`: its payload is compared with what the
/// route last published for the entity.
pub fn only_changed(chain: &[Compiled]) -> bool {
    chain
        .last()
        .is_some_and(|t| matches!(t.step, Step::OnlyChanged))
}

/// What a chain needs beside its configuration: the folder a `table_file` is read
/// from, and the `lookup` requests the connectors built (by transformer key).
pub struct Inputs<'a> {
    pub base_dir: &'a Path,
    pub lookups: &'a HashMap<String, Arc<dyn Lookup>>,
}

/// Compiles a configured chain; every error carries its transformer's location.
pub fn compile(
    chain: &[Transformer],
    inputs: &Inputs<'_>,
) -> Result<Chain, Vec<(Location, String)>> {
    let base_dir = inputs.base_dir;
    let mut compiled = Vec::with_capacity(chain.len());
    let mut errors = Vec::new();
    for t in chain {
        let step = match &t.kind {
            TransformerKind::Jq { filter } => JqProgram::compile(filter).map(Step::Jq),
            TransformerKind::Filter { condition } => {
                JqProgram::compile(condition).map(Step::Filter)
            }
            TransformerKind::Map {
                field,
                table,
                default,
            } => ValueMap::compile(field, table, default, base_dir).map(Step::Map),
            TransformerKind::OnlyChanged => Ok(Step::OnlyChanged),
            TransformerKind::Lookup(spec) => match inputs.lookups.get(&spec.key) {
                Some(l) => Ok(Step::Lookup(l.clone())),
                // Its settings' problems are reported by the connectors.
                None => continue,
            },
        };
        match step {
            Ok(step) => compiled.push(Compiled {
                step,
                at: t.at.clone(),
            }),
            Err(e) => errors.push((t.at.clone(), e)),
        }
    }
    if errors.is_empty() {
        Ok(Arc::new(compiled))
    } else {
        Err(errors)
    }
}

/// What a chain made of one entity, with a line per step for the task's log.
#[derive(Debug, Default)]
pub struct Transformed {
    pub outputs: Vec<Value>,
    pub notes: Vec<String>,
}

/// Runs `chain` on `entity`. Each step runs on every output of the one before, so a
/// `jq` step may split an entity into several or drop it.
pub fn apply(chain: &[Compiled], entity: Value) -> Result<Transformed, String> {
    let mut current = vec![entity];
    let mut notes = Vec::new();
    for t in chain {
        let (next, note) = step(t, current)?;
        notes.extend(note);
        current = next;
        if current.is_empty() {
            break;
        }
    }
    Ok(Transformed {
        outputs: current,
        notes,
    })
}

/// One step of a chain as `ferry try` shows it: which transformer, and what it made
/// (its outputs and its log line) or the error that stopped the chain.
#[derive(Debug)]
pub struct Traced {
    pub transformer: String,
    pub result: Result<(Vec<Value>, Option<String>), String>,
}

/// Runs `chain` on `entity` as [`apply`] does, keeping every step's outputs; stops at
/// an error or when nothing is left.
pub fn trace(chain: &[Compiled], entity: Value) -> (Vec<Traced>, Result<Vec<Value>, String>) {
    let mut current = vec![entity];
    let mut steps = Vec::new();
    for t in chain {
        match step(t, current) {
            Ok((next, note)) => {
                current = next.clone();
                steps.push(Traced {
                    transformer: t.describe(),
                    result: Ok((next, note)),
                });
            }
            Err(e) => {
                steps.push(Traced {
                    transformer: t.describe(),
                    result: Err(e.clone()),
                });
                return (steps, Err(e));
            }
        }
        if current.is_empty() {
            break;
        }
    }
    (steps, Ok(current))
}

/// One transformer over every value the one before made: what it made, and its line
/// for the log.
fn step(t: &Compiled, current: Vec<Value>) -> Result<(Vec<Value>, Option<String>), String> {
    let mut next = Vec::with_capacity(current.len());
    let mut map_counts = (0, 0);
    let mut lookup_notes = Vec::new();
    for value in current {
        match &t.step {
            Step::Jq(p) => {
                let out = p
                    .run(&value)
                    .map_err(|e| format!("{}: {e}", t.describe()))?;
                next.extend(out);
            }
            Step::Filter(p) => {
                let out = p
                    .run(&value)
                    .map_err(|e| format!("{}: {e}", t.describe()))?;
                if out.first().is_some_and(truthy) {
                    next.push(value);
                }
            }
            Step::Map(m) => {
                let mut value = value;
                let (mapped, kept) = m
                    .apply(&mut value)
                    .map_err(|e| format!("{}: {e}", t.describe()))?;
                map_counts.0 += mapped;
                map_counts.1 += kept;
                next.push(value);
            }
            Step::OnlyChanged => next.push(value),
            Step::Lookup(l) => match l
                .enrich(value)
                .map_err(|e| format!("{}: {e}", t.describe()))?
            {
                Enriched::Merged { entity, note } | Enriched::Kept { entity, note } => {
                    lookup_notes.push(note);
                    next.push(entity);
                }
                Enriched::Skipped { note } => lookup_notes.push(note),
            },
        }
    }
    if matches!(t.step, Step::OnlyChanged) {
        // Its outcome is the publishing's to say.
        return Ok((next, None));
    }
    let note = match (next.len(), &t.step) {
        (_, Step::Lookup(_)) => format!("{}: {}", t.describe(), lookup_notes.join("; ")),
        (_, Step::Map(_)) => format!(
            "{}: {} mapped, {} not in the table and kept",
            t.describe(),
            map_counts.0,
            map_counts.1
        ),
        (0, Step::Filter(_)) => format!("{}: condition false, entity dropped", t.describe()),
        (0, Step::Jq(_)) => format!("{}: no output, entity dropped", t.describe()),
        (1, Step::Filter(_)) => format!("{}: condition true, kept", t.describe()),
        (1, Step::Jq(_)) => format!("{}: applied", t.describe()),
        (n, _) => format!("{}: {n} outputs", t.describe()),
    };
    Ok((next, Some(note)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_lookups(base_dir: &Path) -> Inputs<'_> {
        static NONE: std::sync::LazyLock<HashMap<String, Arc<dyn Lookup>>> =
            std::sync::LazyLock::new(HashMap::new);
        Inputs {
            base_dir,
            lookups: &NONE,
        }
    }

    fn chain(specs: &[(&str, &str)]) -> Chain {
        let ts: Vec<Transformer> = specs
            .iter()
            .enumerate()
            .map(|(i, (kind, code))| Transformer {
                kind: match *kind {
                    "jq" => TransformerKind::Jq {
                        filter: code.to_string(),
                    },
                    _ => TransformerKind::Filter {
                        condition: code.to_string(),
                    },
                },
                at: Location {
                    key: format!("t[{i}]"),
                    line: Some(i + 1),
                },
            })
            .collect();
        compile(&ts, &no_lookups(Path::new(""))).unwrap()
    }

    #[test]
    fn steps_run_in_order() {
        let c = chain(&[("jq", ".price |= tonumber"), ("filter", ".price > 1")]);
        let t = apply(&c, json!({"price": "2"})).unwrap();
        assert_eq!(t.outputs, [json!({"price": 2})]);
        assert_eq!(t.notes.len(), 2);
    }

    #[test]
    fn a_false_condition_drops_the_entity_and_says_so() {
        let c = chain(&[("filter", ".active != false"), ("jq", ".")]);
        let t = apply(&c, json!({"active": false})).unwrap();
        assert!(t.outputs.is_empty());
        assert!(t.notes[0].contains("dropped"));
        assert_eq!(t.notes.len(), 1, "steps after a drop do not run");
    }

    #[test]
    fn an_error_names_the_transformer() {
        let c = chain(&[("jq", ".price | tonumber")]);
        let err = apply(&c, json!({"price": "x"})).unwrap_err();
        assert!(err.contains("(t[0])"), "{err}");
    }

    #[test]
    fn a_compile_error_carries_the_location() {
        let ts = vec![Transformer {
            kind: TransformerKind::Jq { filter: "{".into() },
            at: Location {
                key: "incoming[0].transformers[0]".into(),
                line: Some(7),
            },
        }];
        let errors = compile(&ts, &no_lookups(Path::new(""))).unwrap_err();
        assert_eq!(errors[0].0.line, Some(7));
    }

    fn map_step(field: &str, table: MapTable, default: MapDefault, dir: &Path) -> Chain {
        let ts = vec![Transformer {
            kind: TransformerKind::Map {
                field: field.into(),
                table,
                default,
            },
            at: Location {
                key: "routes[0].transformers[0]".into(),
                line: Some(3),
            },
        }];
        compile(&ts, &no_lookups(dir)).unwrap()
    }

    fn countries() -> MapTable {
        MapTable::Inline(
            [
                ("NL", json!("Netherlands")),
                ("BE", json!("Belgium")),
                ("31", json!("NL")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
    }

    #[test]
    fn a_map_replaces_each_value_the_field_names_and_keeps_the_rest() {
        let c = map_step(
            ".lines[].country",
            countries(),
            MapDefault::Keep,
            Path::new(""),
        );
        let t = apply(
            &c,
            json!({"sku": "A", "lines": [{"country": "NL"}, {"country": "DE"}, {"country": 31}]}),
        )
        .unwrap();
        assert_eq!(
            t.outputs,
            [
                json!({"sku": "A", "lines": [{"country": "Netherlands"}, {"country": "DE"}, {"country": "NL"}]})
            ]
        );
        assert!(
            t.notes[0].contains("2 mapped, 1 not in the table and kept"),
            "{:?}",
            t.notes
        );
    }

    #[test]
    fn a_map_with_default_fail_names_the_value_and_one_with_a_value_puts_it() {
        let c = map_step(".country", countries(), MapDefault::Fail, Path::new(""));
        let err = apply(&c, json!({"country": "FR"})).unwrap_err();
        assert!(
            err.contains("the value \"FR\" of .country is not in the table (default = \"fail\")"),
            "{err}"
        );
        let c = map_step(
            ".country",
            countries(),
            MapDefault::Value("unknown".into()),
            Path::new(""),
        );
        let t = apply(&c, json!({"country": "FR"})).unwrap();
        assert_eq!(t.outputs, [json!({"country": "unknown"})]);
        let t = apply(&c, json!({"sku": "no country"})).unwrap();
        assert_eq!(
            t.outputs,
            [json!({"sku": "no country", "country": "unknown"})]
        );
    }

    #[test]
    fn a_map_table_file_is_a_csv_with_a_header_row() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("maps")).unwrap();
        std::fs::write(
            dir.path().join("maps/countries.csv"),
            "code,name\nNL,Netherlands\n\"CI\",\"Côte d'Ivoire\"\n",
        )
        .unwrap();
        let c = map_step(
            ".country",
            MapTable::File("maps/countries.csv".into()),
            MapDefault::Keep,
            dir.path(),
        );
        let t = apply(&c, json!({"country": "CI"})).unwrap();
        assert_eq!(t.outputs, [json!({"country": "Côte d'Ivoire"})]);
        let ts = vec![Transformer {
            kind: TransformerKind::Map {
                field: ".country".into(),
                table: MapTable::File("maps/missing.csv".into()),
                default: MapDefault::Keep,
            },
            at: Location {
                key: "t[0]".into(),
                line: Some(1),
            },
        }];
        let errors = compile(&ts, &no_lookups(dir.path())).unwrap_err();
        assert!(
            errors[0]
                .1
                .contains("cannot read table_file maps/missing.csv"),
            "{errors:?}"
        );
    }
}
