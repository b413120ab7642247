#!/usr/bin/env bash
# The sensitive-word benchmark and, on the very same corpus, the Python ahocorasick-rs reference,
# for a same-machine ratio. The Python venv lives in the (git-ignored) target dir. The release
# build shares the workspace's target dir (release and debug artifacts live side by side).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target_dir="${CARGO_TARGET_DIR:-$here/../target}"
words="${1:-$here/../../shared/eval/sensitive_words_zh_65k.txt}"
mkdir -p "$target_dir/bench"
corpus="$target_dir/bench/zh_corpus.txt"

CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release -p switchboard-policies --example bench_sensitive
echo "load before: $(uptime)"
CARGO_TARGET_DIR="$target_dir" cargo run --quiet --release -p switchboard-policies --example bench_sensitive -- "$words" "$corpus"

venv="$target_dir/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import ahocorasick_rs' 2>/dev/null || "$venv/bin/pip" install --quiet ahocorasick-rs
"$venv/bin/python" "$here/benches/sensitive_reference.py" "$words" "$corpus"
echo "load after:  $(uptime)"
