//! ferry's jq against jq 1.7: every filter of the corpus in `tests/jq_corpus/filters.txt`
//! runs on its inputs through ferry's transformer and through jq 1.7.1 (the PyPI package
//! `jq==1.8.0` embeds it; `.ci/run` installs it), and the printed outputs are compared.
//!
//! jq's side is computed by `tests/jq_corpus/jq17.py`, with the Python named by
//! `FERRY_JQ_PYTHON` (default `python3`). Without jq the test skips with a reason, except
//! under `CI=true`, where it fails.

use std::path::Path;
use std::process::Command;

use ferry_engine::jq::JqProgram;
use serde_json::Value;

/// The share of (filter, input) pairs that must agree with jq.
const AGREEMENT: f64 = 0.99;

/// What one engine made of one filter on one input: the outputs as compact JSON text, or
/// an error (whose wording is not compared: both engines refusing is agreement).
#[derive(Debug, PartialEq)]
enum Answer {
    Outputs(Vec<String>),
    Error,
}

#[test]
fn ferrys_jq_agrees_with_jq_1_7_on_the_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jq_corpus");
    let python = std::env::var("FERRY_JQ_PYTHON").unwrap_or_else(|_| "python3".into());
    let run = Command::new(&python)
        .arg(dir.join("jq17.py"))
        .arg(&dir)
        .output();
    let out = match run {
        Ok(out) if out.status.success() => out,
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => format!("cannot run {python}: {e}"),
            };
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("jq 1.7 is needed under CI=true: {why}");
            }
            eprintln!(
                "skipped: jq 1.7 is not available ({why}); pip install jq==1.8.0 and set FERRY_JQ_PYTHON"
            );
            return;
        }
    };

    let mut pairs = 0;
    let mut differences = Vec::new();
    let mut programs: Vec<(String, Result<JqProgram, String>)> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let filter = case["filter"].as_str().unwrap();
        let input_name = case["input"].as_str().unwrap();
        let jq = match case.get("outputs") {
            Some(outputs) => Answer::Outputs(
                outputs
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| lower_exponents(o.as_str().unwrap()))
                    .collect(),
            ),
            None => Answer::Error,
        };
        if programs.last().map(|(f, _)| f.as_str()) != Some(filter) {
            programs.push((filter.to_owned(), JqProgram::compile(filter)));
        }
        let input_text =
            std::fs::read_to_string(dir.join("inputs").join(format!("{input_name}.json"))).unwrap();
        let input: Value = serde_json::from_str(&input_text).unwrap();
        let ferry = match &programs.last().unwrap().1 {
            Ok(program) => match program.run(&input) {
                Ok(outputs) => Answer::Outputs(
                    outputs
                        .iter()
                        .map(|o| lower_exponents(&serde_json::to_string(o).unwrap()))
                        .collect(),
                ),
                Err(_) => Answer::Error,
            },
            Err(_) => Answer::Error,
        };
        pairs += 1;
        if ferry != jq {
            differences.push(format!(
                "{filter}  on {input_name}\n    jq:    {jq:?}\n    ferry: {ferry:?}"
            ));
        }
    }
    assert!(pairs >= 1_500, "the corpus has only {pairs} pairs");
    assert!(
        programs.len() >= 400,
        "the corpus has only {} filters",
        programs.len()
    );
    let agreed = pairs - differences.len();
    let share = agreed as f64 / pairs as f64;
    println!(
        "jq conformance: {agreed} of {pairs} (filter, input) pairs agree with jq 1.7.1 ({:.2} %), {} filters",
        share * 100.0,
        programs.len()
    );
    for d in &differences {
        println!("differs: {d}");
    }
    assert!(
        share >= AGREEMENT,
        "only {:.2} % agree with jq 1.7.1 (at least {:.0} % wanted); the differences are printed above",
        share * 100.0,
        AGREEMENT * 100.0
    );
}

/// jq 1.7 prints a number literal with an exponent in decNumber's form (`1E+2`, `1E-7`);
/// ferry keeps the same digits and exponent but, holding entities as `serde_json` values,
/// writes the letter in lower case (`1e+2`). The same number, so the letter's case is not
/// compared: in JSON text outside strings, `E` after a digit becomes `e` on both sides.
/// (Inside strings, as `tostring` makes them, ferry writes `1E+2` as jq does.)
fn lower_exponents(text: &str) -> String {
    let (mut out, mut prev, mut in_string, mut escaped) =
        (String::with_capacity(text.len()), ' ', false, false);
    for c in text.chars() {
        if c == 'E' && !in_string && prev.is_ascii_digit() {
            out.push('e');
        } else {
            out.push(c);
        }
        if c == '"' && !escaped {
            in_string = !in_string;
        }
        escaped = in_string && c == '\\' && !escaped;
        prev = c;
    }
    out
}
