#!/usr/bin/env bash
# Encoder speed, Rust (ort) beside Python onnxruntime on the same model file and sentences.
# Sentences: the first 200 texts of ../shared/eval/banking77_test.csv plus the 56 Chinese
# customer-service sentences in models/bench/sentences_zh.txt. Usage: models/bench/bench_encoder.sh [THREADS]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
THREADS="${1:-2}"
"$ROOT/scripts/setup-onnxruntime.sh" >/dev/null
VENV="$ROOT/models/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install --quiet numpy==2.4.6 onnxruntime==1.31.1 tokenizers==0.22.2
SENT="$(mktemp)"
trap 'rm -f "$SENT"' EXIT
"$VENV/bin/python" - "$ROOT/../shared/eval/banking77_test.csv" >"$SENT" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))[1:201]
print("\n".join(r[0].replace("\n", " ") for r in rows))
PY
cat "$HERE/sentences_zh.txt" >>"$SENT"
cd "$ROOT"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-models}" cargo run --quiet --release -p switchboard-models --example bench_encoder -- "$SENT" "$THREADS"
"$VENV/bin/python" "$HERE/bench_encoder.py" "$SENT" "$ROOT/models/files" "$THREADS"
