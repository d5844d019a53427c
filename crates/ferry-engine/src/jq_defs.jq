# ferry's jq definitions, loaded after jaq's own: where jaq and jq 1.7 differ, these
# are jq 1.7.1's definitions (from its src/builtin.jq, MIT licence), so that filters
# written for jq behave the same here. Each one is checked by the conformance corpus
# (crates/ferry-engine/tests/jq_corpus).

# Paths and objects
def to_entries: [keys_unsorted[] as $k | {key: $k, value: .[$k]}];
def from_entries: map((.key // .Key // .name // .Name) as $k
  | if $k | type == "string" then {($k): (if has("value") then .value else .Value end)}
    else error("Object keys must be strings") end) | add | . // {};
def with_entries(f): to_entries | map(f) | from_entries;
def pick(pathexps): . as $in | reduce path(pathexps) as $a (null; setpath($a; $in | getpath($a)));
def walk(f): def w: if type == "object" then map_values(w) elif type == "array" then map(w) else . end | f; w;

# Arrays
def _flatten($x): reduce .[] as $i ([]; if $i | type == "array" and $x != 0 then . + ($i | _flatten($x - 1)) else . + [$i] end);
def flatten($x): if $x < 0 then error("flatten depth must not be negative") else _flatten($x) end;
def flatten: _flatten(-1);
def join($x): reduce .[] as $i (null;
  (if . == null then "" else . + $x end) +
  ($i | if type == "boolean" or type == "number" then tostring else . // "" end)) // "";
def nth($n; g): if $n < 0 then error("nth doesn't support negative indices")
  else label $out | foreach g as $item ($n + 1; . - 1; if . <= 0 then $item, break $out else empty end) end;
def last(g): reduce g as $item (null; $item);
def limit($n; f): if $n > 0 then label $out | foreach f as $item ($n; . - 1; $item, if . <= 0 then break $out else empty end)
  elif $n == 0 then empty else f end;

# Streams
def tostream: path(def r: (.[]? | r), .; r) as $p | getpath($p) | reduce path(.[]?) as $q ([$p, .]; [$p + $q]);
def fromstream(i): {x: null, e: false} as $init
  | foreach i as $i ($init;
      if .e then $init else . end
      | if $i | length == 2
        then setpath(["e"]; $i[0] | length == 0) | setpath(["x"] + $i[0]; $i[1])
        else setpath(["e"]; $i[0] | length == 1) end;
      if .e then .x else empty end);
def truncate_stream(stream): . as $n | null | stream | . as $input
  | if (.[0] | length) > $n then setpath([0]; $input[0][$n:]) else empty end;

# SQL-style operators
def INDEX(stream; idx_expr): reduce stream as $row ({}; .[$row | idx_expr | tostring] = $row);
def INDEX(idx_expr): INDEX(.[]; idx_expr);
def JOIN($idx; idx_expr): [.[] | [., $idx[idx_expr]]];
def JOIN($idx; stream; idx_expr): stream | [., $idx[idx_expr]];
def JOIN($idx; stream; idx_expr; join_expr): stream | [., $idx[idx_expr]] | join_expr;
def IN(s): any(s == .; .);
def IN(src; s): any(src == s; .);

# @csv and @tsv (jaq has neither): an array's values as one row; strings quoted (csv) or
# escaped (tsv), numbers as jq prints them, booleans as words, null as nothing.
def _row_value(s): if type == "string" then s elif type == "number" then tojson
  elif type == "boolean" then tostring elif . == null then ""
  else error("\(type) (\(tojson)) is not valid in a csv row") end;
def _row(s; $sep): if type == "array" then map(_row_value(s)) | join($sep)
  else error("\(type) (\(tojson)) cannot be \(if $sep == "," then "csv" else "tsv" end)-formatted, only an array can be") end;
def @csv: _row("\"" + (split("\"") | join("\"\"")) + "\""; ",");
def @tsv: _row(split("\\") | join("\\\\") | split("\t") | join("\\t") | split("\n") | join("\\n") | split("\r") | join("\\r"); "\t");

# Formats by name
def format($f):
    if $f == "text" then @text elif $f == "json" then @json elif $f == "html" then @html
  elif $f == "uri" then @uri elif $f == "csv" then @csv elif $f == "tsv" then @tsv
  elif $f == "sh" then @sh elif $f == "base64" then @base64 elif $f == "base64d" then @base64d
  else error("\($f) is not a valid format") end;

# Deleting several paths: the longest and last first, so that earlier indices stay valid.
# A path that is not there is left alone (no objects made on the way).
def _delpath_exists($p): ($p | length) == 0 or (getpath($p[:-1]) as $up | $p[-1] as $k
  | if ($up | type) == "object" then $up | has($k)
    elif ($up | type) == "array" then ($k | type) == "object" or ($k < ($up | length) and $k >= -($up | length))
    else false end);
def delpaths($paths): reduce ($paths | sort | reverse)[] as $p (.;
  if $p == [] then null elif _delpath_exists($p) then getpath($p) |= empty else . end);
def del(f): delpaths([path(f)]);

# Strings: anything that is not a string with that start (end) comes back unchanged.
def ltrimstr($x): if type == "string" and ($x | type) == "string" and startswith($x) then .[($x | length):] else . end;
def rtrimstr($x): if type == "string" and ($x | type) == "string" and endswith($x) and ($x | length) > 0 then .[:length - ($x | length)] else . end;

# Generators
def range($init; $upto; $by):
    if $by > 0 then $init | while(. < $upto; . + $by)
  elif $by < 0 then $init | while(. > $upto; . + $by)
  else empty end;

# Numbers: division by zero is an error (as in jq), so nan and infinite are read, not divided.
def nan: "NaN" | fromjson;
def infinite: "Infinity" | fromjson;
def isnan: . < nan and nan < .;
def isinfinite: . == infinite or . == -infinite;
def isfinite: isnumber and (isinfinite | not);
def isnormal: isnumber and ((. == 0 or isnan or isinfinite or fabs < 2.2250738585072014e-308) | not);
def logb: if . == 0.0 then -infinite elif isinfinite then infinite elif isnan then . else ilogb | . + 0.0 end;
def significand: if isinfinite or isnan then . elif . == 0 then . * 1 else frexp | .[0] * 2 end;
def gamma: lgamma;

# Dates: jq's ISO 8601 form has whole seconds, from a number or a broken-down time.
def todateiso8601: strftime("%Y-%m-%dT%H:%M:%SZ");
def todate: todateiso8601;
def fromdateiso8601: strptime("%Y-%m-%dT%H:%M:%SZ") | mktime;
def fromdate: fromdateiso8601;

# From jq's manual beyond what jq 1.7.1 itself has (jq 1.6's, jq 1.8's).
def leaf_paths: paths(scalars);
def ascii: [.] | implode;
def toarray: if type == "array" then . else [.] end;
def have_literal_numbers: true;
def have_decnum: true;
def dateadd(u; n): . + n;
def datesub(u; n): . - n;
def date: todate;
def trimstr($x): ltrimstr($x) | rtrimstr($x);
