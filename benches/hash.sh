#!/usr/bin/env bash
# Benchmark: `fwscan scan` of a large clean image against its manifest vs `openssl dgst -sha256` of the
# same file, in the same run. Prints times and the ratio fwscan/openssl (lower is better).
# Usage: benches/hash.sh [SIZE_MIB] (default 512)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-512}
cargo build --release --quiet
bin=target/release/fwscan
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== SHA-NI: sha256rnds2 instructions in the release binary: $(objdump -d "$bin" | grep -c sha256rnds2 || true);" \
     "CPU flag sha_ni: $(grep -q -m1 -w sha_ni /proc/cpuinfo && echo yes || echo no)"

# A large image: random bytes (a compressible image would flatter nobody: hashing cost is per byte).
head -c $((size_mib << 20)) /dev/urandom > "$work/big.bin"
"$bin" baseline "$work/big.bin" -o "$work/big.json" 2>/dev/null
# The same image with a flash layout of 64 regions (parallel across regions).
: > "$work/big.layout"
step=$(( (size_mib << 20) / 64 ))
for i in $(seq 0 63); do printf '%x:%x r%d\n' $((i*step)) $(((i+1)*step-1)) "$i" >> "$work/big.layout"; done
"$bin" baseline "$work/big.bin" -o "$work/big-layout.json" --layout "$work/big.layout" 2>/dev/null

best() { # best of N runs, in milliseconds
  local n=$1; shift; local b=999999999
  for _ in $(seq "$n"); do
    local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || [ $? -le 1 ]; e=$(date +%s%N)
    local ms=$(( (e - s) / 1000000 )); [ "$ms" -lt "$b" ] && b=$ms
  done
  echo "$b"
}
cat "$work/big.bin" > /dev/null # warm the page cache
o=$(best 5 openssl dgst -sha256 "$work/big.bin")
s=$(best 5 "$bin" scan "$work/big.bin" -m "$work/big.json" --insecure-unsigned)
l=$(best 5 "$bin" scan "$work/big.bin" -m "$work/big-layout.json" --insecure-unsigned)
b=$(best 3 "$bin" baseline "$work/big.bin" -o "$work/again.json")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }'; }
echo "image: ${size_mib} MiB, $(nproc) cores"
echo "openssl dgst -sha256:            ${o} ms"
echo "fwscan scan (one region):        ${s} ms   ratio $(ratio "$s" "$o")x"
echo "fwscan scan (64-region layout):  ${l} ms   ratio $(ratio "$l" "$o")x"
echo "fwscan baseline (digest+blocks): ${b} ms   ratio $(ratio "$b" "$o")x"
