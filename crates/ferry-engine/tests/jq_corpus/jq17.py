#!/usr/bin/env python3
"""Compute jq 1.7.1's answers for the jq conformance corpus.

Usage: python jq17.py <corpus dir>

Reads <corpus dir>/filters.txt and <corpus dir>/inputs/*.json and prints, for each
(filter, input) pair in corpus order, one JSON line:

    {"filter": F, "input": NAME, "outputs": [TEXT, ...]}
    {"filter": F, "input": NAME, "error": MESSAGE}

Each TEXT is jq's own compact rendering of one result, exactly as `jq -c` prints it
(jq's `tojson` and `jq -c` share the same printer, so number literals such as
`3.0`, `1.0E+2` or `100000000000000000001` come out as jq 1.7.1 prints them).
MESSAGE is jq's message for an uncaught error: the message itself when it is a
string, otherwise "(not a string): " followed by the value's JSON text (the text
`jq` prints after "jq: error (at ...) "). Compile errors are reported the same way,
with jq's compile diagnostics as the message. When a run raises an error, the
outputs it produced before the error are not reported.

filters.txt format: blank lines and lines starting with `#` are ignored; a line
`## inputs: a b c` sets the input names for the following filters; every other
line is one jq filter.

jq comes from the PyPI package `jq==1.8.0`, which embeds jq 1.7.1. Its `.text()`
is not usable here: it renders Python-converted values (losing number literals,
and with ", " / ": " separators), so each filter is wrapped and rendered by jq.
"""

import os
import sys
import time

os.environ["TZ"] = "UTC"
if hasattr(time, "tzset"):
    time.tzset()

try:
    import jq  # noqa: E402
except ImportError:
    sys.stderr.write(
        "jq17.py: cannot import the Python module `jq`.\n"
        "Install it with: pip install jq==1.8.0 (embeds jq 1.7.1)\n"
    )
    sys.exit(2)

import itertools  # noqa: E402
import json  # noqa: E402

MAX_OUTPUTS = 1000

# The filter goes on its own line(s) inside the wrapper, so a trailing comment
# cannot swallow the wrapper and `$__loc__` still reports line 1. Errors are caught
# inside jq: the binding aborts the process (a C assertion) when an uncaught error's
# message is not a string, e.g. `error({"a":1})` or `error(null)`.
WRAPPER = (
    "try ((%s\n) | [0, tojson]) catch "
    '[1, (if type == "string" then . else "(not a string): " + tojson end)]'
)


def read_corpus(corpus_dir):
    """Yields (filter, [input names]) in corpus order."""
    current = []
    path = os.path.join(corpus_dir, "filters.txt")
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            stripped = line.strip()
            if stripped.startswith("## inputs:"):
                current = stripped[len("## inputs:"):].split()
                continue
            if not stripped or stripped.startswith("#"):
                continue
            if not current:
                raise SystemExit(
                    "%s:%d: filter before any `## inputs:` line" % (path, lineno)
                )
            yield line, current


def read_inputs(corpus_dir):
    inputs = {}
    directory = os.path.join(corpus_dir, "inputs")
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as fh:
                inputs[name[: -len(".json")]] = fh.read()
    return inputs


def compile_filter(text):
    """Returns (program, None) or (None, compile error message)."""
    try:
        return jq.compile(WRAPPER % text), None
    except ValueError as wrapped_error:
        try:
            jq.compile(text)
        except ValueError as error:
            return None, str(error)
        # The filter compiles on its own but not inside the wrapper (e.g. it starts
        # with `import`); the runner cannot evaluate it faithfully.
        return None, "jq17.py: cannot wrap filter: %s" % wrapped_error


def run(program, input_text):
    outputs = []
    try:
        results = iter(program.input_text(input_text))
        for kind, text in itertools.islice(results, MAX_OUTPUTS + 1):
            if kind:
                return {"error": text}
            outputs.append(text)
    except ValueError as error:  # e.g. the input text itself does not parse
        return {"error": str(error)}
    if len(outputs) > MAX_OUTPUTS:
        return {"error": "more than %d outputs" % MAX_OUTPUTS}
    return {"outputs": outputs}


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: python jq17.py <corpus dir>\n")
        return 2
    corpus_dir = argv[1]
    inputs = read_inputs(corpus_dir)
    out = sys.stdout
    for text, names in read_corpus(corpus_dir):
        program, compile_error = compile_filter(text)
        for name in names:
            if name not in inputs:
                raise SystemExit("unknown input %r for filter %r" % (name, text))
            record = {"filter": text, "input": name}
            if program is None:
                record["error"] = compile_error
            else:
                record.update(run(program, inputs[name]))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
