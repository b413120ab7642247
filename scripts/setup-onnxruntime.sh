#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that `ort` (load-dynamic, api-31) loads at run time.
#
# Source: the `onnxruntime==1.31.1` wheel from PyPI (the library is under onnxruntime/capi/).
# Target: <repo>/.cache/onnxruntime/libonnxruntime.so.1.31.1 (git-ignored); the path is printed
# on stdout. Idempotent: when the library is already there, nothing is downloaded.
# Override the folder with ORT_CACHE_DIR. The Rust side finds the library through
# ORT_DYLIB_PATH or, failing that, this default location.
set -euo pipefail

ORT_VERSION="1.31.1"
LIB_NAME="libonnxruntime.so.${ORT_VERSION}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="${ORT_CACHE_DIR:-$ROOT/.cache/onnxruntime}"
DEST="$DEST_DIR/$LIB_NAME"

if [[ -s "$DEST" ]]; then
  echo "$DEST"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64 | Linux-aarch64) ;;
  *) echo "setup-onnxruntime: unsupported platform $(uname -s)-$(uname -m) (linux x86_64/aarch64 only)" >&2; exit 1 ;;
esac

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "setup-onnxruntime: needs python3 with pip (apt-get install python3-pip)" >&2
  exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "setup-onnxruntime: downloading onnxruntime==${ORT_VERSION} wheel from PyPI" >&2
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$TMP" "onnxruntime==${ORT_VERSION}" >&2
WHEEL="$(ls "$TMP"/onnxruntime-"${ORT_VERSION}"-*.whl | head -n1)"

mkdir -p "$DEST_DIR"
"$PYTHON" - "$WHEEL" "$DEST.part" "$LIB_NAME" <<'PY'
import sys, zipfile, shutil
wheel, dest, name = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith("/capi/" + name)]
    if not members:
        sys.exit(f"setup-onnxruntime: {name} not found in {wheel}")
    with z.open(members[0]) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
PY
mv "$DEST.part" "$DEST"
echo "$DEST"
