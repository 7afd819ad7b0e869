#!/usr/bin/env bash
# Makes sure the real components the tests use are on this machine: Debian's prometheus
# (server and promtool), openssl and ca-certificates. Installs what is missing when run as
# root on Debian; otherwise says what to install and fails.
set -euo pipefail

missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v openssl >/dev/null || missing+=(openssl)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v mkfifo >/dev/null || missing+=(coreutils)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test-deps: installing ${missing[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "test-deps: the tests need these Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
  exit 1
fi
