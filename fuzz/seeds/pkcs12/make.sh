#!/usr/bin/env bash
# Regenerates the PKCS#12 fuzz seeds (also read by the unit tests of src/keystore/pkcs12.rs):
# small files made by the openssl CLI (3.0 or later), password "pass" (the fuzz target's),
# one iteration so that fuzzing spends its time parsing, certificates valid for 100 years
# (EC P-256 keys, thrown away). Regenerating changes the bytes, not what the tests check.
# Usage: fuzz/seeds/pkcs12/make.sh
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -subj /CN=seed-ca 2>/dev/null
openssl req -new "${ec[@]}" -keyout leaf.key -out leaf.csr -subj /CN=seed-leaf 2>/dev/null
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -days 36500 -out leaf.pem 2>/dev/null
export_p12() {
  openssl pkcs12 -export -in leaf.pem -certfile ca.pem -name leaf -caname ca -passout pass:pass "$@"
}
# RC2-40 certificates, 3DES key, SHA-1 MAC.
export_p12 -inkey leaf.key -legacy -iter 1 -out "$out/legacy-iter1.p12"
# PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) certificates and key, SHA-256 MAC.
export_p12 -inkey leaf.key -iter 1 -out "$out/modern-iter1.p12"
# Nothing encrypted, no MAC.
export_p12 -nokeys -certpbe NONE -nomac -out "$out/plain-nomac.p12"
# Certificates only, AES-128-CBC, no MAC: the password is chosen by decrypting.
export_p12 -nokeys -certpbe AES-128-CBC -nomac -iter 1 -out "$out/aes128-nomac-iter1.p12"
