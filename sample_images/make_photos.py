"""Make the folders the README's batch examples run on, from the bundled images.

    python sample_images/make_photos.py            # photos/: ordinary, odd and broken files
    python sample_images/make_photos.py --big      # also big/: twelve 1536x1536 photos

photos/ holds what a real folder holds: a hidden thumbnail (skipped), an EXIF-rotated JPEG, a
truncated JPEG, the cat, a PNG whose header claims 30000x30000 (a decompression bomb), a palette
PNG with transparency, a text file, a 16-bit grey scan and a three-frame GIF. Every file is
derived from the CC0 images beside this script (see LICENSES.md).
"""

from __future__ import annotations

import argparse
import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with one row of data: refused from the header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" + b"\x00" * (3 * min(width, 64)))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", row) + _chunk(b"IEND", b"")


def photos(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cat = Image.open(HERE / "cat224.png").convert("RGB")
    chelsea = Image.open(HERE / "chelsea.png").convert("RGB")
    coffee = Image.open(HERE / "coffee.png").convert("RGB")
    camera = Image.open(HERE / "camera.png").convert("L")

    shutil.copy(HERE / "cat224.png", folder / "cat.png")
    cat.resize((32, 32)).save(folder / ".thumbs.png")  # hidden: a folder scan skips it

    beach = coffee.resize((320, 240))  # stored landscape, shown portrait: EXIF orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    beach.save(folder / "beach.jpg", quality=90, exif=exif)

    buf = io.BytesIO()
    chelsea.save(buf, format="JPEG", quality=90)
    (folder / "broken.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])  # cut mid-scan

    (folder / "huge.png").write_bytes(bomb_png(30000, 30000))

    logo = np.zeros((3, 4), dtype=np.uint8)
    logo[1, 1:3] = 1
    logo[2, :] = 2
    im = Image.fromarray(logo, mode="P")
    im.putpalette([255, 255, 255, 200, 30, 30, 30, 30, 200] + [0] * (256 - 3) * 3)
    im.save(folder / "logo.png", transparency=0)

    (folder / "notes.txt").write_text("not an image: skipped in a folder scan, an error when named\n")

    scan = np.asarray(camera.resize((128, 128)), dtype=np.uint16) * 257
    Image.fromarray(scan).save(folder / "scan16.png")

    frames = [chelsea.resize((8, 6)).rotate(90 * i) for i in range(3)]
    frames[0].save(folder / "wave.gif", save_all=True, append_images=frames[1:], duration=[80, 120, 160],
                   loop=0)


def big(folder: Path, count: int = 12, size: int = 1536) -> None:
    """Photos large enough that a batch of them takes a few seconds (the Ctrl-C example)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(HERE / n).convert("RGB") for n in ("chelsea.png", "coffee.png", "rocket.jpg")]
    for i in range(count):
        src = sources[i % len(sources)]
        im = src.resize((size, size), Image.Resampling.BICUBIC)
        im = im.rotate(90 * (i // len(sources)))
        im.save(folder / f"big{i:02d}.png", compress_level=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="photos", help="where photos go (default photos/)")
    parser.add_argument("--big", action="store_true", help="also make big/ (twelve 1536x1536 PNGs)")
    args = parser.parse_args()
    photos(Path(args.folder))
    if args.big:
        big(Path("big"))


if __name__ == "__main__":
    main()
