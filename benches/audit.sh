#!/usr/bin/env bash
# Benchmark of `fwscan audit`:
#  1. throughput over N1 clean images against `find | xargs -P2 -n1 openssl dgst -sha256` on the same files
#     (ratio = openssl time / fwscan time; >= 0.9 is the target), for identical copies of the golden image
#     (decided by one digest) and for machines whose per-machine NVRAM differs (compared region by region),
#     chosen by match rules (`nvram`) or, with a plain baseline, by structure (`structure`);
#  2. peak RSS (/usr/bin/time -v, Debian package `time`) of an audit of N1 vs N2 small images (target: flat,
#     <= 256 MiB).
#
# Usage: benches/audit.sh            (env: N1=1000 N2=10000 SIZE_KIB=1024 SMALL_KIB=64 JOBS=2 WORK=dir)
# Needs: python3, openssl, /usr/bin/time. Run it once; do not loop it on a shared machine.
set -euo pipefail

N1=${N1:-1000}
N2=${N2:-10000}
SIZE_KIB=${SIZE_KIB:-1024}
SMALL_KIB=${SMALL_KIB:-64}
JOBS=${JOBS:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/fwscan-bench.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"

(cd "$here" && cargo build --release --quiet)
BIN=${CARGO_TARGET_DIR:-$here/target}/release/fwscan
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }

# gen DIR COUNT KIB MODE: a golden image with a flashrom layout (bios static, nvram per machine), its
# manifest, and COUNT machines; MODE exact = byte-identical copies, nvram = per-machine NVRAM differs.
gen() {
    local dir=$1 n=$2 kib=$3 mode=$4
    mkdir -p "$dir/fleet" "$dir/manifests"
    python3 - "$dir" "$n" "$kib" "$mode" <<'EOF'
import os, sys
d, n, kib, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
size = kib * 1024
nv = size // 8
golden = bytearray(os.urandom(size - nv)) + bytearray(b"\xff" * nv)
tag = b"BENCH BIOS v1.00"
golden[0x1100:0x1100 + len(tag)] = tag
open(f"{d}/golden.bin", "wb").write(golden)
open(f"{d}/layout", "w").write(
    f"00000000:00000fff descriptor\n00001000:{size - nv - 1:08x} bios\n{size - nv:08x}:{size - 1:08x} nvram\n")
for i in range(n):
    sub = f"{d}/fleet/rack{i % 20:02d}"
    os.makedirs(sub, exist_ok=True)
    img = golden
    if mode in ("nvram", "structure"):
        img = bytearray(golden)
        img[size - nv:size - nv + 16] = i.to_bytes(16, "little")
    open(f"{sub}/node{i:05d}.bin", "wb").write(img)
EOF
    # Mode `structure`: a plain baseline (no match rules): audit chooses the manifest by structure.
    local rules=(--match-string "BENCH BIOS v1.00")
    [ "$mode" = structure ] && rules=()
    "$BIN" baseline "$dir/golden.bin" -o "$dir/manifests/bench.json" --layout "$dir/layout" \
        --mutable nvram "${rules[@]}" --product BENCH --version 1.00 2>/dev/null
}

secs() { python3 -c "import sys; print(f'{float(sys.argv[1]):.3f}')" "$1"; }

throughput() {
    local mode=$1 dir="$WORK/t-$1"
    gen "$dir" "$N1" "$SIZE_KIB" "$mode"
    # Warm the page cache for both contenders.
    find "$dir/fleet" -type f -exec cat {} + > /dev/null
    local t0 t1 t2 t3 ossl fw batch rc
    t0=$(date +%s.%N)
    find "$dir/fleet" -type f -name '*.bin' -print0 | xargs -0 -P2 -n1 openssl dgst -sha256 > /dev/null
    t1=$(date +%s.%N)
    set +e
    "$BIN" audit "$dir/fleet" --manifests "$dir/manifests" --insecure-unsigned -q -j "$JOBS" \
        -o "$dir/rows.jsonl" > "$dir/summary.txt" 2>/dev/null
    rc=$?
    set -e
    t2=$(date +%s.%N)
    # The same hashing without one process per file (pure hashing speed, for reference).
    find "$dir/fleet" -type f -name '*.bin' -print0 | xargs -0 -P2 -n100 openssl dgst -sha256 > /dev/null
    t3=$(date +%s.%N)
    ossl=$(python3 -c "print($t1 - $t0)")
    fw=$(python3 -c "print($t2 - $t1)")
    batch=$(python3 -c "print($t3 - $t2)")
    local mib=$((N1 * SIZE_KIB / 1024))
    echo "throughput ($mode, $N1 x $SIZE_KIB KiB = $mib MiB): openssl -n1 $(secs "$ossl") s, fwscan audit $(secs "$fw") s (exit $rc), ratio $(python3 -c "print(f'{$ossl / $fw:.2f}')")x; openssl -n100 $(secs "$batch") s, ratio $(python3 -c "print(f'{$batch / $fw:.2f}')")x"
    [ "$rc" = 0 ] || { echo "unexpected exit code $rc"; cat "$dir/summary.txt"; }
    rm -rf "$dir"
}

rss() {
    local n=$1 dir="$WORK/r-$1"
    gen "$dir" "$n" "$SMALL_KIB" nvram
    /usr/bin/time -v "$BIN" audit "$dir/fleet" --manifests "$dir/manifests" --insecure-unsigned -q \
        -j "$JOBS" -o "$dir/rows.jsonl" > /dev/null 2> "$dir/time.txt" || true
    local kib wall
    kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
    echo "peak RSS ($n x $SMALL_KIB KiB images, per-machine NVRAM differs): $((kib / 1024)) MiB ($kib KiB) (wall $wall, $(wc -l < "$dir/rows.jsonl") rows)"
    rm -rf "$dir"
}

echo "fwscan $("$BIN" --version | cut -d' ' -f2), $(nproc) CPUs, jobs $JOBS"
throughput exact
throughput nvram
throughput structure
rss "$N1"
rss "$N2"
