#!/usr/bin/env bash
# Makes the X.509 fixtures of src/formats/x509.rs's unit tests with the openssl CLI (run it here):
# root (CA) -> inter (CA) -> leaf (code signing); root -> tls (a TLS server certificate, CA:FALSE) -> via-tls.
# Keys are thrown away; the certificates are valid for 100 years from the day they were made.
set -euo pipefail
CA="basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
LEAF="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n"
TLS="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
serial=1
make() { # name subject extensions issuer|self
  local n=$1 subj=$2 ext=$3 iss=$4
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/$n.key" 2>/dev/null
  printf "[req]\ndistinguished_name=dn\n[dn]\n[v3]\n$ext" > "$tmp/$n.cnf"
  printf "$ext" > "$tmp/$n.ext"
  if [ "$iss" = self ]; then
    openssl req -new -x509 -key "$tmp/$n.key" -subj "$subj" -days 36500 -sha256 -config "$tmp/$n.cnf" -extensions v3 -out "$n.pem"
  else
    serial=$((serial + 1))
    openssl req -new -key "$tmp/$n.key" -subj "$subj" -config "$tmp/$n.cnf" -out "$tmp/$n.csr"
    openssl x509 -req -in "$tmp/$n.csr" -CA "$iss.pem" -CAkey "$tmp/$iss.key" -set_serial $serial -days 36500 -sha256 -extfile "$tmp/$n.ext" -out "$n.pem" 2>/dev/null
  fi
}
make root "/CN=Fixture Root" "$CA" self
make inter "/CN=Fixture CA" "$CA" root
make leaf "/CN=Fixture Signer" "$LEAF" inter
make tls "/CN=tls.fixture.example" "$TLS" root
make via-tls "/CN=Signer under TLS" "$LEAF" tls
