//! A small wrapper around jaq, so the rest of ferry does not follow jaq's API changes.
//!
//! Programs are compiled once per configuration. jaq values are `Rc`-based, so a run
//! converts in and out of `serde_json` inside one synchronous call.

use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

/// Most outputs one run may yield before it is stopped (a runaway `repeat`, `range`…).
pub const MAX_OUTPUTS: usize = 10_000;

pub struct JqProgram {
    code: String,
    filter: jaq_core::Filter<JustLut<Val>>,
}

impl std::fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JqProgram")
            .field("code", &self.code)
            .finish()
    }
}

impl JqProgram {
    /// Compiles `code`; the error says what is wrong in words a jq user knows.
    pub fn compile(code: &str) -> Result<JqProgram, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .chain(ferry_defs());
        // No `env`: a transformer must not read the process environment (secrets).
        let funs = jaq_core::funs()
            .chain(jaq_std::funs().filter(|f| f.0 != "env"))
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let located = with_locations(code);
        let modules = loader
            .load(
                &arena,
                File {
                    code: located.as_str(),
                    path: (),
                },
            )
            .map_err(|errs| {
                let parts: Vec<String> = errs
                    .into_iter()
                    .map(|(_, e)| match e {
                        jaq_core::load::Error::Io(v) => {
                            format!(
                                "cannot load {}",
                                v.into_iter()
                                    .map(|(p, m)| format!("{p}: {m}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                        jaq_core::load::Error::Lex(v) => v
                            .into_iter()
                            .map(|(expect, at)| {
                                format!("expected {} at '{}'", expect.as_str(), snippet(at))
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                        jaq_core::load::Error::Parse(v) => v
                            .into_iter()
                            .map(|(expect, at)| {
                                format!("expected {} at '{}'", expect.as_str(), snippet(at))
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    })
                    .collect();
                format!("jq syntax error in `{code}`: {}", parts.join("; "))
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let parts: Vec<String> = errs
                    .into_iter()
                    .flat_map(|(_, es)| es)
                    .map(|(name, undefined)| {
                        if matches!(name, "env" | "ENV" | "$ENV") {
                            return "`env` and `$ENV` are refused by design: a transformer must not read the process environment, where ferry's secrets are; put the value in the configuration".to_owned();
                        }
                        let kind = format!("{undefined:?}");
                        match kind
                            .strip_prefix("Filter(")
                            .and_then(|a| a.strip_suffix(')'))
                        {
                            Some(arity) => format!("unknown function {name}/{arity}"),
                            None => format!("undefined {} {name}", kind.to_lowercase()),
                        }
                    })
                    .collect();
                format!("jq error in `{code}`: {}", parts.join("; "))
            })?;
        Ok(JqProgram {
            code: code.to_owned(),
            filter,
        })
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// Runs the program on `input` and collects its outputs (at most [`MAX_OUTPUTS`]).
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        // Through JSON text and jaq's own reader, which keeps integers of any size and
        // decimals as written (serde's path would see serde_json's exact numbers as maps).
        let text = serde_json::to_vec(input).map_err(|e| format!("cannot read the entity: {e}"))?;
        let input = jaq_json::read::parse_single(&text)
            .map_err(|e| format!("cannot read the entity: {e}"))?;
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        for result in self.filter.id.run((ctx, input)) {
            let val = result.map_err(|exn| match exn.get_err() {
                Ok(e) => format!("jq error: {e}"),
                Err(_) => {
                    "jq halted: `halt` and `halt_error` are not allowed in transformers".to_owned()
                }
            })?;
            if out.len() == MAX_OUTPUTS {
                return Err(format!(
                    "jq produced more than {MAX_OUTPUTS} outputs; is there a runaway `repeat` or `range`?"
                ));
            }
            out.push(to_json(&val)?);
        }
        Ok(out)
    }
}

/// Replaces each `$__loc__` in code (not in string literals, but in their `\\(…)`
/// interpolations) by jq's value for it, `{"file":"<top-level>","line":N}`: jaq has none.
fn with_locations(code: &str) -> String {
    const LOC: &str = "$__loc__";
    if !code.contains(LOC) {
        return code.to_owned();
    }
    // What encloses the current character: a string, or code in parentheses opened by
    // an interpolation (counting the parentheses opened inside it).
    enum In {
        Str,
        Interpolation(usize),
    }
    let (mut out, mut line, mut stack, mut escaped) = (String::new(), 1, Vec::new(), false);
    let mut rest = code;
    while let Some(c) = rest.chars().next() {
        let in_string = matches!(stack.last(), Some(In::Str));
        if !in_string && rest.starts_with(LOC) {
            out.push_str(&format!(r#"{{"file":"<top-level>","line":{line}}}"#));
            rest = &rest[LOC.len()..];
            continue;
        }
        match (stack.last_mut(), c) {
            (_, '\n') => line += 1,
            (Some(In::Str), '"') if !escaped => drop(stack.pop()),
            (Some(In::Str), '(') if escaped => stack.push(In::Interpolation(0)),
            (Some(In::Interpolation(0)), ')') => drop(stack.pop()),
            (Some(In::Interpolation(depth)), ')') => *depth -= 1,
            (Some(In::Interpolation(depth)), '(') => *depth += 1,
            (_, '"') if !in_string => stack.push(In::Str),
            _ => (),
        }
        escaped = in_string && c == '\\' && !escaped;
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// ferry's own definitions (`jq_defs.jq`): jq 1.7's, where jaq's differ.
fn ferry_defs() -> impl Iterator<Item = jaq_core::load::parse::Def<&'static str>> {
    jaq_core::load::parse(include_str!("jq_defs.jq"), |p| p.defs())
        .expect("jq_defs.jq parses")
        .into_iter()
}

fn snippet(s: &str) -> String {
    let s: String = s.chars().take(20).collect();
    if s.is_empty() {
        "end of input".into()
    } else {
        s
    }
}

fn to_json(val: &Val) -> Result<Value, String> {
    serde_json::from_str(&val.to_string()).map_err(|e| {
        format!(
            "jq produced a value that is not JSON ({e}): {}",
            snippet(&val.to_string())
        )
    })
}

/// jq truthiness: everything but `false` and `null` is true.
pub fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_filter_maps_an_entity() {
        let p = JqProgram::compile(".price |= tonumber | {sku, price}").unwrap();
        let out = p
            .run(&json!({"sku": "A", "price": "12.5", "x": 1}))
            .unwrap();
        assert_eq!(out, [json!({"sku": "A", "price": 12.5})]);
    }

    #[test]
    fn a_filter_may_yield_nothing_or_several_values() {
        let p = JqProgram::compile(".items[]").unwrap();
        assert_eq!(
            p.run(&json!({"items": [1, 2]})).unwrap(),
            [json!(1), json!(2)]
        );
        assert!(p.run(&json!({"items": []})).unwrap().is_empty());
    }

    #[test]
    fn a_syntax_error_is_reported_with_the_code() {
        let err = JqProgram::compile(".price |=").unwrap_err();
        assert!(err.contains("`.price |=`"), "{err}");
        let err = JqProgram::compile("nosuchfn(1)").unwrap_err();
        assert!(err.contains("nosuchfn"), "{err}");
    }

    #[test]
    fn a_runtime_error_is_an_error_not_a_panic() {
        let p = JqProgram::compile(".price | tonumber").unwrap();
        assert!(p.run(&json!({"price": "abc"})).is_err());
        let p = JqProgram::compile("error(\"custom\")").unwrap();
        assert!(p.run(&json!({})).unwrap_err().contains("custom"));
    }

    fn text(code: &str, input: &str) -> Vec<String> {
        let input: Value = serde_json::from_str(input).unwrap();
        let out = JqProgram::compile(code).unwrap().run(&input).unwrap();
        out.iter()
            .map(|v| serde_json::to_string(v).unwrap())
            .collect()
    }

    #[test]
    fn keys_keep_the_order_they_came_in_as_in_jq() {
        let product = r#"{"sku":"A","name":"x","brand":"y"}"#;
        assert_eq!(text(".", product), [product]);
        assert_eq!(
            text("keys_unsorted", product),
            [r#"["sku","name","brand"]"#]
        );
        assert_eq!(text("keys", product), [r#"["brand","name","sku"]"#]);
        assert_eq!(
            text("del(.sku) | tojson", product),
            [r#""{\"name\":\"x\",\"brand\":\"y\"}""#]
        );
        assert_eq!(text("{b: 1, a: 2}", "null"), [r#"{"b":1,"a":2}"#]);
    }

    #[test]
    fn numbers_print_as_jq_prints_them() {
        assert_eq!(
            text(
                "(3.5 * 10 | tostring), \"\\(.price * 10)\"",
                r#"{"price":1.5}"#
            ),
            [r#""35""#, r#""15""#]
        );
        assert_eq!(
            text("0.00001 + 0, 1e17 + 0, 1e16 * 1.5, 0.1 + 0.2", "null"),
            ["1e-05", "1e+17", "15000000000000000", "0.30000000000000004"]
        );
        // As written until touched; integers beyond 2^53 become doubles, as in jq.
        assert_eq!(
            text(".a, .a + 0, .b", r#"{"a":100000000000000000001,"b":12.50}"#),
            ["100000000000000000001", "1e+20", "12.50"]
        );
        assert!(
            JqProgram::compile("1 / 0")
                .unwrap()
                .run(&Value::Null)
                .is_err()
        );
    }

    #[test]
    fn regular_expressions_know_unicode() {
        assert_eq!(
            text(
                r#"test("^\\w+$"), test("CAFÉ"; "i"), [scan("[[:upper:]]")]"#,
                r#""Café""#
            ),
            ["true", "true", r#"["C"]"#]
        );
        assert_eq!(
            text(r#"[match("(a)?b").captures[0].string]"#, r#""b""#),
            ["[null]"]
        );
    }

    #[test]
    fn jq_builtins_that_jaq_lacks_are_there() {
        assert_eq!(
            text("@csv, @tsv", r#"["a,\"b", 1.5, null, true]"#),
            [r#""\"a,\"\"b\",1.5,,true""#, r#""a,\"b\t1.5\t\ttrue""#]
        );
        assert_eq!(
            text(
                "INDEX(.sku) | keys_unsorted",
                r#"[{"sku":"b"},{"sku":"a"}]"#
            ),
            [r#"["b","a"]"#]
        );
        assert_eq!(text(".x | IN(1, 2)", r#"{"x":2}"#), ["true"]);
        assert_eq!(
            text(
                "[tostream] | fromstream(.[])",
                r#"{"b":[1,{"c":2}],"a":null}"#
            ),
            [r#"{"b":[1,{"c":2}],"a":null}"#]
        );
        assert_eq!(
            text("$__loc__, \"\\($__loc__.line)\"", "null"),
            [r#"{"file":"<top-level>","line":1}"#, r#""1""#]
        );
        assert_eq!(
            text(".a.b = 1 | .c[2] = true", "null"),
            [r#"{"a":{"b":1},"c":[null,null,true]}"#]
        );
    }

    #[test]
    fn builtins_of_the_manual_beyond_jq_1_7_are_there_too() {
        assert_eq!(
            text(
                "[leaf_paths], (65 | ascii), (1 | toarray), have_decnum",
                r#"{"a":[1]}"#
            ),
            [r#"[["a",0]]"#, r#""A""#, "[1]", "true"]
        );
        assert_eq!(
            text(
                r#"(10 | dateadd("seconds"; 5)), (0 | date), ("xax" | trimstr("x")), ("  a " | trim)"#,
                "null"
            ),
            ["15", r#""1970-01-01T00:00:00Z""#, r#""a""#, r#""a""#]
        );
    }

    #[test]
    fn the_environment_is_out_of_reach() {
        for code in ["env.HOME", "$ENV.HOME"] {
            let err = JqProgram::compile(code).unwrap_err();
            assert!(err.contains("refused by design"), "{code}: {err}");
        }
    }

    #[test]
    fn halt_does_not_stop_the_process() {
        let p = JqProgram::compile("halt").unwrap();
        assert!(p.run(&json!({})).unwrap_err().contains("not allowed"));
    }

    #[test]
    fn a_runaway_filter_is_stopped_by_the_output_cap() {
        let p = JqProgram::compile("repeat(1)").unwrap();
        assert!(p.run(&json!(0)).unwrap_err().contains("more than"));
    }
}
