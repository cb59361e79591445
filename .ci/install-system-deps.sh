#!/usr/bin/env bash
# Installs the Debian packages that the real-client integration tests and the benchmarks need:
#   skopeo, podman, buildah      real OCI clients driven by tests/integration/test_clients.py
#   uidmap, crun                 what podman/buildah need to run as root (vfs storage, chroot)
#   docker-registry              CNCF distribution 2.8.2, the reference registry for benchmarks
#   wrk, apache2-utils           request-rate load generators (wrk, ab) and htpasswd
#   openssl, curl                token fixture signing and readiness probes
#   debootstrap                  a real Debian 12 root filesystem for the scanner's accuracy tests
#   rpm, maven, golang-go, ruby, real package tools the scanner's analyzers and version rules are
#   default-jdk-headless         checked against (rpmdb, Maven ordering, Go build info, gems, jars)
#
# Idempotent: only packages whose binary is missing are installed, and when every binary is
# present apt is not touched at all, so repeated CI runs on the same machine cost nothing (and
# already-installed packages such as openssl are never upgraded as a side effect).
set -euo pipefail

# package:binary — the binary proves the package is installed.
REQUIRED=(
  skopeo:/usr/bin/skopeo
  podman:/usr/bin/podman
  buildah:/usr/bin/buildah
  uidmap:/usr/bin/newuidmap
  crun:/usr/bin/crun
  docker-registry:/usr/bin/docker-registry
  wrk:/usr/bin/wrk
  apache2-utils:/usr/bin/ab
  apache2-utils:/usr/bin/htpasswd
  openssl:/usr/bin/openssl
  curl:/usr/bin/curl
  debootstrap:/usr/sbin/debootstrap
  rpm:/usr/bin/rpm
  maven:/usr/bin/mvn
  golang-go:/usr/bin/go
  ruby:/usr/bin/gem
  default-jdk-headless:/usr/bin/jar
)

missing_packages() {
  local entry
  for entry in "${REQUIRED[@]}"; do
    [ -x "${entry#*:}" ] || echo "${entry%%:*}"
  done | sort -u
}

mapfile -t TODO < <(missing_packages)
if [ "${#TODO[@]}" -eq 0 ]; then
  echo "install-system-deps: all binaries present, skipping apt"
  exit 0
fi
echo "install-system-deps: installing ${TODO[*]}"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi

# docker-registry ships a service that would start on install and take port 5000; a policy-rc.d
# that exits 101 tells invoke-rc.d to start nothing.  It is removed again only if we created it,
# so a policy the machine image already has stays in place.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  remove_policy() { "${SUDO[@]}" rm -f "$POLICY"; }
  trap remove_policy EXIT
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 0755 "$POLICY"
fi

"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${TODO[@]}"

# Under a booted systemd the unit may still have been enabled; make sure it is not running so it
# does not hold port 5000.  Harmless where there is no systemd (containers, CI sandboxes).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  "${SUDO[@]}" systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi

mapfile -t STILL < <(missing_packages)
if [ "${#STILL[@]}" -gt 0 ]; then
  echo "install-system-deps: still missing after install: ${STILL[*]}" >&2
  exit 1
fi
echo "install-system-deps: done"
