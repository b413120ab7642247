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
