#!/usr/bin/env bash
# Makes sure the real components the tests use are on this machine: Debian's prometheus
# (server and promtool), openssl and Python's cryptography (the oracles of
# tests/strict_parsing.rs), curl, ca-certificates, htpasswd (apache2-utils: the committed
# bcrypt fixture), systemd's socket activator and systemd-analyze, a C++
# compiler for libFuzzer (make fuzz), iproute2 (the image tests bring up loopback in a
# network namespace), Java's keytool (a headless JRE: the JKS, JCEKS and Java PKCS#12
# keystores of tests/jks.rs, tests/pkcs12.rs and tests/keystores.rs), Debian's node_exporter
# (tests/check.rs: it serves the textfile `check` writes), and a real kube-apiserver with etcd
# built by ../shared/tools/kube-apiserver.sh (about 12 minutes once, cached under ~/.cache).
# Installs what is missing when run as root on Debian; otherwise says what to install.
set -euo pipefail

missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v openssl >/dev/null || missing+=(openssl)
command -v keytool >/dev/null || missing+=(default-jre-headless)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v mkfifo >/dev/null || missing+=(coreutils)
command -v curl >/dev/null || missing+=(curl)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v unshare >/dev/null && command -v setsid >/dev/null && command -v nsenter >/dev/null \
  || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
command -v rsync >/dev/null || missing+=(rsync)
command -v systemd-socket-activate >/dev/null && command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v c++ >/dev/null || missing+=(g++)
command -v python3 >/dev/null || missing+=(python3)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
python3 -c 'import cryptography' 2>/dev/null || missing+=(python3-cryptography)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test-deps: installing ${missing[*]}" >&2
    apt-get update -q >/dev/null
    # Packages install services (prometheus-node-exporter on :9100): none is started here.
    # The tests start their own on ports of their own, so one running anyway changes nothing.
    no_start=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
      no_start=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$no_start" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  else
    echo "test-deps: the tests need these Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# Debian's kubectl (kubernetes-client, the API server's version), unpacked privately: the
# package clashes with other kubectl packages a machine may already have.
tools=${XDG_CACHE_HOME:-$HOME/.cache}/x509-exporter-tools
if [ ! -x "$tools/usr/bin/kubectl" ]; then
  mkdir -p "$tools/debs"
  ( cd "$tools/debs" && apt-get download -q kubernetes-client >/dev/null 2>&1 ) || {
    apt-get update -q >/dev/null && ( cd "$tools/debs" && apt-get download -q kubernetes-client >/dev/null )
  } || { echo "test-deps: could not download Debian's kubernetes-client" >&2; exit 1; }
  dpkg-deb -x "$(ls "$tools"/debs/kubernetes-client_*.deb | head -n1)" "$tools"
fi

kas_cache=${KAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-apiserver-test}
if [ ! -x "$kas_cache/bin/kube-apiserver" ]; then
  script=$(cd "$(dirname "$0")/.." && pwd)/../shared/tools/kube-apiserver.sh
  [ -f "$script" ] || { echo "test-deps: $script not found (the shared/ folder beside the repository)" >&2; exit 1; }
  echo "test-deps: building kube-apiserver once (about 12 minutes, cached in $kas_cache)" >&2
  bash "$script" build >&2
fi
