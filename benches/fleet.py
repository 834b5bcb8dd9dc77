#!/usr/bin/env python3
"""Fleets of per-machine dumps built from real firmware, for benches/audit.sh.

    fleet.py spi DIR COUNT     DIR/golden.bin and DIR/fleet/rackNN/nodeNNNNN.bin

`spi`: an 8 MiB Intel SPI image as tests/fleet.rs builds it: an IFD v2 descriptor (FLREG 0 descriptor,
3 GbE at 0x1000, 2 ME at 0x10000, 1 BIOS at 0x400000), a GbE region with a valid checksum, the real Intel
SPS ME region of /work/shared/fixtures (linuxboot/fiano's Purley MeRegion.bin) at the start of the ME
region, and Debian's OVMF_VARS_4M.ms.fd (Microsoft keys enrolled: a populated variable store) +
OVMF_CODE_4M.fd as the BIOS region. Every machine differs from the golden dump where real machines do:
its GbE MAC address (checksum fixed), the data of the `Timeout` UEFI variable, and a byte in the variable
store's free space.

Nothing is copied into the repository: the firmware is read from where Debian and the fixtures put it.
"""
import os
import struct
import sys

OVMF = os.environ.get("OVMF_DIR", "/usr/share/OVMF")
FIXTURES = os.environ.get(
    "FWSCAN_FIXTURES",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures"),
)
if not os.path.isdir(FIXTURES):
    FIXTURES = "/work/shared/fixtures"


def w32(b, o, v):
    b[o:o + 4] = struct.pack("<I", v)


def descriptor(regs):
    d = bytearray(b"\xff" * 0x1000)
    w32(d, 0x10, 0x0FF0A55A)
    w32(d, 0x14, 0x00040003)
    w32(d, 0x18, 0x10100308)
    w32(d, 0x1C, 0x00000030)
    clk = 6  # 17 MHz: IFD v2
    w32(d, 0x30, (clk << 17) | (clk << 21) | (clk << 24) | (clk << 27) | 0xF4)
    w32(d, 0x34, 0)
    w32(d, 0x38, 0)
    for i in range(16):
        w32(d, 0x40 + 4 * i, 0x00007FFF)
    for i, base, limit in regs:
        w32(d, 0x40 + 4 * i, (limit << 16) | base)
    for i in range(3):
        w32(d, 0x80 + 4 * i, 0xFFFF0000)
    w32(d, 0xEFC, 0)
    return d


def gbe(mac):
    b = bytearray(b"\xff" * 0x2000)
    b[:0x80] = bytes(0x80)
    b[:6] = mac
    b[0x0A] = 0x05
    b[0x27] = 0x80
    s = sum(struct.unpack_from("<H", b, 2 * i)[0] for i in range(0x3F)) & 0xFFFF
    b[0x7E:0x80] = struct.pack("<H", (0xBABA - s) & 0xFFFF)
    return b


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        sys.exit(f"fleet.py: {e} (needs Debian's ovmf package and /work/shared/fixtures)")


def spi_golden(code="OVMF_CODE_4M.fd"):
    img = bytearray(b"\xff" * (8 << 20))
    img[:0x1000] = descriptor([(0, 0, 0), (3, 1, 2), (2, 0x10, 0x3FF), (1, 0x400, 0x7FF)])
    img[0x1000:0x3000] = gbe(bytes([0x00, 0x1B, 0x21, 0x12, 0x34, 0x56]))
    me = read(os.path.join(FIXTURES, "intel", "purley-sps-me-region.bin"))
    assert len(me) <= 0x3F0000
    img[0x10000:0x10000 + len(me)] = me
    bios = read(os.path.join(OVMF, "OVMF_VARS_4M.ms.fd")) + read(os.path.join(OVMF, code))
    assert len(bios) == 0x400000, "OVMF 4M VARS + CODE fill the BIOS region"
    img[0x400000:] = bios
    return img


def spi_machine(golden, i):
    img = bytearray(golden)
    img[0x1000:0x3000] = gbe(bytes([0x00, 0x1B, 0x21, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF]))
    name = "Timeout".encode("utf-16-le")
    p = img.find(name, 0x400000, 0x440000)
    assert p > 0, "Timeout variable"
    # The name (with its UTF-16 NUL) is followed by the variable's 2-byte data.
    img[p + len(name) + 2:p + len(name) + 4] = struct.pack("<H", i & 0xFFFF)
    img[0x430000 + (i % 64)] = (i * 7 + 1) & 0xFF
    return img


def main():
    kind, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # spi: the golden dump's build on every machine; spi-other: another build (Debian's Secure Boot
    # OVMF_CODE) on every machine, so that its compressed DXE volume differs from the golden dump's.
    if kind not in ("spi", "spi-other"):
        sys.exit(f"fleet.py: unknown fleet kind {kind}")
    os.makedirs(os.path.join(d, "fleet"), exist_ok=True)
    golden = spi_golden("OVMF_CODE_4M.secboot.fd" if kind == "spi-other" else "OVMF_CODE_4M.fd")
    with open(os.path.join(d, "golden.bin"), "wb") as f:
        f.write(golden)
    for i in range(n):
        sub = os.path.join(d, "fleet", f"rack{i % 20:02d}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"node{i:05d}.bin"), "wb") as f:
            f.write(spi_machine(golden, i))


if __name__ == "__main__":
    main()
