#!/usr/bin/env python3
"""Writes a folder of 32x32 colour PNGs made from Fashion-MNIST, for checking
configs on "a user's own folder of colour images" (docs/studies.md).

Each garment is painted in a random colour over a background of another
random colour with pixel noise, so colour says nothing about the class and
only the shape does. Class sub-folders are named after Fashion-MNIST's
classes, as `data.source = "folder"` expects. Standard library only
(python3); deterministic for a given --seed.

usage: colour-fashion.py OUT [--train N] [--test N] [--seed S]
  writes OUT/train/<class>/*.png (the first N training images) and
  OUT/test/<class>/*.png (the first N test images)
"""
import argparse
import gzip
import os
import random
import struct
import sys
import zlib

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
SIDE = 32  # 28x28 garments centred on 32x32, as the configs' pad_to = 32


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = struct.unpack(">I", data[:4])[0]
    if got != magic:
        sys.exit(f"{path}: magic {got:#x}, expected {magic:#x}")
    return data


def images_and_labels(prefix):
    images = read_idx(os.path.join(FASHION, prefix + "-images-idx3-ubyte.gz"), 0x803)
    labels = read_idx(os.path.join(FASHION, prefix + "-labels-idx1-ubyte.gz"), 0x801)
    count, rows, cols = struct.unpack(">III", images[4:16])
    return count, rows, cols, images[16:], labels[8:]


def write_png(path, rgb_rows):
    raw = b"".join(b"\x00" + bytes(row) for row in rgb_rows)
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 2, 0, 0, 0)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    os.replace(tmp, path)


def colour(rng):
    return [rng.randrange(256) for _ in range(3)]


def paint(pixels, rows, cols, rng):
    fg, bg = colour(rng), colour(rng)
    while sum(abs(a - b) for a, b in zip(fg, bg)) < 150:  # keep the garment visible
        bg = colour(rng)
    off_r, off_c = (SIDE - rows) // 2, (SIDE - cols) // 2
    out = []
    for r in range(SIDE):
        row = []
        for c in range(SIDE):
            inside = off_r <= r < off_r + rows and off_c <= c < off_c + cols
            a = pixels[(r - off_r) * cols + (c - off_c)] / 255.0 if inside else 0.0
            for k in range(3):
                v = a * fg[k] + (1.0 - a) * bg[k] + rng.randint(-20, 20)
                row.append(min(255, max(0, int(v))))
        out.append(row)
    return out


def write_split(out, prefix, limit, rng):
    count, rows, cols, images, labels = images_and_labels(prefix)
    for name in CLASSES:
        os.makedirs(os.path.join(out, name), exist_ok=True)
    for i in range(min(limit, count)):
        pixels = images[i * rows * cols:(i + 1) * rows * cols]
        path = os.path.join(out, CLASSES[labels[i]], f"{prefix}-{i:05d}.png")
        write_png(path, paint(pixels, rows, cols, rng))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    write_split(os.path.join(args.out, "train"), "train", args.train, rng)
    write_split(os.path.join(args.out, "test"), "t10k", args.test, rng)


if __name__ == "__main__":
    main()
