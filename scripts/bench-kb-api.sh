#!/usr/bin/env bash
# The knowledge base through the API, on a release server (SQLite, the bot not loaded):
# 1. COUNT generated bilingual FAQs with two alternates each (bench_index's generator), imported
#    with one `POST kb/import` (the time until the response: parsed, stored and indexed);
# 2. 3,000 searches `GET kb/search?k=5` (lexical) on one keep-alive connection, each followed by
#    `GET /healthz` on the same connection: the HTTP path's own cost, as a baseline in the same
#    run.
# Usage: scripts/bench-kb-api.sh [COUNT]   (default 100000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count="${1:-100000}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release -p switchboard-gateway --bin switchboard
work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
CARGO_TARGET_DIR="$target" cargo run --quiet --release -p switchboard-knowledge --example bench_index -- \
  "$count" --write-jsonl "$work/faqs.jsonl"
export SWITCHBOARD__BOT__PRELOAD=false SWITCHBOARD__LOG__FILTER=error SWITCHBOARD__DEMO=false
key="$("$target/release/switchboard" tenant create benchkb --admin-email ops@bench.example --json \
  --data-dir "$work/data" | python3 -c 'import json,sys; print(json.load(sys.stdin)["admin_key"])')"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$target/release/switchboard" serve --addr "127.0.0.1:$port" --data-dir "$work/data" >/dev/null &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "load before: $(uptime)"
python3 - "$port" "$key" "$work/faqs.jsonl" <<'PY'
import http.client, json, statistics, sys, time, urllib.parse
port, key, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = open(path, "rb").read()
queries = open(path + ".queries", encoding="utf-8").read().split("\n")
auth = {"Authorization": "Bearer " + key}
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
started = time.perf_counter()
connection.request("POST", "/v1/tenants/benchkb/kb/import?format=jsonl", body=body,
                   headers={**auth, "Content-Type": "application/x-ndjson"})
response = connection.getresponse()
report = json.loads(response.read())
took = time.perf_counter() - started
print(f"import through the API: {len(body) / 1e6:.1f} MB, status {response.status}, "
      f"{took:.2f} s ({report.get('counts', report)})")

def timed(path):
    started = time.perf_counter()
    connection.request("GET", path, headers=auth)
    answer = connection.getresponse()
    data = answer.read()
    assert answer.status == 200, (answer.status, data[:200])
    return time.perf_counter() - started, data

for query in queries[:200]:  # warm-up
    timed("/v1/tenants/benchkb/kb/search?" + urllib.parse.urlencode({"q": query, "k": 5}))
search, health, hits = [], [], 0
for query in queries:
    took, data = timed("/v1/tenants/benchkb/kb/search?" + urllib.parse.urlencode({"q": query, "k": 5}))
    search.append(took)
    hits += len(json.loads(data))
    health.append(timed("/healthz")[0])

def line(name, samples):
    samples = sorted(samples)
    at = lambda p: samples[round((len(samples) - 1) * p)] * 1000
    return f"{name}: p50 {at(0.5):.2f} ms, p99 {at(0.99):.2f} ms, max {samples[-1] * 1000:.2f} ms"

print(line(f"search k=5 over {len(search)} queries ({hits / len(search):.1f} hits each)", search))
print(line("healthz on the same connection", health))
PY
echo "load after: $(uptime)"
