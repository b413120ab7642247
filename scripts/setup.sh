#!/usr/bin/env bash
# Everything the build and the product need on a fresh machine of this project's kind, installed
# by the project itself. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The ONNX Runtime library that `ort` loads at run time (from the onnxruntime wheel on PyPI).
if [[ -f scripts/setup-onnxruntime.sh ]]; then
  bash scripts/setup-onnxruntime.sh >/dev/null
fi

# OpenSSL headers and pkg-config: reqwest's native-tls (HTTPS to WeChat, Douyin and push hooks,
# and async-openai) builds openssl-sys against the system library.
if ! pkg-config --exists openssl 2>/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
fi

# The operator console (gateway/admin-ui, Preact + Vite): `npm ci` when node_modules is missing or
# older than the lock file, `npm run build` when dist is missing or older than any source file.
# gateway/build.rs embeds dist into the binary (without it /admin answers 503 console_not_built).
admin_ui=gateway/admin-ui
if command -v npm >/dev/null 2>&1; then
  if [[ ! -f $admin_ui/node_modules/.package-lock.json \
        || $admin_ui/package-lock.json -nt $admin_ui/node_modules/.package-lock.json ]]; then
    (cd "$admin_ui" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [[ ! -f $admin_ui/dist/index.html ]] \
     || [[ -n "$(find "$admin_ui/src" "$admin_ui/index.html" "$admin_ui/vite.config.js" \
                 "$admin_ui/package.json" "$admin_ui/package-lock.json" \
                 -newer "$admin_ui/dist/index.html" -print -quit)" ]]; then
    (cd "$admin_ui" && npm run build --silent >/dev/null)
  fi
else
  echo "npm not found: the operator console (/admin) is not built" >&2
fi
