#!/bin/sh
# Benchmark (not a test): `fwscan inspect` of a 32 MiB full-flash image (descriptor + the real Purley SPS ME
# region + a 24 MiB BIOS region of Debian OVMF volumes) against `UEFIExtract IMAGE report` on the same file,
# in the same run, ratio printed. The image is built here from ../shared/fixtures/intel and Debian's ovmf.
#
# | range | FLREG | content |
# |---|---|---|
# | 0x0000000-0x0000fff | 0 descriptor | IFD v2 (17 MHz clocks), one 32 MiB component |
# | 0x0001000-0x07fffff | 2 me | purley-sps-me-region.bin ($FPT, $CPD, signed manifest), erased after it |
# | 0x0800000-0x1ffffff | 1 bios | 6 x (OVMF_VARS_4M.fd + OVMF_CODE_4M.fd) |
#
# Usage: benches/intel.sh [RUNS]   (builds fwscan in release mode first)
set -eu
RUNS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ME=${ME_REGION:-$ROOT/../shared/fixtures/intel/purley-sps-me-region.bin}
VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
for tool in UEFIExtract python3; do
    command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
for f in "$ME" "$VARS" "$CODE"; do
    [ -f "$f" ] || { echo "missing $f" >&2; exit 2; }
done
cargo build --release --manifest-path "$ROOT/Cargo.toml" >/dev/null 2>&1
FWSCAN=$TARGET/release/fwscan
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python3 - "$ME" "$VARS" "$CODE" "$WORK/flash.bin" <<'PY'
import struct, sys
me, vars_, code, out = sys.argv[1:]
img = bytearray(b"\xff" * (32 << 20))
d = bytearray(b"\xff" * 0x1000)
w = lambda o, v: struct.pack_into("<I", d, o, v)
w(0x10, 0x0FF0A55A); w(0x14, 0x00040003); w(0x18, 0x10100308); w(0x1C, 0x00000030)
clk = 6
w(0x30, (clk << 17) | (clk << 21) | (clk << 24) | (clk << 27) | 0xF6)  # 32 MiB component
w(0x34, 0); w(0x38, 0)
for i in range(16):
    w(0x40 + 4 * i, 0x00007FFF)
for i, base, limit in [(0, 0, 0), (1, 0x800, 0x1FFF), (2, 1, 0x7FF)]:
    w(0x40 + 4 * i, (limit << 16) | base)
for i in range(3):
    w(0x80 + 4 * i, 0xFFFF0000)
w(0xEFC, 0)
img[:0x1000] = d
m = open(me, "rb").read()
img[0x1000:0x1000 + len(m)] = m
bios = open(vars_, "rb").read() + open(code, "rb").read()
assert len(bios) == 4 << 20
for k in range(6):
    o = 0x800000 + k * len(bios)
    img[o:o + len(bios)] = bios
open(out, "wb").write(img)
PY

# mean wall time in microseconds of RUNS runs of "$@" (hyperfine when installed)
mean_us() {
    if command -v hyperfine >/dev/null; then
        hyperfine -N --runs "$RUNS" --export-json "$WORK/h.json" "$*" >/dev/null 2>&1
        python3 -c "import json; print(int(json.load(open('$WORK/h.json'))['results'][0]['mean']*1e6))"
        return
    fi
    start=$(date +%s%N)
    i=0
    while [ $i -lt "$RUNS" ]; do
        "$@" >/dev/null 2>&1 || true
        i=$((i + 1))
    done
    end=$(date +%s%N)
    echo $(( (end - start) / 1000 / RUNS ))
}

cd "$WORK"
# Sanity: fwscan sees the ME manifest and the BIOS volumes.
"$FWSCAN" inspect --format json flash.bin | python3 -c '
import json, sys
d = json.load(sys.stdin)
paths = []
def walk(n):
    paths.append(n.get("path", ""))
    for c in n.get("children", []): walk(c)
walk(d["root"])
assert "me/FTPR/FTPR.man" in paths, "no ME manifest found"
assert any(p.startswith("bios/") for p in paths), "no BIOS content found"
print("fwscan: %d nodes, %d findings" % (len(paths), len(d["findings"])))'
inspect=$(mean_us "$FWSCAN" inspect --format json flash.bin)
inspect_text=$(mean_us "$FWSCAN" inspect flash.bin)
coverage=$(mean_us "$FWSCAN" inspect --coverage flash.bin)
uefiextract=$(mean_us UEFIExtract flash.bin report)
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo "image: 32 MiB full flash (descriptor + SPS ME + 24 MiB OVMF BIOS), $RUNS runs each, mean wall time"
echo "fwscan inspect --format json   ${inspect} us"
echo "fwscan inspect (text)          ${inspect_text} us"
echo "fwscan inspect --coverage      ${coverage} us"
echo "UEFIExtract IMAGE report       ${uefiextract} us"
echo "ratio inspect json / UEFIExtract report: $(ratio "$inspect" "$uefiextract")"
echo "ratio inspect text / UEFIExtract report: $(ratio "$inspect_text" "$uefiextract")"
