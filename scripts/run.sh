#!/usr/bin/env bash
# Runs Switchboard on its embedded default: SQLite under ./data, the in-process bus, and the
# demo tenant created on first start. Extra arguments go to `switchboard serve`
# (e.g. --addr 0.0.0.0:8080, --database-url postgres://...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec cargo run --release --locked -p switchboard-gateway --bin switchboard -- serve "$@"
