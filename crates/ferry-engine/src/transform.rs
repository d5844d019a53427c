//! Transformer chains: `jq` maps an entity (an empty output drops it), `filter` keeps it
//! only when its condition is true.

use crate::jq::{JqProgram, truthy};
use ferry_core::config::{Location, Transformer, TransformerKind};
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug)]
pub enum Step {
    Jq(JqProgram),
    Filter(JqProgram),
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
        }
    }
}

pub type Chain = Arc<Vec<Compiled>>;

/// Compiles a configured chain; every error carries its transformer's location.
pub fn compile(chain: &[Transformer]) -> Result<Chain, Vec<(Location, String)>> {
    let mut compiled = Vec::with_capacity(chain.len());
    let mut errors = Vec::new();
    for t in chain {
        let step = match &t.kind {
            TransformerKind::Jq { filter } => JqProgram::compile(filter).map(Step::Jq),
            TransformerKind::Filter { condition } => {
                JqProgram::compile(condition).map(Step::Filter)
            }
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
        let mut next = Vec::with_capacity(current.len());
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
            }
        }
        let note = match (next.len(), &t.step) {
            (0, Step::Filter(_)) => format!("{}: condition false, entity dropped", t.describe()),
            (0, Step::Jq(_)) => format!("{}: no output, entity dropped", t.describe()),
            (1, Step::Filter(_)) => format!("{}: condition true, kept", t.describe()),
            (1, Step::Jq(_)) => format!("{}: applied", t.describe()),
            (n, _) => format!("{}: {n} outputs", t.describe()),
        };
        notes.push(note);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        compile(&ts).unwrap()
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
        let errors = compile(&ts).unwrap_err();
        assert_eq!(errors[0].0.line, Some(7));
    }
}
