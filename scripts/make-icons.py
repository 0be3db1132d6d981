#!/usr/bin/env python3
"""Draws the web app's icons (frontend/icons/): a speech bubble on the accent colour, as PNGs at
the sizes a browser and an installed app ask for, a maskable one (its drawing inside the safe
circle), and favicon.ico. Standard library only; run it again after changing the drawing."""
import math
import struct
import zlib
from pathlib import Path

ACCENT = (79, 70, 229)  # --accent, #4f46e5
WHITE = (255, 255, 255)
OUT = Path(__file__).resolve().parent.parent / "frontend" / "icons"


def inside_rounded_rect(x, y, left, top, right, bottom, radius):
    if x < left or x > right or y < top or y > bottom:
        return False
    cx = min(max(x, left + radius), right - radius)
    cy = min(max(y, top + radius), bottom - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2


def inside_bubble(u, v):
    """The bubble in a unit square: a rounded body, a tail at the lower left, three dots cut out."""
    if inside_rounded_rect(u, v, 0.0, 0.0, 1.0, 0.72, 0.2):
        for dot in (0.28, 0.5, 0.72):
            if (u - dot) ** 2 + (v - 0.36) ** 2 <= 0.075 ** 2:
                return False
        return True
    # The tail: a triangle under the body.
    if 0.72 <= v <= 1.0:
        return 0.14 <= u <= 0.14 + 0.3 * (1.0 - v) / 0.28 * 1.0 and u <= 0.44 - (v - 0.72)
    return False


def draw(size, maskable):
    samples = 4  # per axis, for smooth edges
    rows = []
    # The bubble spans this share of the icon (a maskable icon keeps it inside the safe circle).
    scale = 0.5 if maskable else 0.6
    corner = 0.0 if maskable else 0.22 * size
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            bg_cover = 0
            fg_cover = 0
            for sy in range(samples):
                for sx in range(samples):
                    px = x + (sx + 0.5) / samples
                    py = y + (sy + 0.5) / samples
                    if maskable or inside_rounded_rect(px, py, 0, 0, size, size, corner):
                        bg_cover += 1
                        u = (px - size * (1 - scale) / 2) / (size * scale)
                        v = (py - size * (1 - scale) / 2 - size * 0.03) / (size * scale)
                        if inside_bubble(u, v):
                            fg_cover += 1
            total = samples * samples
            alpha = bg_cover / total
            mix = fg_cover / bg_cover if bg_cover else 0
            colour = [round(ACCENT[i] * (1 - mix) + WHITE[i] * mix) for i in range(3)]
            row += bytes(colour + [round(255 * alpha)])
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def ico(png, size):
    entry = struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        (OUT / f"icon-{size}.png").write_bytes(draw(size, False))
    (OUT / "icon-maskable-512.png").write_bytes(draw(512, True))
    (OUT / "apple-touch-icon.png").write_bytes(draw(180, True))
    (OUT / "favicon.ico").write_bytes(ico(draw(32, False), 32))
    print("icons written to", OUT)


if __name__ == "__main__":
    main()
