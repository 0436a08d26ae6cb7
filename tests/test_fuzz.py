"""Fuzzing the parsers a user feeds text or bytes to, with Hypothesis (the seeded CI profile).

Property, for every parser: the input is either refused with a UsageError / InputError /
ValueError-class error, or gives a valid result -- never another exception, never a
hang, never a large allocation. Inputs are kept small (size caps below) so memory stays
bounded; pytest-timeout bounds the time of the whole file.

Parsers: kernel specs (literals, .txt/.csv/.json/.npy file contents), ``--pad``/``--stride``
forms (core/shapes), ``--name`` templates (run/plan), and convcli's own PNG decoder
(io/png.decode_png) on mutated valid PNGs.
"""

from __future__ import annotations

import io
import math
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from convcli.core import parametric
from convcli.core.kernels import MAX_KERNEL_ABS_SUM, MAX_KERNEL_SIZE, Kernel
from convcli.core.shapes import MAX_GEOMETRY, parse_pair, resolve_pad
from convcli.core.specs import parse_kernel
from convcli.errors import InputError, UsageError
from convcli.io.kernelfile import load_kernel_file
from convcli.io.png import decode_png
from convcli.run.inputs import InputItem
from convcli.run.plan import TEMPLATE_FIELDS, check_template, render_name

#: Errors a parser may refuse with (UsageError and InputError are ConvcliErrors; UsageError is a ValueError).
REFUSALS = (UsageError, InputError, ValueError)
#: No single parse may allocate more than this (tracemalloc peak): the inputs are at most a few KiB.
MEMORY_CAP = 32 * 1024 * 1024

fuzz = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Characters that matter to the kernel grammar, plus some that should not.
KERNEL_ALPHABET = "0123456789-+.,;/ eE[]\n\t\u2212xabnfiINF_#()'\"{}:\x00\u00a0"


def check_kernel(k: Kernel) -> None:
    """A valid result: a finite 2-D kernel within the stated limits."""
    assert k.weights.ndim == 2 and k.weights.size > 0
    assert max(k.shape) <= MAX_KERNEL_SIZE
    assert np.all(np.isfinite(k.weights))
    assert float(np.abs(k.weights).sum()) <= MAX_KERNEL_ABS_SUM


def bounded(fn, *args):  # noqa: ANN001, ANN202 - a tiny helper for the properties below
    """Run ``fn``; return its result or the refusal, asserting the memory cap either way."""
    tracemalloc.start()
    try:
        try:
            return fn(*args)
        except REFUSALS as e:
            assert "\n" not in str(e), str(e)
            return e
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < MEMORY_CAP, peak


# --------------------------------------------------------------------------- kernel literals


@fuzz
@given(st.text(alphabet=KERNEL_ALPHABET, max_size=80))
def test_kernel_literal_text(text: str) -> None:
    if text.strip().startswith("@"):
        return  # a file reference, fuzzed below with real files
    out = bounded(parse_kernel, text)
    if isinstance(out, Kernel):
        check_kernel(out)


@fuzz
@given(st.recursive(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                              st.just(10**400)),
                    lambda inner: st.lists(inner, max_size=5), max_leaves=30))
def test_nested_literal_shapes(value: object) -> None:
    """Any nesting of numbers as a Python list literal: 2-D rectangular, or refused -- never flattened."""
    text = repr(value).replace("inf", "1e999")
    out = bounded(parse_kernel, text)
    if not isinstance(out, Kernel):
        return
    check_kernel(out)
    if isinstance(value, list) and any(isinstance(r, list) for r in value):
        # a nested list: exactly rows x columns, every row a list of numbers
        assert all(isinstance(r, list) and all(not isinstance(v, list) for v in r) for r in value)
        assert out.shape == (len(value), len(value[0]))
        np.testing.assert_array_equal(out.weights, np.array(value, dtype=float))
    elif isinstance(value, list):
        assert out.shape == (1, len(value))  # one pair of brackets: one row


# --------------------------------------------------------------------------- parametric kernels

#: Every (family, parameter) of the parametric kernels, each fuzzed alone with the others at default.
PARAMETRIC = [(b.name, p.name) for b in parametric.BUILDERS.values() for p in b.params]
#: Values where formulas break: underflowing squares, overflowing quotients, the float range's ends.
EXTREMES = [0.0, -0.0, 5e-324, 1e-300, 1e-160, 1e-77, 1e-3, 0.999e-3, 1.0, 1e77, 1e160, 1e300, -1e-300,
            -1e300, 1.7976931348623157e308]


@pytest.mark.parametrize(("family", "key"), PARAMETRIC)
@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=False, allow_infinity=False)))
def test_parametric_parameters_at_any_value(family: str, key: str, value: float) -> None:
    """``family:key=value`` gives a finite kernel within the limits or a one-line refusal: never a
    traceback (a ZeroDivisionError from log:sigma=1e-300 once) nor a NumPy warning on the way."""
    spec = f"{family}:{key}={value!r}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning fails the test
        try:
            out = parse_kernel(spec)
        except REFUSALS as e:
            assert "\n" not in str(e) and len(str(e)) < 300, str(e)
            return
    check_kernel(out)


# --------------------------------------------------------------------------- kernel files


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


VALID_NPY = _npy_bytes(np.arange(9, dtype=np.float64).reshape(3, 3))


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, cut short or spliced."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data += draw(st.binary(max_size=16))
    return bytes(data)


@fuzz
@given(suffix=st.sampled_from([".txt", ".csv", ".json"]),
       content=st.one_of(st.binary(max_size=200), st.text(alphabet=KERNEL_ALPHABET, max_size=200)
                         .map(lambda t: t.encode("utf-8"))))
def test_kernel_text_files(tmp_path_factory: pytest.TempPathFactory, suffix: str, content: bytes) -> None:
    path = tmp_path_factory.mktemp("k") / f"k{suffix}"
    path.write_bytes(content)
    out = bounded(load_kernel_file, path)
    if isinstance(out, Kernel):
        check_kernel(out)
    else:
        assert str(path) in str(out)  # every refusal names the file


@fuzz
@given(content=st.one_of(mutated(VALID_NPY), st.binary(max_size=200)))
@example(content=VALID_NPY[:10] + VALID_NPY[11:])  # the header's opening brace gone: a tokenize error
@example(content=VALID_NPY[:8] + b"\xff\xff" + VALID_NPY[10:])  # header length past the end
def test_kernel_npy_files(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("k") / "k.npy"
    path.write_bytes(content)
    out = bounded(load_kernel_file, path)
    if isinstance(out, Kernel):
        check_kernel(out)
    else:
        assert str(path) in str(out)


# --------------------------------------------------------------------------- --pad / --stride


PAIR_ALPHABET = "0123456789,x -+e.\u00d7\u2212 "


@fuzz
@given(st.one_of(st.text(alphabet=PAIR_ALPHABET, max_size=30), st.text(max_size=10)),
       st.integers(0, 2))
def test_parse_pair(text: str, minimum: int) -> None:
    out = bounded(parse_pair, text, "--stride", minimum)
    if not isinstance(out, Exception):
        assert len(out) == 2 and all(isinstance(v, int) for v in out)
        assert minimum <= min(out) and max(out) <= MAX_GEOMETRY


@fuzz
@given(st.one_of(st.none(), st.text(alphabet=PAIR_ALPHABET + "samevlid", max_size=30), st.text(max_size=10)),
       st.tuples(st.integers(1, 9), st.integers(1, 9)), st.tuples(st.integers(1, 4), st.integers(1, 4)),
       st.sampled_from(["zeros", "reflection", "valid", "circular"]))
def test_resolve_pad(spec: str | None, ksize: tuple[int, int], dilation: tuple[int, int], mode: str) -> None:
    out = bounded(resolve_pad, spec, ksize, dilation, mode)
    if not isinstance(out, Exception):
        assert len(out) == 4 and all(0 <= v <= MAX_GEOMETRY for v in out)
        if mode == "valid":
            assert out == (0, 0, 0, 0)


# --------------------------------------------------------------------------- --name templates


TEMPLATE_ALPHABET = "{}!:.%/\\_-~ ab0" + "".join(TEMPLATE_FIELDS)


@fuzz
@given(st.one_of(st.text(alphabet=TEMPLATE_ALPHABET, max_size=40), st.text(max_size=20)),
       st.sampled_from(["cat.png", "dir/x.y.jpg", "-"]))
def test_name_templates(template: str, source: str) -> None:
    def check_and_render(t: str) -> str:
        check_template(t)
        item = InputItem(source, None if source == "-" else Path(source))
        return render_name(t, item, "blur", ".png")

    out = bounded(check_and_render, template)
    if isinstance(out, str):
        assert out and not Path(out).is_absolute() and ".." not in Path(out).parts
        assert Path(out).name not in ("", ".", "..")


# --------------------------------------------------------------------------- convcli's PNG decoder


def _png(width: int, height: int, colour_type: int, depth: int, rng: np.random.Generator) -> bytes:
    """A valid PNG written here by hand (filter type 0 rows), independent of convcli's encoder."""
    n = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    bpp = n * depth // 8
    rows = rng.integers(0, 256, (height, width * bpp), dtype=np.uint8)
    raw = b"".join(b"\x00" + r.tobytes() for r in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (len(body).to_bytes(4, "big") + kind + body
                + (zlib.crc32(kind + body) & 0xFFFFFFFF).to_bytes(4, "big"))

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, colour_type, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


SEED_PNGS = [_png(w, h, c, d, np.random.default_rng(i))
             for i, (w, h, c, d) in enumerate([(5, 4, 2, 16), (3, 7, 6, 16), (6, 2, 0, 8), (4, 4, 4, 16)])]


def test_seed_pngs_decode_as_written() -> None:
    """The seeds are valid: the decoder gives back the samples written above (big-endian for 16 bits)."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (4, 5 * 6), dtype=np.uint8)
    expected = rows.reshape(4, 5, 3, 2)
    out = decode_png(SEED_PNGS[0])
    assert out.shape == (4, 5, 3) and out.dtype == np.uint16
    np.testing.assert_array_equal(out, expected[..., 0].astype(np.uint16) * 256 + expected[..., 1])


@fuzz
@given(st.sampled_from(range(len(SEED_PNGS))).flatmap(lambda i: mutated(SEED_PNGS[i])))
def test_decode_png_mutated(data: bytes) -> None:
    out = bounded(decode_png, data)
    if isinstance(out, np.ndarray):
        assert out.ndim == 3 and out.shape[2] in (1, 2, 3, 4)
        assert out.dtype in (np.uint8, np.uint16)


@fuzz
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1), st.integers(0, len(SEED_PNGS) - 1))
@example(2**31 - 1, 2**31 - 1, 1)  # 2**62 * 8 bytes promised: more than a C ssize_t
def test_decode_png_lying_header(width: int, height: int, i: int) -> None:
    """A header promising any size over a few hundred bytes of data: refused, nothing huge allocated."""
    data = bytearray(SEED_PNGS[i])
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    out = bounded(decode_png, bytes(data))
    if isinstance(out, np.ndarray):
        assert out.shape[:2] == (height, width)
        assert math.prod(out.shape) < MEMORY_CAP
