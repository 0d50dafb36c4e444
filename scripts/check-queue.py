#!/usr/bin/env python3
"""Check a promrelay queue directory offline (queue-format.md): prints each chunk with its valid blocks and damaged bytes."""
import struct, zlib, sys, os
d = sys.argv[1]
for name in sorted(n for n in os.listdir(d) if n.endswith(".chunk")):
    seq = int(name[:16], 16); data = open(os.path.join(d, name), "rb").read()
    ok = data[:8] == b"PRQCHUNK" and zlib.crc32(data[:28]) == struct.unpack_from("<I", data, 28)[0]
    off, blocks, bad = 32, 0, 0
    while off + 24 <= len(data):
        magic, ln, cnt, ts, crc = struct.unpack_from("<IIIQI", data, off)
        end = off + 24 + ln
        if magic == 0x5EC7B10C and end <= len(data) and \
           zlib.crc32(struct.pack("<Q", seq) + data[off:off+20] + data[off+24:end]) == crc:
            blocks, off = blocks + 1, end
        else:
            bad, off = bad + 1, off + 1
    print(name, "header ok" if ok else "HEADER DAMAGED", blocks, "blocks", bad, "bad bytes")
