#!/usr/bin/env bash
# Prepares this machine for the test suite: installs what the tests need (quietly,
# idempotently) and makes the two users the ssh tests log in as. Needs root for apt-get.
# `./test.sh` runs it first; run it alone to prepare a machine once.
set -euo pipefail

need_apt=()
# The real kubectl is the independent client the sandbox tests talk to. The machine image ships
# the 1.27–1.33 clients; Debian's kubernetes-client (1.20) is a fallback that is too old for
# some checks, so say so instead of failing mysteriously.
if ! command -v kubectl >/dev/null 2>&1; then
  need_apt+=(kubernetes-client)
fi
# Real servers stand in for service pods (tests/common/postgres.rs, redis.rs, mariadb.rs start their own
# throwaway instances on loopback), and their own clients talk to them through `kip tunnel`.
installed() { dpkg -s "$1" >/dev/null 2>&1; }
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! installed postgresql; then
  need_apt+=(postgresql)
fi
if ! command -v psql >/dev/null 2>&1; then need_apt+=(postgresql-client); fi
if ! command -v redis-server >/dev/null 2>&1; then need_apt+=(redis-server); fi
if ! command -v redis-cli >/dev/null 2>&1; then need_apt+=(redis-tools); fi
# MariaDB stands in for a mysql service's pod (tests/common/mariadb.rs); the `mysql` client runs
# in that pod through `kip service bind`'s exec, on this machine (`--allow-host-exec`).
if ! command -v mariadb-install-db >/dev/null 2>&1 || [ ! -x /usr/sbin/mariadbd ]; then
  need_apt+=(mariadb-server)
fi
if ! command -v mysql >/dev/null 2>&1; then need_apt+=(mariadb-client); fi
# The ssh builtins are tested against a real OpenSSH server the tests start on loopback with
# throwaway keys made by ssh-keygen; sudo is tested through the real sudo.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)
# kip server's image (tests/server_image.rs): buildah builds it (server/image/build), a real
# registry of the test's own on loopback holds it, podman pulls and runs it with runc (crun does
# not run here), and socat with openssl's certificates puts TLS in front of the sandbox as a
# pod's API server. The packages' own registry service is not used.
# The sandbox runs pods with podman (tests/workloads.rs): podman makes each pod's infra
# container with catatonit, iptables confines the pod network, and busybox (static) is the
# tests' image.
for pkg in buildah podman runc docker-registry socat openssl catatonit iptables busybox-static; do
  installed "$pkg" || need_apt+=("$pkg")
done
# The sandbox's images (tests/sandbox_images.rs): `kip sandbox image prepare` makes a Debian root
# with debootstrap; a static busybox is the tiny image `image build` builds; catatonit is what
# podman runs for `--init` and in a pod's infra container, as the sandbox's kubelet will use it.
for pkg in debootstrap busybox-static catatonit; do
  installed "$pkg" || need_apt+=("$pkg")
done
# The web console is tested in a real headless browser: Debian's chromium, driven through
# chromedriver's WebDriver endpoint on loopback (tests/common/browser.rs).
for pkg in chromium chromium-driver; do
  installed "$pkg" || need_apt+=("$pkg")
done
# libfuzzer-sys builds libFuzzer (C++) for gateway/fuzz.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
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

