#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz) for a bounded time each, with libFuzzer and AddressSanitizer
# through cargo fuzz. The crates.io cargo-fuzz is installed if missing; the machine's stable
# toolchain builds with RUSTC_BOOTSTRAP=1 (cargo fuzz asks for nightly flags).
#
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
#
# A crash is saved under tests/fuzz/artifacts/<target>/ and the script fails; copy the input to
# tests/fuzz/regressions/<target>/ and it is replayed by every later run (and by
# `scripts/fuzz.sh 0`, which only replays them). Corpora grow in tests/fuzz/corpus (ignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(web_frame wechat douyin kb_import sensitive_words)
fi
bash scripts/setup.sh
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cd tests/fuzz
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "regressions/$target"
  started=$(date +%s)
  # Known crash inputs first: each must now run clean.
  if compgen -G "regressions/$target/*" >/dev/null; then
    cargo fuzz run --fuzz-dir . "$target" regressions/"$target"/* -- -runs=0
  fi
  if [[ "$seconds" -gt 0 ]]; then
    cargo fuzz run --fuzz-dir . "$target" "corpus/$target" "regressions/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10
  fi
  echo "fuzz $target: done in $(( $(date +%s) - started )) s"
done
