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
# Real servers stand in for service pods (tests/common/postgres.rs, redis.rs start their own
# throwaway instances on loopback), and their own clients talk to them through `kip tunnel`.
installed() { dpkg -s "$1" >/dev/null 2>&1; }
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! installed postgresql; then
  need_apt+=(postgresql)
fi
if ! command -v psql >/dev/null 2>&1; then need_apt+=(postgresql-client); fi
if ! command -v redis-server >/dev/null 2>&1; then need_apt+=(redis-server); fi
if ! command -v redis-cli >/dev/null 2>&1; then need_apt+=(redis-tools); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Only the binaries are needed: do not start the packages' own servers (no systemd here
  # anyway; policy-rc.d is the Debian way to say so, and it is removed right after).
  no_start=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    no_start=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$no_start" && chmod +x "$no_start"
  fi
  apt-get install -y -q -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if [ -n "$no_start" ]; then rm -f "$no_start"; fi
fi

export INSTA_UPDATE=no
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
