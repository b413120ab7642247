#!/usr/bin/env bash
# The monitoring kit against live data: starts the product (embedded default, demo tenant) with
# its metrics listener, Debian's Prometheus scraping it with deploy/prometheus/alerts.yml
# loaded, drives customer traffic through the HTTP API, and asks Prometheus every query of
# deploy/grafana/switchboard-dashboard.json (each must answer series); then screenshots
# Prometheus graphing two of the dashboard's queries (docs/screenshots/). Grafana itself is not
# run: it is not in the registries this project installs from.
# Usage: bash scripts/check-dashboard.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
bash scripts/setup.sh
cargo build --release --locked -p switchboard-gateway --bin switchboard

promtool check rules deploy/prometheus/alerts.yml

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

app=127.0.0.1:18480
metrics=127.0.0.1:18481
prom=127.0.0.1:18490
SWITCHBOARD__ADDR="$app" SWITCHBOARD__METRICS_ADDR="$metrics" SWITCHBOARD__DATA_DIR="$work/data" \
  ./target/release/switchboard serve >"$work/server.log" 2>&1 &
pids+=($!)

cat >"$work/prometheus.yml" <<EOF
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: ["$root/deploy/prometheus/alerts.yml"]
scrape_configs:
  - job_name: switchboard
    static_configs: [{targets: ["$metrics"]}]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="$prom" >"$work/prometheus.log" 2>&1 &
pids+=($!)

wait_for() {
  for _ in $(seq 1 120); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "check-dashboard: $1 did not answer" >&2
  tail -20 "$work/server.log" "$work/prometheus.log" >&2
  return 1
}
wait_for "http://$app/healthz"
wait_for "http://$prom/-/ready"

python3 deploy/grafana/check_live.py "http://$app" "http://$prom" deploy/grafana/switchboard-dashboard.json

# Prometheus graphing two of the dashboard's queries over the last minute.
shot() {
  local expr file
  expr="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1")"
  file="$2"
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,900 \
    --virtual-time-budget=8000 --screenshot="$file" \
    "http://$prom/graph?g0.expr=$expr&g0.tab=0&g0.range_input=1m" >/dev/null 2>&1
  echo "screenshot: $file"
}
shot 'sum by (kind) (rate(switchboard_bot_decisions_total[5m]))' docs/screenshots/prometheus-bot-decisions.png
shot 'sum by (tenant, skill_group) (switchboard_queue_length)' docs/screenshots/prometheus-queue-length.png
