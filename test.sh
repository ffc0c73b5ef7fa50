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
# The ssh builtins are tested against a real OpenSSH server the tests start on loopback with
# throwaway keys made by ssh-keygen; sudo is tested through the real sudo.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Two users the ssh tests log in as: kiptest may sudo without a password, kipnosudo may not.
# The password field `*` leaves them unable to log in with a password but not "locked", which
# sshd would refuse even for keys.
for user in kiptest kipnosudo; do
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh --password '*' "$user"
  fi
done
if [ ! -f /etc/sudoers.d/kiptest ]; then
  echo 'kiptest ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/kiptest.tmp
  chmod 0440 /etc/sudoers.d/kiptest.tmp
  mv /etc/sudoers.d/kiptest.tmp /etc/sudoers.d/kiptest
fi

export INSTA_UPDATE=no
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
