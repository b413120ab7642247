#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate, the store suite on SQLite and on the
# local PostgreSQL server, the bus suite in process and on the local Redis, the end-to-end tests on real sockets, and the widget in headless
# Chromium. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

# Debian's Chromium for the browser test (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# A Chinese font, so the console's Chinese screenshots (SWITCHBOARD_SCREENSHOTS=1) show glyphs.
if ! fc-list 2>/dev/null | grep -qi "wqy"; then
  echo "installing Debian's fonts-wqy-microhei for the Chinese screenshots"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-microhei >/dev/null
fi

# Debian's nginx: the shipped deploy/nginx configuration is run in front of a server
# (tests/e2e/operations.rs), which must not skip here.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing Debian's nginx for the reverse-proxy test"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
# The package may start a system nginx on port 80; the test runs its own.
export SWITCHBOARD_REQUIRE_NGINX=1

# The store suite runs on the local PostgreSQL server too; start it if it stopped.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi

# The bus suite runs on the local Redis too; start it if it stopped.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

# No module of the gateway's three crates uses another in a circle (a fraction of a second).
python3 scripts/check-module-cycles.py gateway/src gateway/engine/src gateway/store/src

cargo test --workspace --locked --no-fail-fast "$@"
