#!/usr/bin/env bash
# Delivery to a slow target: bench/delivery.sh MAX_IN_FLIGHT TASKS LATENCY_MS [RATE_LIMIT]
# Serves a target that answers after LATENCY_MS, at most 64 requests at once, pushes
# TASKS entities through a webhook and times one route run of all of them (outcomes
# recorded). Uses target/debug/ferry (or FERRY=…); ports 19090 and 19091.
set -e
cd "$(dirname "$0")"
FERRY=${FERRY:-../target/debug/ferry}
M=$1; N=$2; LAT=$3; RATE=${4:-}
W=$(mktemp -d)
python3 delivery_target.py 19091 "$LAT" 64 "$W/peak" & TP=$!
cat > $W/ferry.toml <<T
[storage]
url = "sqlite://$W/ferry.db"
[workers]
poll_interval = "200ms"
[[entity_schemas]]
id = "product"
identifier_path = ["sku"]
[[incoming]]
id = "in"
entity_schema = "product"
subscriber = { type = "webhook" }
[[outgoing]]
id = "out"
$(if [ -n "$RATE" ]; then
  printf '%s\n' "publisher = { type = \"http\", method = \"PUT\", connection = \"target\", path = \"p/{sku}\" }"
  printf '%s\n' "[[connections]]" "id = \"target\"" "type = \"http\"" "base_url = \"http://127.0.0.1:19091/\"" "max_in_flight = $M" "rate_limit = \"$RATE\""
else
  printf '%s\n' "publisher = { type = \"http\", method = \"PUT\", url = \"http://127.0.0.1:19091/p/{sku}\", max_in_flight = $M }"
fi)
[[routes]]
id = "r"
incoming = ["in"]
outgoing = "out"
batch_size = 5000
T
TOKEN=$($FERRY tokens create --config $W/ferry.toml --role admin --name b 2>/dev/null | tail -1)
FERRY_LOG=warn $FERRY serve --config $W/ferry.toml --listen 127.0.0.1:19090 > $W/serve.log 2>&1 & SP=$!
sleep 1.5
python3 -c "import json;print(json.dumps([{'sku':f'P-{i}','v':i} for i in range($N)]))" > $W/body.json
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' --data @$W/body.json http://127.0.0.1:19090/api/v1/webhooks/in
START=$(date +%s.%N)
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:19090/api/v1/routes/r/run
END=$(date +%s.%N)
sleep 1.2
echo "max_in_flight=$M rate_limit=${RATE:-none} tasks=$N latency=${LAT}ms: $(python3 -c "print(f'{$N/($END-$START):.0f} tasks/s in {($END-$START):.2f} s')") ; target peak at once / requests / most in one second: $(cat $W/peak)"
kill $SP $TP 2>/dev/null; wait 2>/dev/null || true
rm -rf "$W"
