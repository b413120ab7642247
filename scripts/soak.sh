#!/usr/bin/env bash
# The soak run: two nodes on the local PostgreSQL and Redis, visitors reconnecting and resuming
# while agents answer, one node killed halfway (gateway/tests/soak.rs). Prints messages sent,
# receipted, lost (must be 0) and stored twice (must be 0), and each node's peak memory.
#
#   scripts/soak.sh [seconds, default 60] [visitors, default 40]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
SOAK_SECONDS="${1:-60}" SOAK_VISITORS="${2:-40}" \
  cargo test --release --locked -p switchboard-gateway --test soak -- --ignored --nocapture
