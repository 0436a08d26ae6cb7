"""The conv layer (``conv2d``, ``chain conv``) with kernels far larger than the image, in bounded memory.

A 301x301 conv on the 224x224 cat once unrolled 56 rows of windows at a time (12.7 GiB) and
died with MemoryError. From 19x19 taps conv2d now runs by FFT per band, whose memory does not
grow with the taps, and a layer whose working memory cannot fit is refused from the shapes.
References are independent: the float64 loop and scipy.ndimage of tests/reference.py, summed
per (output, input) channel pair, and a direct sum over the taps for single output pixels.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from reference import PAD_MODES, pad4_from_spec, ref_conv2d_loop, ref_correlate_scipy

from convcli.cli import cli
from convcli.engine import conv2d, conv2d_plan
from convcli.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
CAT = ROOT / "sample_images" / "cat224.png"


def _scipy_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, int],
                dilation: tuple[int, int], pad4: tuple[int, int, int, int], mode: str) -> np.ndarray:
    """out[..., o] = sum_c scipy-correlate(x[..., c], W[o, c]) + b[o], in float64."""
    maps = []
    for o in range(w.shape[0]):
        acc = sum(ref_correlate_scipy(x[:, :, c], w[o, c], stride, dilation, pad4, mode)
                  for c in range(w.shape[1]))
        maps.append(acc + (0.0 if b is None else float(b[o])))
    return np.stack(maps, axis=2)


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize(("kshape", "stride", "dilation", "pad_spec"), [
    ((41, 45), (1, 1), (1, 1), "same"),
    ((31, 20), (2, 3), (1, 1), "7,30,0,19"),
    ((19, 21), (1, 2), (2, 1), "same"),
])
def test_kernel_much_larger_than_the_image_equals_float64_references(mode, kshape, stride, dilation,
                                                                      pad_spec):
    rng = np.random.default_rng(sum(kshape) + len(mode))
    x = rng.integers(0, 256, size=(9, 11, 3)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(2, 3) + kshape)
    b = rng.uniform(-10, 10, size=2)
    pad4 = pad4_from_spec(pad_spec, kshape, dilation)
    assert conv2d_plan(x.shape, w.shape, stride=stride, dilation=dilation, pad=pad4).method == "fft"
    ref = ref_conv2d_loop(x, w, b, stride, dilation, pad4, mode)
    np.testing.assert_allclose(_scipy_conv(x, w, b, stride, dilation, pad4, mode), ref, rtol=1e-12, atol=1e-9)
    scale = float(np.abs(w).sum(axis=(1, 2, 3)).max()) * 255
    one = conv2d(x, w, b, stride=stride, dilation=dilation, pad=pad4, mode=mode, threads=1, band_bytes=1)
    two = conv2d(x, w, b, stride=stride, dilation=dilation, pad=pad4, mode=mode, threads=2)
    assert one.shape == ref.shape and one.dtype == np.float32
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, ref, rtol=1e-4, atol=1e-6 * scale)
    got64 = conv2d(x, w, b, stride=stride, dilation=dilation, pad=pad4, mode=mode, dtype=np.float64)
    np.testing.assert_allclose(got64, ref, rtol=1e-10, atol=1e-12 * scale)


def test_fft_and_im2col_agree_at_the_crossover():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(30, 33, 3)).astype(np.float32)
    w18, w19 = rng.uniform(-1, 1, size=(4, 3, 18, 19)), rng.uniform(-1, 1, size=(4, 3, 19, 19))
    pad = (9, 9, 9, 9)
    assert conv2d_plan(x.shape, w18.shape, pad=pad).method == "im2col"
    assert conv2d_plan(x.shape, w19.shape, pad=pad).method == "fft"
    for w in (w18, w19):
        ref = ref_conv2d_loop(x, w, None, 1, 1, pad, "reflection")
        got = conv2d(x, w, pad=pad, mode="reflection")
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6 * float(np.abs(w).sum()) * 255)


def test_large_kernel_memory_is_bounded_in_process():
    x = np.random.default_rng(1).uniform(0, 255, size=(40, 40, 3)).astype(np.float32)
    w = np.random.default_rng(2).uniform(-1, 1, size=(3, 3, 301, 301)).astype(np.float32)
    tracemalloc.start()
    try:
        out = conv2d(x, w, pad=(150, 150, 150, 150), threads=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (40, 40, 3)
    # The unrolled windows of one output row alone were 40 * 301 * 301 * 3 * 4 = 43 MB (x 10 rows).
    assert peak < 60_000_000, f"peak {peak / 1e6:.0f} MB"
    y, xx = 17, 23  # one output pixel from the formula
    xp = np.pad(x.astype(np.float64), ((150, 150), (150, 150), (0, 0)))
    want = np.einsum("ijc,ocij->o", xp[y : y + 301, xx : xx + 301], w.astype(np.float64))
    np.testing.assert_allclose(out[y, xx], want, rtol=1e-4, atol=1e-6 * float(np.abs(w).sum()) / 3 * 255)


def test_a_call_that_cannot_fit_is_refused_before_allocating():
    x = np.zeros((64, 64, 3), np.float32)
    w = np.zeros((8, 3, 301, 301), np.float32)
    with pytest.raises(UsageError, match="working memory"):
        conv2d_plan(x.shape, w.shape, pad=(150,) * 4, max_bytes=10_000_000)
    assert conv2d_plan(x.shape, w.shape, pad=(150,) * 4).total_bytes(2) < 200_000_000


def _limit_address_space() -> None:
    limit = 2_500_000_000
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("size", [301, 1001])
def test_chain_conv_with_a_huge_kernel_runs_under_a_memory_limit(tmp_path: Path, size: int):
    out = tmp_path / "maps.npy"
    cmd = [sys.executable, "-m", "convcli", "chain", "-i", str(CAT), "-o", str(out), "conv",
           "--out-channels", "3", "--size", str(size)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         preexec_fn=_limit_address_space, check=False)
    assert res.returncode == 0, res.stderr
    got = np.load(out)
    assert got.shape == (224, 224, 3)
    x = np.asarray(Image.open(CAT).convert("RGB"), dtype=np.float64)
    w = np.random.default_rng(0).uniform(-1.0, 1.0, size=(3, 3, size, size)).astype(np.float32)
    p = size // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    for y, xx in ((0, 0), (100, 37), (223, 223)):
        want = np.einsum("ijc,ocij->o", xp[y : y + size, xx : xx + size], w.astype(np.float64))
        np.testing.assert_allclose(got[y, xx], want, rtol=1e-4, atol=1e-6 * float(np.abs(w).sum()) / 3 * 255)


def test_chain_conv_that_cannot_fit_is_a_usage_error(tmp_path: Path):
    out = tmp_path / "maps.npy"
    res = CliRunner().invoke(cli, ["chain", "-i", str(CAT), "-o", str(out), "conv", "--out-channels", "44",
                                   "--size", "1001"])
    assert res.exit_code == 2, res.output
    assert "working memory" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()
