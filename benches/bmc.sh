#!/usr/bin/env bash
# Benchmark on a clean 32 MiB OpenBMC-layout image built from real tools (same recipe as tests/bmc.rs):
#   `fwscan scan` against its manifest      vs  `openssl dgst -sha256` of the file
#   `fwscan inspect` (eager: every file)    vs  `unsquashfs -lls` + `dumpimage -l`
# Prints best-of-N times and the ratios (lower is better).
# Needs: u-boot-qemu u-boot-tools device-tree-compiler squashfs-tools mtd-utils busybox-static openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/fwscan
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
export SOURCE_DATE_EPOCH=1700000000

# --- the image -------------------------------------------------------------------------------------------
mkdir -p "$w/root/bin" "$w/root/sbin" "$w/root/etc" "$w/root/usr/bin" "$w/root/usr/sbin" "$w/rw/etc"
cp /usr/bin/busybox "$w/root/bin/busybox"
for l in sh ls cat mount; do ln -s busybox "$w/root/bin/$l"; done
ln -s ../bin/busybox "$w/root/sbin/init"
echo "ID=openbmc-phosphor" > "$w/root/etc/os-release"
mksquashfs "$w/root" "$w/rofs.sqsh" -comp xz -noappend -all-root -quiet -no-progress
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
(cd "$w" && dtc -q -I dts -O dtb -o board.dtb board.dts)
cat > "$w/fit.its" <<'ITS'
/dts-v1/;
/ { description = "bench kernel"; #address-cells = <1>;
  images {
    kernel-1 { data = /incbin/("Image"); type = "kernel"; arch = "arm"; os = "linux"; compression = "none";
      load = <0x80008000>; entry = <0x80008000>; hash-1 { algo = "sha256"; }; };
    fdt-1 { data = /incbin/("board.dtb"); type = "flat_dt"; arch = "arm"; compression = "none"; hash-1 { algo = "sha256"; }; }; };
  configurations { default = "conf-1"; conf-1 { kernel = "kernel-1"; fdt = "fdt-1"; }; }; };
ITS
(cd "$w" && mkimage -f fit.its kernel.fit >/dev/null)
printf 'bootcmd=bootm 20080000\nbootargs=console=ttyS4,115200n8 root=/dev/ram rw\nethaddr=00:11:22:33:44:55\n' > "$w/env.txt"
mkenvimage -s 0x10000 -o "$w/env.bin" "$w/env.txt"
echo bmc-1 > "$w/rw/etc/hostname"
/usr/sbin/mkfs.jffs2 -r "$w/rw" -o "$w/rwfs.jffs2" -e 64KiB -l
img=$w/bmc.bin
head -c $((32 << 20)) /dev/zero | tr '\0' '\377' > "$img"
put() { dd if="$2" of="$img" bs=4096 seek=$(($1 / 4096)) conv=notrunc status=none; }
put 0 /usr/lib/u-boot/maltael/u-boot.bin
put $((0x60000)) "$w/env.bin"
put $((0x80000)) "$w/kernel.fit"
put $((0x4c0000)) "$w/rofs.sqsh"
put $((0x1c00000)) "$w/rwfs.jffs2"
dd if="$img" of="$w/kernel.part" bs=4096 skip=$((0x80000 / 4096)) count=$((0x440000 / 4096)) status=none
"$bin" baseline "$img" -o "$w/bmc.json" --component bmc 2>/dev/null

# --- timing ----------------------------------------------------------------------------------------------
best() { # best of N runs, in milliseconds
  local n=$1; shift; local b=999999999
  for _ in $(seq "$n"); do
    local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || [ $? -le 1 ]; e=$(date +%s%N)
    local ms=$(( (e - s) / 1000000 )); [ "$ms" -lt "$b" ] && b=$ms
  done
  echo "$b"
}
ref_list() { unsquashfs -o $((0x4c0000)) -lls "$img" && dumpimage -l "$w/kernel.part"; }
cat "$img" > /dev/null
"$bin" scan "$img" -m "$w/bmc.json" --insecure-unsigned >/dev/null # clean: exit 0
o=$(best 10 openssl dgst -sha256 "$img")
s=$(best 10 "$bin" scan "$img" -m "$w/bmc.json" --insecure-unsigned)
r=$(best 10 ref_list)
i=$(best 10 "$bin" inspect "$img")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }'; }
echo "image: 32 MiB OpenBMC layout (rofs $(stat -c %s "$w/rofs.sqsh") bytes xz, $(unsquashfs -o $((0x4c0000)) -lls "$img" | grep -c '^[-dlcbps]') entries), $(nproc) cores"
echo "openssl dgst -sha256:              ${o} ms"
echo "fwscan scan (clean, vs manifest):  ${s} ms   ratio $(ratio "$s" "$o")x"
echo "unsquashfs -lls + dumpimage -l:    ${r} ms"
echo "fwscan inspect (every file):       ${i} ms   ratio $(ratio "$i" "$r")x"
