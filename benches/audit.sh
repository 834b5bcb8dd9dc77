#!/usr/bin/env bash
# Benchmark of `fwscan audit` on fleets built from real firmware (benches/fleet.py; issue 20):
#  1. throughput over N per-machine dumps of an 8 MiB SPI image (IFD + GbE + Intel SPS ME region +
#     Debian's OVMF VARS + CODE; per machine: MAC address, a UEFI variable's data, NVRAM free space)
#     against `ls | xargs -P2 -n8 openssl dgst -sha256` on the same files (ratio = openssl time / fwscan
#     time; >= 1.0 is the target), with the manifest chosen by structure (a plain baseline of the golden
#     dump), by match rules, and by `--map`; and byte-identical copies (`exact-digest`). Each mode runs
#     REPS times, interleaved with the reference (openssl, fwscan, openssl, ...), and the median of the
#     per-repetition ratios is printed with every repetition, so machine load hits both alike.
#     Then the decompression cache: a fleet whose machines run another build (its compressed DXE volume
#     differs from the baseline's, so every dump's must be opened), audited against the golden dump's
#     baseline by map with --no-cache, with the in-run cache (the default), and with a warm --cache DIR.
#  2. peak RSS (/usr/bin/time -v, Debian package `time`) of a structure-selected audit of N1 vs N2 dumps
#     (hard links to the N distinct dumps: different paths, no extra disk; target: flat, <= 256 MiB).
#
# Usage: benches/audit.sh     (env: N=64 REPS=3 N1=1000 N2=10000 JOBS=2 WORK=dir; N2=0 skips the RSS runs;
#                             FWSCAN_BIN=path: the build measured (default: this tree's release build);
#                             FWSCAN_BEFORE=path: an earlier build, run in the same repetitions, interleaved)
# Needs: python3, openssl, /usr/bin/time, Debian's ovmf, /work/shared/fixtures (read, never copied).
# Run it once; do not loop it on a shared machine. It prints the load average before and after.
set -euo pipefail

N=${N:-64}
REPS=${REPS:-3}
N1=${N1:-1000}
N2=${N2:-10000}
JOBS=${JOBS:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/fwscan-bench.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"

(cd "$here" && nice -n 10 cargo build --release --quiet)
BIN=${FWSCAN_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/fwscan}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)"; exit 2; }

now() { date +%s.%N; }
py() { python3 -c "$1"; }

# The SPI fleet and its three catalogues: a plain baseline (structure), one with match rules, a map.
fleet=$WORK/spi
python3 "$here/benches/fleet.py" spi "$fleet" "$N"
mkdir -p "$fleet/m-structure" "$fleet/m-rules" "$fleet/m-map" "$fleet/exact"
"$BIN" baseline "$fleet/golden.bin" -o "$fleet/m-structure/spi.json" --product SPI --version 1 2>/dev/null
"$BIN" baseline "$fleet/golden.bin" -o "$fleet/m-rules/spi.json" --product SPI --version 1 \
    --match-size --match-guid 48DB5E17-707C-472D-91CD-1613E7EF51B0 2>/dev/null
cp "$fleet/m-structure/spi.json" "$fleet/m-map/spi.json"
echo "**,$fleet/m-map/spi.json" > "$fleet/map.csv"
for i in $(seq 0 $((N - 1))); do cp "$fleet/golden.bin" "$fleet/exact/copy$i.bin"; done

echo "fwscan $("$BIN" --version | cut -d' ' -f2), $(nproc) CPUs, jobs $JOBS, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# run_fw BINARY ARGS...: one audit; prints its wall time in seconds, warns on an unexpected exit code.
run_fw() {
    local bin=$1 t0 t1 rc
    shift
    t0=$(now)
    set +e
    "$bin" audit "$@" --insecure-unsigned -q -j "$JOBS" -o "$WORK/rows.jsonl" > "$WORK/summary.txt" 2>/dev/null
    rc=$?
    set -e
    t1=$(now)
    [ "$rc" = "${EXPECT_RC:-0}" ] || echo "  ($bin: unexpected exit code $rc: $(head -c 300 "$WORK/summary.txt"))" >&2
    py "print($t1 - $t0)"
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }

# throughput LABEL DIR FWSCAN-ARGS...: REPS interleaved runs of openssl and fwscan (and the earlier
# build) over DIR.
throughput() {
    local label=$1 dir=$2
    shift 2
    local ratios=() before=() t0 t1 ossl fw old mib line
    mib=$(du -sm --apparent-size "$dir" | cut -f1)
    find "$dir" -type f -exec cat {} + > /dev/null   # warm the page cache for all contenders
    for r in $(seq 1 "$REPS"); do
        t0=$(now)
        (cd "$dir" && find . -type f -print0 | xargs -0 -P2 -n8 openssl dgst -sha256 > /dev/null)
        t1=$(now)
        ossl=$(py "print($t1 - $t0)")
        fw=$(run_fw "$BIN" "$dir" "$@")
        ratios+=("$(py "print(f'{$ossl / $fw:.2f}')")")
        line="  $label rep $r: openssl $(py "print(f'{$ossl:.3f}')") s, fwscan $(py "print(f'{$fw:.3f}')") s"
        if [ -n "${FWSCAN_BEFORE:-}" ]; then
            old=$(run_fw "$FWSCAN_BEFORE" "$dir" "$@")
            before+=("$(py "print(f'{$ossl / $old:.2f}')")")
            line="$line, before $(py "print(f'{$old:.3f}')") s"
        fi
        echo "$line"
    done
    line="throughput $label ($(find "$dir" -type f | wc -l) images, $mib MiB): openssl/fwscan median of $REPS: $(median "${ratios[@]}")x (each: ${ratios[*]})"
    [ -z "${FWSCAN_BEFORE:-}" ] || line="$line; before: $(median "${before[@]}")x (each: ${before[*]})"
    echo "$line"
}

throughput "by structure" "$fleet/fleet" --manifests "$fleet/m-structure"
throughput "by rules" "$fleet/fleet" --manifests "$fleet/m-rules"
throughput "by map" "$fleet/fleet" --manifests "$fleet/m-map" --map "$fleet/map.csv"
throughput "exact-digest copies" "$fleet/exact" --manifests "$fleet/m-structure"

# Another build on every machine, compared with the golden dump's baseline (findings: exit 1).
other=$WORK/spi-other
python3 "$here/benches/fleet.py" spi-other "$other" "$N"
"$BIN" audit "$other/fleet" --manifests "$fleet/m-map" --map "$fleet/map.csv" --insecure-unsigned -q \
    -j "$JOBS" -o "$WORK/rows.jsonl" --cache "$WORK/cache" > /dev/null 2>&1 || true   # warms the cache
FWSCAN_BEFORE= EXPECT_RC=1 throughput "other build, no cache" "$other/fleet" --manifests "$fleet/m-map" --map "$fleet/map.csv" --no-cache
FWSCAN_BEFORE= EXPECT_RC=1 throughput "other build, in-run cache" "$other/fleet" --manifests "$fleet/m-map" --map "$fleet/map.csv"
FWSCAN_BEFORE= EXPECT_RC=1 throughput "other build, warm --cache" "$other/fleet" --manifests "$fleet/m-map" --map "$fleet/map.csv" --cache "$WORK/cache"

# rss COUNT: peak RSS of a structure-selected audit of COUNT dumps (hard links to the N distinct ones).
rss() {
    local n=$1 dir="$WORK/r-$1"
    mkdir -p "$dir"
    local all=("$fleet"/fleet/*/*.bin)
    for i in $(seq 0 $((n - 1))); do
        mkdir -p "$dir/d$((i / 1000))"
        ln "${all[$((i % ${#all[@]}))]}" "$dir/d$((i / 1000))/m$i.bin"
    done
    /usr/bin/time -v "$BIN" audit "$dir" --manifests "$fleet/m-structure" --insecure-unsigned -q \
        -j "$JOBS" -o "$WORK/rss-rows.jsonl" > /dev/null 2> "$WORK/time.txt" || true
    local kib wall
    kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
    echo "peak RSS ($n x 8 MiB SPI dumps, by structure): $((kib / 1024)) MiB ($kib KiB) (wall $wall, $(grep -c '"kind":"image"' "$WORK/rss-rows.jsonl") image rows)"
    rm -rf "$dir"
}

if [ "$N2" != 0 ]; then
    rss "$N1"
    rss "$N2"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
