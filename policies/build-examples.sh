#!/usr/bin/env bash
# Builds the example and hostile guest policies under policies/examples/ into WASM components and
# copies them to policies/fixtures/ (committed, so the host's tests never need a wasm toolchain).
#
# How: the guests use wit-bindgen and are compiled for wasm32-unknown-unknown (whose std imports
# nothing, unlike wasm32-wasip2's) and linked with wasm-component-ld, the component linker that
# ships with rustup's toolchain. So the only thing installed is the rustup target: no
# `cargo install`, no wasm-tools.
#
# Usage: policies/build-examples.sh          (run from anywhere)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target_dir="${CARGO_TARGET_DIR_GUESTS:-$here/../target-policies/guests}"
target=wasm32-unknown-unknown

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
linker="$(rustc --print sysroot)/lib/rustlib/$host/bin/wasm-component-ld"
if [ ! -x "$linker" ]; then
    # Installed with the wasm32-wasip2 target on older toolchains.
    rustup target add wasm32-wasip2
fi
[ -x "$linker" ] || { echo "wasm-component-ld not found at $linker" >&2; exit 1; }

cd "$here/examples"
# examples/Cargo.lock pins wit-bindgen and friends.
CARGO_TARGET_DIR="$target_dir" \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$linker" \
    cargo build --release --target "$target"

mkdir -p "$here/fixtures"
for manifest in "$here"/examples/*/Cargo.toml; do
    crate="$(basename "$(dirname "$manifest")")"
    built="$target_dir/$target/release/${crate//-/_}.wasm"
    cp "$built" "$here/fixtures/$crate.wasm"
    printf '%-22s %7d bytes\n' "$crate.wasm" "$(stat -c %s "$built")"
done
