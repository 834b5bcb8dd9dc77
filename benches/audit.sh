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
#     The same three selections and a warm cache over N per-machine dumps of a 32 MiB OpenBMC flash.
#     P1 over N1 dumps (hard links to the N distinct ones), by structure, without and with a warm --cache.
#  2. peak RSS (/usr/bin/time -v, Debian package `time`) of a structure-selected audit of N1 vs N2 dumps
#     (hard links to the N distinct dumps: different paths, no extra disk; target: flat, <= 256 MiB).
#
# Usage: benches/audit.sh     (env: N=64 REPS=3 N1=1000 N2=10000 JOBS=2 WORK=dir; N2=0 skips the RSS runs,
#                             N1=0 the N1-dump throughput rows;
#                             FWSCAN_BIN=path: the build measured (default: this tree's release build);
#                             FWSCAN_BEFORE=path: an earlier build, run in the same repetitions, interleaved)
# Needs: python3, openssl, /usr/bin/time, Debian's ovmf, /work/shared/fixtures (read, never copied), and for
# the OpenBMC fleet the tools of benches/bmc.sh (u-boot-qemu u-boot-tools device-tree-compiler squashfs-tools
# mtd-utils busybox-static).
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

[ -n "${FWSCAN_BIN:-}" ] || (cd "$here" && nice -n 10 cargo build --release --quiet)
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
    # Every path counts (hard links too: each is read in full by both contenders).
    mib=$(find "$dir" -type f -printf '%s\n' | awk '{ s += $1 } END { print int(s / 1048576) }')
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

# The 32 MiB OpenBMC flash (the recipe of benches/bmc.sh and tests/bmc.rs: U-Boot, a U-Boot environment,
# a FIT kernel, a squashfs rofs, a JFFS2 rwfs), N machines that differ where real BMCs do: the U-Boot
# environment (MAC address, CRC fixed by mkenvimage) and the rwfs (hostname, made by mkfs.jffs2).
bmc_fleet() {
    local d=$1 n=$2 w=$1/src i img
    mkdir -p "$w/root/bin" "$w/root/sbin" "$w/root/etc" "$d/fleet"
    cp /usr/bin/busybox "$w/root/bin/busybox"
    ln -sf busybox "$w/root/bin/sh"
    ln -sf ../bin/busybox "$w/root/sbin/init"
    echo "ID=openbmc-phosphor" > "$w/root/etc/os-release"
    SOURCE_DATE_EPOCH=1700000000 mksquashfs "$w/root" "$w/rofs.sqsh" -comp xz -noappend -all-root -quiet -no-progress
    head -c 3000000 /dev/urandom > "$w/Image"
    cat > "$w/board.dts" <<'DTS'
/dts-v1/;
/ { model = "bench"; #address-cells = <1>; #size-cells = <1>;
  fmc { #address-cells = <1>; #size-cells = <0>; flash@0 { reg = <0>; label = "bmc";
    partitions { compatible = "fixed-partitions"; #address-cells = <1>; #size-cells = <1>;
      u-boot@0 { reg = <0x0 0x60000>; label = "u-boot"; };
      u-boot-env@60000 { reg = <0x60000 0x20000>; label = "u-boot-env"; };
      kernel@80000 { reg = <0x80000 0x440000>; label = "kernel"; };
      rofs@4c0000 { reg = <0x4c0000 0x1740000>; label = "rofs"; };
      rwfs@1c00000 { reg = <0x1c00000 0x400000>; label = "rwfs"; }; }; }; }; };
DTS
    dtc -q -I dts -O dtb -o "$w/board.dtb" "$w/board.dts"
    cat > "$w/fit.its" <<'ITS'
/dts-v1/;
/ { description = "bench kernel"; #address-cells = <1>;
  images {
    kernel-1 { data = /incbin/("Image"); type = "kernel"; arch = "arm"; os = "linux"; compression = "none";
      load = <0x80008000>; entry = <0x80008000>; hash-1 { algo = "sha256"; }; };
    fdt-1 { data = /incbin/("board.dtb"); type = "flat_dt"; arch = "arm"; compression = "none"; hash-1 { algo = "sha256"; }; }; };
  configurations { default = "conf-1"; conf-1 { kernel = "kernel-1"; fdt = "fdt-1"; }; }; };
ITS
    (cd "$w" && mkimage -f fit.its kernel.fit > /dev/null)
    # machine I (golden: -1): its environment and rwfs, written over a copy of the common image
    machine() {
        local i=$1 out=$2 mac
        mac=$(printf '00:11:22:%02x:%02x:%02x' $(((i >> 16) & 255)) $(((i >> 8) & 255)) $((i & 255)))
        [ "$i" -ge 0 ] || mac=00:11:22:33:44:55
        printf 'bootcmd=bootm 20080000\nbootargs=console=ttyS4,115200n8 root=/dev/ram rw\nethaddr=%s\n' "$mac" > "$w/env.txt"
        mkenvimage -s 0x10000 -o "$w/env.bin" "$w/env.txt"
        rm -rf "$w/rw" && mkdir -p "$w/rw/etc" && echo "bmc-$i" > "$w/rw/etc/hostname"
        /usr/sbin/mkfs.jffs2 -r "$w/rw" -o "$w/rwfs.jffs2" -e 64KiB -l
        cp "$w/common.bin" "$out"
        dd if="$w/env.bin" of="$out" bs=4096 seek=$((0x60000 / 4096)) conv=notrunc status=none
        dd if="$w/rwfs.jffs2" of="$out" bs=4096 seek=$((0x1c00000 / 4096)) conv=notrunc status=none
    }
    img=$w/common.bin
    head -c $((32 << 20)) /dev/zero | tr '\0' '\377' > "$img"
    dd if=/usr/lib/u-boot/maltael/u-boot.bin of="$img" bs=4096 conv=notrunc status=none
    dd if="$w/kernel.fit" of="$img" bs=4096 seek=$((0x80000 / 4096)) conv=notrunc status=none
    dd if="$w/rofs.sqsh" of="$img" bs=4096 seek=$((0x4c0000 / 4096)) conv=notrunc status=none
    machine -1 "$d/golden.bin"
    for i in $(seq 0 $((n - 1))); do
        mkdir -p "$d/fleet/rack$((i % 20))"
        machine "$i" "$d/fleet/rack$((i % 20))/node$i.bin"
    done
}
bmc=$WORK/bmc
bmc_fleet "$bmc" "$N"
mkdir -p "$bmc/m-structure" "$bmc/m-rules" "$bmc/m-map"
"$BIN" baseline "$bmc/golden.bin" -o "$bmc/m-structure/bmc.json" --product BMC --version 1 --component bmc 2>/dev/null
"$BIN" baseline "$bmc/golden.bin" -o "$bmc/m-rules/bmc.json" --product BMC --version 1 --component bmc --match-size 2>/dev/null
cp "$bmc/m-structure/bmc.json" "$bmc/m-map/bmc.json"
echo "**,$bmc/m-map/bmc.json" > "$bmc/map.csv"
throughput "OpenBMC by structure" "$bmc/fleet" --manifests "$bmc/m-structure"
throughput "OpenBMC by rules" "$bmc/fleet" --manifests "$bmc/m-rules"
throughput "OpenBMC by map" "$bmc/fleet" --manifests "$bmc/m-map" --map "$bmc/map.csv"
"$BIN" audit "$bmc/fleet" --manifests "$bmc/m-structure" --insecure-unsigned -q -j "$JOBS" -o "$WORK/rows.jsonl" \
    --cache "$WORK/bmc-cache" > /dev/null 2>&1 || true   # warms the cache
FWSCAN_BEFORE= throughput "OpenBMC by structure, warm --cache" "$bmc/fleet" --manifests "$bmc/m-structure" --cache "$WORK/bmc-cache"

# links COUNT DIR: COUNT per-machine SPI dumps under DIR, hard links to the N distinct ones (different
# paths, no extra disk).
links() {
    local n=$1 dir=$2
    mkdir -p "$dir"
    local all=("$fleet"/fleet/*/*.bin)
    for i in $(seq 0 $((n - 1))); do
        mkdir -p "$dir/d$((i / 1000))"
        ln "${all[$((i % ${#all[@]}))]}" "$dir/d$((i / 1000))/m$i.bin"
    done
}

# P1 over N1 dumps: by structure with no --cache, and with a warm --cache DIR (target 1.5x).
if [ "$N1" != 0 ]; then
    links "$N1" "$WORK/w-$N1"
    "$BIN" audit "$WORK/w-$N1" --manifests "$fleet/m-structure" --insecure-unsigned -q -j "$JOBS" \
        -o "$WORK/rows.jsonl" --cache "$WORK/spi-cache" > /dev/null 2>&1 || true   # warms the cache
    throughput "by structure, $N1 dumps" "$WORK/w-$N1" --manifests "$fleet/m-structure"
    throughput "by structure, $N1 dumps, warm --cache" "$WORK/w-$N1" --manifests "$fleet/m-structure" \
        --cache "$WORK/spi-cache"
    rm -rf "$WORK/w-$N1"
fi

# rss COUNT: peak RSS of a structure-selected audit of COUNT dumps (hard links to the N distinct ones).
rss() {
    local n=$1 dir="$WORK/r-$1"
    links "$n" "$dir"
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
