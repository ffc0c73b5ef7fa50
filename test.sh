#!/usr/bin/env bash
# The whole test suite: installs what the tests need (quietly, idempotently), then checks
# formatting and lints and runs every test. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
# The real kubectl is the independent client the sandbox tests talk to. The machine image ships
# the 1.27–1.33 clients; Debian's kubernetes-client (1.20) is a fallback that is too old for
# some checks, so say so instead of failing mysteriously.
if ! command -v kubectl >/dev/null 2>&1; then
  need_apt+=(kubernetes-client)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

export INSTA_UPDATE=no
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
