"""Deterministic test images built from the real photos in sample_images/ (never noise).

Noise compresses unrealistically for PNG (nothing to compress) and filters unrealistically (every
sample differs); a mosaic of photos at several scales keeps both the detail and the smooth areas
of a real picture. The same arguments always give the same pixels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PHOTOS = ("coffee.png", "chelsea.png", "rocket.jpg", "horse.png", "camera.png", "cat224.png")
TILE = 512


@lru_cache(maxsize=1)
def _photos() -> tuple[Image.Image, ...]:
    out = []
    for name in PHOTOS:
        path = REPO / "sample_images" / name
        if path.exists():
            with Image.open(path) as im:
                out.append(im.convert("RGB"))
    if not out:
        msg = f"no photos found in {REPO / 'sample_images'}"
        raise FileNotFoundError(msg)
    return tuple(out)


def _tile(index: int) -> np.ndarray:
    """One TILE x TILE RGB cell: photo ``index % n`` at a scale and flip set by ``index``."""
    photos = _photos()
    im = photos[index % len(photos)]
    scale = 1.0 + 0.25 * ((index // len(photos)) % 4)
    short = TILE * scale / min(im.size)
    size = (max(TILE, round(im.size[0] * short)), max(TILE, round(im.size[1] * short)))
    big = im.resize(size, Image.Resampling.BICUBIC)
    ox = (index * 37) % (size[0] - TILE + 1)
    oy = (index * 53) % (size[1] - TILE + 1)
    cell = np.asarray(big.crop((ox, oy, ox + TILE, oy + TILE)))
    if index % 2:
        cell = cell[:, ::-1]
    if (index // 2) % 3 == 1:
        cell = cell[::-1]
    return cell


def photo_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 mosaic of photo cells; ``seed`` shifts which cells are used."""
    rows, cols = -(-height // TILE), -(-width // TILE)
    canvas = np.empty((rows * TILE, cols * TILE, 3), dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            canvas[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = _tile(seed + r * cols + c)
    return np.ascontiguousarray(canvas[:height, :width])


def gray_u8(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma as Pillow's ``L`` computes it."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def write_png(path: Path, rgb: np.ndarray, compress_level: int = 6) -> Path:
    Image.fromarray(rgb).save(path, compress_level=compress_level)
    return path


def write_batch(directory: Path, count: int, size: int = 512) -> list[Path]:
    """``count`` different size x size PNGs (crops of photo mosaics) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = photo_rgb(size, size, seed=i)
        paths.append(write_png(directory / f"img{i:03d}.png", img))
    return paths
