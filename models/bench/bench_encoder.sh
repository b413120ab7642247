#!/usr/bin/env bash
# Encoder speed, Rust (ort) beside Python onnxruntime on the same model file and sentences.
# Sentences: the first 200 texts of ../shared/eval/banking77_test.csv plus the 56 Chinese
# customer-service sentences in models/bench/sentences_zh.txt. Usage: models/bench/bench_encoder.sh [THREADS]
# Runs each side twice: intra-op spinning off (the Rust product default) and on (onnxruntime's own
# default, what Python uses unless told otherwise), prints one JSON line per run with the load
# average before it, then the Rust/Python ratios of the pairs with the same settings.
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
OUT="$(mktemp)"
trap 'rm -f "$SENT" "$OUT"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-models}"
cargo build --quiet --release -p switchboard-models --example bench_encoder
for SPIN in off on; do
  echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
  "$CARGO_TARGET_DIR/release/examples/bench_encoder" "$SENT" "$THREADS" "$SPIN" | tee -a "$OUT"
  echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
  "$VENV/bin/python" "$HERE/bench_encoder.py" "$SENT" "$ROOT/models/files" "$THREADS" "$SPIN" | tee -a "$OUT"
done
"$VENV/bin/python" - "$OUT" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for spin in (False, True):
    r = next(x for x in runs if x["runtime"].startswith("rust") and x["intra_op_spinning"] == spin)
    p = next(x for x in runs if x["runtime"].startswith("python") and x["intra_op_spinning"] == spin)
    print(f"# spinning {'on ' if spin else 'off'}: Rust/Python single {r['single_per_s']:.1f}/{p['single_per_s']:.1f} = "
          f"{r['single_per_s'] / p['single_per_s']:.2f}x, batched {r['batched32_per_s']:.1f}/{p['batched32_per_s']:.1f} = "
          f"{r['batched32_per_s'] / p['batched32_per_s']:.2f}x")
PY
