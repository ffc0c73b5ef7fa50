#!/usr/bin/env bash
# The whole test suite: prepares the machine (tests/provision.sh: installs what the tests need,
# quietly and idempotently), then checks formatting and lints and runs every test.
# Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

tests/provision.sh

export INSTA_UPDATE=no
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The gateway's fuzz targets are a crate of their own (an instrumented build, outside the
# workspace): lint them, then fuzz each parser for a while (`gateway/fuzz/run` says more).
CARGO_TARGET_DIR=target/fuzz cargo fmt --manifest-path gateway/fuzz/Cargo.toml -- --check
# The targets reach some parsers through `cfg(fuzzing)`, as gateway/fuzz/run builds them.
CARGO_TARGET_DIR=target/fuzz RUSTFLAGS="--cfg fuzzing" cargo clippy --quiet --manifest-path gateway/fuzz/Cargo.toml --bins -- -D warnings
gateway/fuzz/run "${KIP_FUZZ_SECONDS:-30}"
