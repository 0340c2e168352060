#!/usr/bin/env bash
# G0 end-to-end smoke: ingest workers CSV over HTTP, query it, restart, query again.
#
#   scripts/g0_smoke.sh [--backend s3|local] [--rows N] [--expect-count N] [--workdir DIR]
#
# Run after the README's set-up (make test or make run created .venv). Starts everything it needs
# (moto's S3 server for --backend s3, then `lakehouse serve`) on free loopback ports, stops it all
# on exit (also on failure), prints the timings, and exits 0 only if every check held.
# --expect-count overrides the expected count(*) (used by the tests to prove a failing check fails).
set -euo pipefail

BACKEND=s3
ROWS=500000
EXPECT_COUNT=""
WORKDIR=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --backend) BACKEND="$2"; shift 2 ;;
    --rows) ROWS="$2"; shift 2 ;;
    --expect-count) EXPECT_COUNT="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ "$BACKEND" == s3 || "$BACKEND" == local ]] || { echo "--backend must be s3 or local" >&2; exit 2; }
EXPECT_COUNT="${EXPECT_COUNT:-$ROWS}"

REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$REPO/.venv/bin"
PY="$BIN/python"
[[ -x "$BIN/lakehouse" ]] || { echo "no $BIN/lakehouse: run the README's set-up (make test) first" >&2; exit 2; }

if [[ "$ROWS" == 500000 ]]; then NAME=workers_500k; else NAME="workers_${ROWS}"; fi
WORKDIR="${WORKDIR:-$(mktemp -d -t g0-smoke-XXXXXX)}"
mkdir -p "$WORKDIR"
CSV="$WORKDIR/$NAME.csv"
SERVER_PID=""
MOTO_PID=""
FAILED=0

log() { printf '[g0-smoke] %s\n' "$*"; }
fail() { printf '[g0-smoke] FAIL: %s\n' "$*" >&2; FAILED=1; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { "$PY" -c 'import time; print(time.perf_counter())'; }

cleanup() {
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [[ -n "$MOTO_PID" ]] && kill -TERM "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT

# Poll an URL until it answers (never sleep a fixed time); give up after $2 seconds.
poll() {
  local url="$1" budget="${2:-30}" pid="${3:-}" deadline
  deadline=$(( $(date +%s) + budget ))
  while (( $(date +%s) < deadline )); do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
CONFIG="$WORKDIR/lakehouse.toml"
if [[ "$BACKEND" == s3 ]]; then
  MOTO_PORT=$(free_port)
  "$BIN/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORKDIR/moto.log" 2>&1 &
  MOTO_PID=$!
  poll "http://127.0.0.1:$MOTO_PORT/moto-api/" 30 "$MOTO_PID" || { fail "moto did not start"; exit 1; }
  log "moto S3 server on 127.0.0.1:$MOTO_PORT"
  cat >"$WORKDIR/secrets.toml" <<TOML
[s3]
access_key_id = "smoke-access-key"
secret_access_key = "smoke-secret-key"
TOML
  cat >"$CONFIG" <<TOML
[server]
port = $PORT
[storage]
backend = "s3"
data_dir = "$WORKDIR/data"
[storage.s3]
endpoint_url = "http://127.0.0.1:$MOTO_PORT"
bucket = "g0-smoke"
create_bucket = true
[secrets]
file = "$WORKDIR/secrets.toml"
TOML
else
  cat >"$CONFIG" <<TOML
[server]
port = $PORT
[storage]
backend = "local"
data_dir = "$WORKDIR/data"
TOML
fi

start_server() {
  LAKEHOUSE_CONFIG="$CONFIG" "$BIN/lakehouse" serve >>"$WORKDIR/server.log" 2>&1 &
  SERVER_PID=$!
  poll "$URL/health" 60 "$SERVER_PID" || { fail "server did not become healthy (see $WORKDIR/server.log)"; exit 1; }
}

stop_server() {
  kill -TERM "$SERVER_PID"
  local code=0
  wait "$SERVER_PID" || code=$?
  SERVER_PID=""
  [[ $code == 0 ]] || fail "server exited with $code on SIGTERM"
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }

if [[ ! -s "$CSV" ]]; then
  log "generating $CSV ($ROWS rows)"
  "$PY" "$REPO/scripts/gen_workers.py" --rows "$ROWS" --out "$CSV"
fi
CSV_BYTES=$(stat -c %s "$CSV")

start_server
log "lakehouse ($BACKEND backend) on $URL"

# -- ingest ---------------------------------------------------------------------------------
t0=$(now)
HTTP=$(curl -sS -o "$WORKDIR/ingest.json" -w '%{http_code}' -F "file=@$CSV" "$URL/v1/ingest?name=$NAME")
t1=$(now)
INGEST_S=$("$PY" -c "print(f'{$t1-$t0:.2f}')")
[[ "$HTTP" == 200 ]] || { fail "ingest answered $HTTP: $(head -c 500 "$WORKDIR/ingest.json")"; exit 1; }
ROW_COUNT=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["row_count"])' "$WORKDIR/ingest.json")
[[ "$ROW_COUNT" == "$EXPECT_COUNT" ]] && log "ok: row_count $ROW_COUNT" || fail "row_count $ROW_COUNT, expected $EXPECT_COUNT"
INGEST_RSS=$(peak_rss_mib)

curl -fsS "$URL/storage/list?prefix=datasets/$NAME/" >"$WORKDIR/list.json"
PARQUET_BYTES=$("$PY" - "$WORKDIR/list.json" <<'PYEOF'
import json, sys
listing = json.load(open(sys.argv[1]))
objects = listing["objects"] if isinstance(listing, dict) else listing
parquet = [o for o in objects if o["key"].endswith(".parquet")]
print(sum(o["size"] for o in parquet) if parquet else 0)
PYEOF
)
[[ "$PARQUET_BYTES" -gt 0 ]] && log "ok: Parquet under datasets/$NAME/ ($PARQUET_BYTES bytes)" || fail "no Parquet listed under datasets/$NAME/"

# -- queries --------------------------------------------------------------------------------
COUNT_SQL="SELECT count(*) FROM $NAME"
GROUP_SQL="SELECT role, count(*) FROM $NAME WHERE state='IL' GROUP BY role"

sql() {  # sql "<query>" <outfile> -> prints seconds
  local body; body=$("$PY" -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$1")
  curl -sS -o "$2" -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' -d "$body" "$URL/v1/sql"
}

check_queries() {  # $1: label
  local out code secs
  read -r code secs < <(sql "$COUNT_SQL" "$WORKDIR/count.json")
  if [[ "$code" == 200 && "$(tr -d ' \n' <"$WORKDIR/count.json")" == "[{\"count_star()\":$EXPECT_COUNT}]" ]]; then
    log "ok ($1): count(*) -> $(cat "$WORKDIR/count.json") in ${secs}s"
  else
    fail "($1) count(*) answered $code $(head -c 300 "$WORKDIR/count.json"), expected [{\"count_star()\":$EXPECT_COUNT}]"
  fi
  eval "COUNT_S_$1=$secs"
  read -r code secs < <(sql "$GROUP_SQL" "$WORKDIR/group.json")
  if [[ "$code" == 200 ]] && "$PY" - "$WORKDIR/group.json" "$CSV" <<'PYEOF'
import json, sys
import duckdb
served = sorted((row["role"], row["count_star()"]) for row in json.load(open(sys.argv[1])))
direct = sorted(duckdb.sql(
    "SELECT role, count(*) FROM read_csv(?) WHERE state='IL' GROUP BY role", params=[sys.argv[2]]
).fetchall())
sys.exit(0 if served == direct and served else 1)
PYEOF
  then
    log "ok ($1): IL group-by equals DuckDB on the CSV ($(wc -c <"$WORKDIR/group.json") bytes) in ${secs}s"
  else
    fail "($1) IL group-by answered $code and differs from DuckDB on the CSV"
  fi
  eval "GROUP_S_$1=$secs"
}

check_queries first

# -- restart: the catalog must survive ------------------------------------------------------
SERVED_RSS=$(peak_rss_mib)
stop_server
start_server
log "restarted"
check_queries restarted
stop_server

log "---- timings ($BACKEND backend, $ROWS rows) ----"
log "csv bytes:           $CSV_BYTES"
log "parquet bytes:       $PARQUET_BYTES"
log "ingest seconds:      $INGEST_S"
log "count(*) seconds:    ${COUNT_S_first} (after restart ${COUNT_S_restarted})"
log "IL group-by seconds: ${GROUP_S_first} (after restart ${GROUP_S_restarted})"
log "server peak RSS MiB: $INGEST_RSS after ingest, $SERVED_RSS after queries"
if [[ $FAILED == 0 ]]; then
  log "G0 smoke: PASSED"
else
  log "G0 smoke: FAILED"
  exit 1
fi
