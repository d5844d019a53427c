#!/usr/bin/env bash
# graphile-worker side-by-side anchor (queue throughput on the local PostgreSQL).
#
# Protocol (after graphile-worker's own perfTest): fresh database, --schema-only,
# time one empty `--once` run (startup/shutdown cost), enqueue JOBS no-op jobs in ONE
# call to graphile_worker.add_jobs(job_spec[]), then time PROCS parallel
# `graphile-worker --once` processes (CONCURRENCY jobs each) until the queue is empty.
# Done twice: (a) unbatched defaults, (b) batched: localQueue.size=LQ_SIZE,
# completeJobBatchDelay=0, failJobBatchDelay=0.
#
# Prints one JSON line per measurement on stdout (progress goes to stderr):
#   {"bench":"graphile","mode":"enqueue"|"unbatched"|"batched",...,"jobs_per_s":N}
# work jobs_per_s      = JOBS / (work wall time - empty-run startup time)   (perfTest's figure)
# work jobs_per_s_wall = JOBS / work wall time                              (includes startup)
#
# Usage: bash graphile.sh            # one round (both modes)
#        RUNS=3 bash graphile.sh     # three rounds
# Env: JOBS (200000) GW_PROCS (2) GW_CONCURRENCY (24) LQ_SIZE (500) GW_VERSION (0.18.0)
#      GW_DIR (/tmp/gw-bench, wiped) GW_DB (gw_bench, dropped+recreated)
#      PGHOST (/var/run/postgresql: unix socket, peer auth) PGUSER (current user)
#      PGPORT (5432) PGPASSWORD (unset: trust or peer auth) — `ferry bench --graphile`
#      sets PGHOST/PGPORT/PGUSER/PGPASSWORD from --postgres-url, and GW_DIR/GW_DB to its own.
#      GW_REUSE_INSTALL=1 keeps an existing install of the same version in GW_DIR.
set -euo pipefail

JOBS=${JOBS:-200000}
PROCS=${GW_PROCS:-2}
CONC=${GW_CONCURRENCY:-24}
LQ_SIZE=${LQ_SIZE:-500}
RUNS=${RUNS:-1}
GW_VERSION=${GW_VERSION:-0.18.0}
GW_DIR=${GW_DIR:-/tmp/gw-bench}
DB=${GW_DB:-gw_bench}
export PGHOST=${PGHOST:-/var/run/postgresql}
export PGPORT=${PGPORT:-5432}
export PGUSER=${PGUSER:-$(id -un)} # node-postgres reads $USER, which may be unset
# node-postgres and psql both read PGUSER and PGPASSWORD from the environment.
export DATABASE_URL="postgres:///${DB}?host=${PGHOST}&port=${PGPORT}"
export NO_LOG_SUCCESS=1 # as perfTest: do not log each completed job

log() { echo "[graphile] $*" >&2; }
now_ns() { date +%s%N; }

# ---------- install ----------
installed_version() {
  node -e "console.log(require('$GW_DIR/node_modules/graphile-worker/package.json').version)" 2>/dev/null || true
}
if [[ "${GW_REUSE_INSTALL:-0}" == 1 && "$(installed_version)" == "$GW_VERSION" ]]; then
  log "reusing graphile-worker $GW_VERSION in $GW_DIR"
else
  log "installing graphile-worker@$GW_VERSION into fresh $GW_DIR"
  rm -rf "$GW_DIR"
  mkdir -p "$GW_DIR/tasks"
  (cd "$GW_DIR" && npm init -y >/dev/null &&
    npm install --no-audit --no-fund --loglevel=error "graphile-worker@$GW_VERSION" >&2)
fi
mkdir -p "$GW_DIR/tasks"
CLI="$GW_DIR/node_modules/graphile-worker/dist/cli.js"

# ---------- task, configs, enqueue helper ----------
cat >"$GW_DIR/tasks/noop.cjs" <<'EOF'
// no-op task: does nothing, succeeds
module.exports = async () => {};
EOF

write_config() { # $1 = file, $2 = extra worker options (JS object body)
  cat >"$1" <<EOF
module.exports = {
  worker: {
    connectionString: process.env.DATABASE_URL,
    taskDirectory: "$GW_DIR/tasks",
    fileExtensions: [".cjs"],
    crontabFile: "$GW_DIR/no-crontab",
    concurrentJobs: $CONC,
    maxPoolSize: $((CONC + 1)),
    gracefulShutdownAbortTimeout: 2500,
    $2
  },
};
EOF
}
write_config "$GW_DIR/unbatched.config.cjs" ""
write_config "$GW_DIR/batched.config.cjs" \
  "localQueue: { size: $LQ_SIZE }, completeJobBatchDelay: 0, failJobBatchDelay: 0,"

# One round trip: the JSON array is sent as one parameter and expanded server-side
# into graphile_worker.job_spec[] for a single add_jobs() call.
cat >"$GW_DIR/enqueue.cjs" <<'EOF'
const { Client } = require("pg");
const n = parseInt(process.argv[2], 10);
(async () => {
  const c = new Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  const specs = new Array(n);
  for (let i = 0; i < n; i++) specs[i] = { identifier: "noop", payload: { id: i } };
  const body = JSON.stringify(specs);
  const t0 = process.hrtime.bigint();
  const r = await c.query(
    `select count(*)::int as n from graphile_worker.add_jobs(
       array(select json_populate_recordset(null::graphile_worker.job_spec, $1::json)))`,
    [body],
  );
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await c.end();
  if (r.rows[0].n !== n) throw new Error(`add_jobs returned ${r.rows[0].n} rows, expected ${n}`);
  console.log(ms.toFixed(1));
})().catch((e) => { console.error(e); process.exit(1); });
EOF

# ---------- one measurement ----------
gw_ver=$(installed_version)
pg_ver=$(psql -d postgres -Atc "show server_version")
node_ver=$(node --version)

run_mode() { # $1 = unbatched|batched, $2 = round
  local mode=$1 round=$2 cfg="$GW_DIR/$1.config.cjs"
  log "round $round, $mode: recreating database $DB"
  dropdb --if-exists "$DB" && createdb "$DB"
  (cd "$GW_DIR" && node "$CLI" -C "$cfg" --schema-only) >&2

  local t0 t1 startup_ms enqueue_ms work_ms
  t0=$(now_ns)
  (cd "$GW_DIR" && node "$CLI" -C "$cfg" --once) >&2
  t1=$(now_ns)
  startup_ms=$(((t1 - t0) / 1000000))

  enqueue_ms=$(cd "$GW_DIR" && node enqueue.cjs "$JOBS")
  local queued
  queued=$(psql -d "$DB" -Atc "select count(*) from graphile_worker._private_jobs")
  [[ "$queued" == "$JOBS" ]] || { log "expected $JOBS queued jobs, found $queued"; exit 1; }
  psql -d "$DB" -qc "vacuum analyze graphile_worker._private_jobs" >&2

  log "round $round, $mode: working $JOBS jobs with $PROCS x $CONC"
  local pids=() rc=0
  t0=$(now_ns)
  for ((p = 0; p < PROCS; p++)); do
    (cd "$GW_DIR" && exec node "$CLI" -C "$cfg" --once) >&2 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
  t1=$(now_ns)
  work_ms=$(((t1 - t0) / 1000000))
  [[ $rc == 0 ]] || { log "a worker process failed (rc=$rc)"; exit 1; }

  local left
  left=$(psql -d "$DB" -Atc "select count(*) from graphile_worker._private_jobs")
  [[ "$left" == 0 ]] || { log "$left jobs left after the run"; exit 1; }

  python3 - "$mode" "$round" "$JOBS" "$enqueue_ms" "$startup_ms" "$work_ms" "$PROCS" "$CONC" \
    "$LQ_SIZE" "$gw_ver" "$pg_ver" "$node_ver" <<'EOF'
import json, sys
mode, rnd, jobs, enq, start, work, procs, conc, lq, gw, pg, nd = sys.argv[1:]
jobs, enq, start, work = int(jobs), float(enq), int(start), int(work)
common = {"bench": "graphile", "round": int(rnd), "jobs": jobs,
          "graphile_worker": gw, "postgres": pg, "node": nd}
print(json.dumps({**common, "mode": "enqueue", "before": mode, "ms": enq,
                  "jobs_per_s": round(jobs / enq * 1000, 1)}))
print(json.dumps({**common, "mode": mode, "procs": int(procs), "concurrency": int(conc),
                  "local_queue": int(lq) if mode == "batched" else None,
                  "work_ms": work, "startup_ms": start,
                  "jobs_per_s": round(jobs / (work - start) * 1000, 1),
                  "jobs_per_s_wall": round(jobs / work * 1000, 1)}))
EOF
}

for ((r = 1; r <= RUNS; r++)); do
  run_mode unbatched "$r"
  run_mode batched "$r"
done
dropdb --if-exists "$DB"
