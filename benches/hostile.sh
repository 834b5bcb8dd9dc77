#!/usr/bin/env bash
# Hostile inputs of issue 15: time and peak RSS (/usr/bin/time -v) of every crafted case through
# `inspect`, `check`, `scan` (against an unsigned baseline of the clean... here: of the case itself with
# one byte flipped, so the comparison must expand what differs) and `audit`. Acceptance: <= 10 s and
# <= 512 MiB per image.
#
# The cases are written by `cargo run --release --example hostile -- DIR` (code in
# src/formats/uefi/hostile.rs): 400-section bombs in every codec (LZMA/LZMAF86 of unknown size and gzip
# overrunning the 64 MiB per-section cap, Tiano and EFI type-1 streams of exactly the cap, Brotli producing
# more than its header claims), and volumes of 1,000,000 / 152,000 empty FFS files and 200,000 files of
# one GUID.
#
# Usage: benches/hostile.sh [CASE-GLOB]   (env: WORK=dir to keep the files)
# Needs: /usr/bin/time (Debian package `time`). Run it once; do not loop it on a shared machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/fwscan-hostile.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/cases"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
[ -n "${SKIP_BUILD:-}" ] || (cd "$here" && cargo build --release --quiet --bin fwscan --example hostile)
T=${CARGO_TARGET_DIR:-$here/target}/release
BIN=$T/fwscan
[ -n "$(ls "$WORK/cases" 2>/dev/null)" ] || "$T/examples/hostile" "$WORK/cases" >/dev/null

# measure LABEL CMD...: prints seconds, peak RSS in MiB and the exit code.
measure() {
    local label=$1; shift
    local log=$WORK/time.log rc=0
    /usr/bin/time -v "$@" >"$WORK/out" 2>"$log" || rc=$?
    local secs rss
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$log")
    printf '%-34s %-8s %8.2f s %6s MiB  exit %s\n' "$label" "$CMD" "$secs" "$rss" "$rc"
}

printf '%-34s %-8s %10s %10s\n' case command time peak-RSS
for f in "$WORK"/cases/${1:-*}.bin; do
    name=$(basename "$f" .bin)
    size=$(stat -c %s "$f")
    CMD=inspect measure "$name ($((size >> 20)) MiB)" "$BIN" inspect "$f" --format json
    CMD=check measure "$name" "$BIN" check "$f"
    # scan: a baseline of the case, then the case with one byte changed near the end (tampered image of
    # a baselined product, as the issue describes).
    "$BIN" baseline "$f" -o "$WORK/m.json" --product hostile >/dev/null 2>&1 || true
    cp "$f" "$WORK/t.bin"
    printf '\x00' | dd of="$WORK/t.bin" bs=1 seek=$((size - 4097)) conv=notrunc status=none
    if [ -s "$WORK/m.json" ]; then
        CMD=scan measure "$name" "$BIN" scan "$WORK/t.bin" --manifest "$WORK/m.json" --insecure-unsigned
    fi
    rm -rf "$WORK/fleet" && mkdir -p "$WORK/fleet" "$WORK/mans"
    cp "$f" "$WORK/fleet/a.bin" && cp "$WORK/t.bin" "$WORK/fleet/b.bin"
    CMD=audit measure "$name (2 images)" "$BIN" audit "$WORK/fleet" --manifests "$WORK/mans" --insecure-unsigned -o "$WORK/rows.jsonl"
done
