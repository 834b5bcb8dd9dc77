#!/bin/sh
# Benchmark (not a test): fwscan on OVMF_CODE_4M.fd against the reference tools, printed as ratios.
#   fwscan inspect  vs  UEFIExtract IMAGE report  (and vs bare LZMA decompression of the main volume)
#   fwscan scan of a clean image against its manifest  vs  openssl dgst -sha256
# Usage: benches/uefi.sh [IMAGE] [RUNS]   (builds fwscan in release mode first)
set -eu
IMAGE=${1:-/usr/share/OVMF/OVMF_CODE_4M.fd}
RUNS=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --manifest-path "$ROOT/Cargo.toml" >/dev/null 2>&1
FWSCAN=$TARGET/release/fwscan
for tool in UEFIExtract openssl xz python3; do
    command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp "$IMAGE" "$WORK/image.fd"
"$FWSCAN" baseline "$WORK/image.fd" -o "$WORK/m.json" >/dev/null 2>&1
# The main volume's LZMA payload (the first LZMA GUID-defined section), for the bare-decompression line.
"$FWSCAN" inspect --format json "$WORK/image.fd" | python3 -c '
import json, sys
def walk(n):
    if n.get("attrs", {}).get("guid") == "EE4E5898-3914-4259-9D6E-DC7BD79403CF" and n["kind"] == "section":
        print(n["offset"] + 0x18, n["size"] - 0x18); sys.exit()
    for c in n.get("children", []): walk(c)
walk(json.load(sys.stdin)["root"])' > "$WORK/lzma.pos"
read -r LOFF LLEN < "$WORK/lzma.pos"
python3 -c "import sys; d=open('$WORK/image.fd','rb').read(); open('$WORK/main.lzma','wb').write(d[$LOFF:$LOFF+$LLEN])"
# The changed path: one byte in the middle of the main volume's LZMA stream, so the comparison expands the
# module that holds it (and the checks run once, on the expanded tree).
python3 -c "d=bytearray(open('$WORK/image.fd','rb').read()); d[$LOFF+$LLEN//2]^=1; open('$WORK/changed.fd','wb').write(d)"

# mean wall time in microseconds of RUNS runs of "$@" (hyperfine when installed)
mean_us() {
    if command -v hyperfine >/dev/null; then
        hyperfine -N -i --runs "$RUNS" --export-json "$WORK/h.json" "$*" >/dev/null 2>&1
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
inspect=$(mean_us "$FWSCAN" inspect --format json image.fd)
uefiextract=$(mean_us UEFIExtract image.fd report)
lzma=$(mean_us xz --format=lzma -dc main.lzma)
scan=$(mean_us "$FWSCAN" scan image.fd -m m.json --insecure-unsigned)
changed=$(mean_us "$FWSCAN" scan changed.fd -m m.json --insecure-unsigned)
sha=$(mean_us openssl dgst -sha256 image.fd)
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo "image: $IMAGE ($(stat -c %s "$IMAGE") bytes), $RUNS runs each, mean wall time"
echo "fwscan inspect --format json   ${inspect} us"
echo "UEFIExtract IMAGE report       ${uefiextract} us"
echo "xz -d of the main LZMA volume  ${lzma} us"
echo "fwscan scan (clean, manifest)  ${scan} us"
echo "fwscan scan (module changed)   ${changed} us"
echo "openssl dgst -sha256           ${sha} us"
echo "ratio inspect / UEFIExtract    $(ratio "$inspect" "$uefiextract")   (target <= 0.5)"
echo "ratio inspect / bare LZMA      $(ratio "$inspect" "$lzma")"
echo "ratio scan / openssl sha256    $(ratio "$scan" "$sha")   (target <= 1.5)"
echo "ratio changed scan / clean scan $(ratio "$changed" "$scan")   (one expansion of the changed module, one check pass)"
