#!/usr/bin/env bash
# Hostile inputs of issue 15: time and peak RSS (/usr/bin/time -v) of every crafted case through
# `inspect --format json`, `check`, `scan` and `audit`. Acceptance: <= 10 s and <= 512 MiB per image.
#
# The cases are written by `cargo run --release --example hostile -- DIR` (code in
# src/formats/uefi/hostile.rs, behind the `fixtures` feature): 400-section bombs in every codec (LZMA/LZMAF86 of unknown size and gzip
# overrunning the 64 MiB per-section cap, Tiano and EFI type-1 streams of exactly the cap, Brotli producing
# more than its header claims), and volumes of 1,000,000 / 152,000 empty FFS files and 200,000 files of
# one GUID. Each case has a clean counterpart (DIR/clean/NAME.bin: the same files with 4 KiB sections, or
# 100 empty files), the golden image of the "product":
#
# * scan:  `fwscan baseline` of the clean image (unsigned), then `scan CASE --insecure-unsigned` against
#          it: a tampered image of a baselined product, where every differing file is descended into and
#          its compressed sections are expanded.
# * audit: two images (the case, and the case with one byte changed) against a catalogue holding that
#          manifest (chosen by `--map`, as the case itself matches nothing), `--insecure-unsigned`,
#          `--jobs 2`: both images are in memory at once, so the audit's bound is twice an image's.
#
# Usage: benches/hostile.sh [CASE-GLOB]   (env: WORK=dir to keep the files, SKIP_BUILD=1)
# Needs: /usr/bin/time (Debian package `time`). Run it once; do not loop it on a shared machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/fwscan-hostile.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/cases"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }
# Two builds: the example needs the `fixtures` feature (the test-firmware writers, enabled through the
# dev-dependency on this package), and building it in the same command would put them in the measured
# binary too; the binary measured is the one `cargo build --release` ships.
[ -n "${SKIP_BUILD:-}" ] || (cd "$here" && cargo build --release --quiet --bin fwscan \
    && cargo build --release --quiet --example hostile)
T=${CARGO_TARGET_DIR:-$here/target}/release
BIN=$T/fwscan
[ -d "$WORK/cases/clean" ] || "$T/examples/hostile" "$WORK/cases" >/dev/null

fail=0
# measure COMMAND LABEL CMD...: prints seconds, peak RSS in MiB and the exit code; marks a miss of the
# acceptance bound (> 10 s or > 512 MiB per image; the audit scans its two images at once, --jobs 2, so
# its bound is 20 s and 1024 MiB) and a crash (exit other than 0, 1, 2).
measure() {
    local cmd=$1 label=$2 n=1; shift 2
    [ "$cmd" = audit ] && n=2
    local log=$WORK/time.log rc=0
    /usr/bin/time -v "$@" >"$WORK/out" 2>"$log" || rc=$?
    local secs rss mark=""
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$log")
    if awk -v s="$secs" -v r="$rss" -v n="$n" 'BEGIN { exit !(s > 10 * n || r > 512 * n) }' || [ "$rc" -gt 2 ]; then
        mark="  <-- over the bound"
        fail=1
    fi
    printf '%-32s %-8s %8.2f s %6s MiB  exit %s%s\n' "$label" "$cmd" "$secs" "$rss" "$rc" "$mark"
}

echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
printf '%-32s %-8s %10s %10s\n' case command time peak-RSS
for f in "$WORK"/cases/${1:-*}.bin; do
    name=$(basename "$f" .bin)
    size=$(stat -c %s "$f")
    label="$name ($((size >> 20)) MiB)"
    measure inspect "$label" "$BIN" inspect "$f" --format json
    measure check "$label" "$BIN" check "$f"
    # The golden image of the product: the clean counterpart, baselined without a signature.
    mans=$WORK/mans-$name
    rm -rf "$mans" && mkdir -p "$mans"
    "$BIN" baseline "$WORK/cases/clean/$name.bin" -o "$mans/golden.json" \
        --vendor hostile --product "hostile-$name" --version 1 >/dev/null 2>"$WORK/baseline.log" \
        || { echo "baseline of clean/$name.bin failed:"; cat "$WORK/baseline.log"; exit 2; }
    measure scan "$label" "$BIN" scan "$f" --manifest "$mans/golden.json" --insecure-unsigned
    fleet=$WORK/fleet
    rm -rf "$fleet" && mkdir -p "$fleet"
    cp "$f" "$fleet/a.bin"
    cp "$f" "$fleet/b.bin"
    printf '\x00' | dd of="$fleet/b.bin" bs=1 seek=$((size - 4097)) conv=notrunc status=none
    printf 'path-glob,manifest\n*,golden.json\n' >"$mans/map.csv"
    measure audit "$name (2 images)" "$BIN" audit "$fleet" --manifests "$mans" --map "$mans/map.csv" \
        --jobs 2 --insecure-unsigned -o "$WORK/rows.jsonl" --quiet
    # The audit must have compared both images against the manifest (not stopped at selection).
    compared=$(grep -c '"selected_by":"map"' "$WORK/rows.jsonl" || true)
    [ "$compared" = 2 ] || { echo "audit of $name: $compared of 2 images compared"; head -c 2000 "$WORK/rows.jsonl"; exit 2; }
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $fail
