"""``convcli animate`` and convcli.teach.animate: frame counts, sizes and numbers against independent loops.

Every expected number is computed here with float64 NumPy loops written from the definitions
(README 'numbers' for the convolution, PyTorch's scatter definition for the transposed one), never by convcli.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, features

from convcli.cli import cli
from convcli.core.kernels import get_kernel, parse_literal
from convcli.teach.animate import (
    AnimateSettings,
    animate,
    encode_animation,
    plan,
    small_integers,
)

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "sample_images" / "cat224.png"
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
NUMPY_MODE = {"zeros": "constant", "border": "edge", "reflection": "reflect", "symmetric": "symmetric",
              "circular": "wrap"}
MODES = ["zeros", "border", "reflection", "symmetric", "circular"]


def run(*args: Any) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"convcli {args} raised {result.exception!r}\n{result.stderr}")
    return result


def ok(*args: Any) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def direct(x: np.ndarray, k: np.ndarray, s: tuple[int, int], d: tuple[int, int],
           pad: tuple[int, int, int, int], mode: str) -> np.ndarray:
    """out[y, x] = sum_ij K[i, j] * padded[y*s + i*d, x*s + j*d], float64 loops."""
    t, b, left, r = pad
    if mode == "valid":
        xp = x.astype(np.float64)
    elif mode == "zeros":
        xp = np.pad(x.astype(np.float64), ((t, b), (left, r)), mode="constant")
    else:
        xp = np.pad(x.astype(np.float64), ((t, b), (left, r)), mode=NUMPY_MODE[mode])
    kh, kw = k.shape
    oh = (xp.shape[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (xp.shape[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    out = np.zeros((oh, ow))
    for y in range(oh):
        for xx in range(ow):
            acc = 0.0
            for i in range(kh):
                for j in range(kw):
                    acc += k[i, j] * xp[y * s[0] + i * d[0], xx * s[1] + j * d[1]]
            out[y, xx] = acc
    return out


def transposed_direct(x: np.ndarray, k: np.ndarray, s: int, d: int, p: int, a: int) -> np.ndarray:
    """PyTorch's conv_transpose2d: every input scatters input * K into the output, then crop p (and add a)."""
    h, w = x.shape
    kh, kw = k.shape
    full = np.zeros(((h - 1) * s + d * (kh - 1) + 1 + a, (w - 1) * s + d * (kw - 1) + 1 + a))
    for y in range(h):
        for xx in range(w):
            for i in range(kh):
                for j in range(kw):
                    full[y * s + i * d, xx * s + j * d] += x[y, xx] * k[i, j]
    return full[p:full.shape[0] - p, p:full.shape[1] - p]


def settings(**kw: Any) -> AnimateSettings:
    kw.setdefault("kernel", get_kernel("sharpen"))
    return AnimateSettings(**kw)


# --- frames and labels ------------------------------------------------------------------


def test_default_labels_as_the_guide_writes_them() -> None:
    p = plan(settings(stride=(2, 2), pad=(1, 1, 1, 1)))
    assert p.labels["input"] == "input 5×5"
    assert p.labels["padding"] == "padding zeros 1"
    assert p.labels["kernel"].startswith("kernel 3×3")
    assert p.labels["geometry"].startswith("stride 2")
    assert p.labels["output"] == "output 3×3 = (5+1+1-1*(3-1)-1)//2+1"


@pytest.mark.parametrize(("kw", "outputs"), [
    ({"stride": (2, 2), "pad": (1, 1, 1, 1)}, 9),
    ({"pad": (1, 1, 1, 1), "mode": "reflection"}, 25),
    ({"pad": (0, 0, 0, 0), "mode": "valid", "input_size": 4}, 4),
    ({"pad": (1, 1, 1, 1), "unroll": True, "input_size": 3}, 9),
    ({"stride": (2, 2), "pad": (1, 1, 1, 1), "transposed": True, "input_size": 3}, 25),
])
def test_one_frame_per_output_plus_intro_and_final(kw: dict[str, Any], outputs: int) -> None:
    anim = animate(settings(**kw))
    assert len(anim.plan.steps) == outputs
    assert len(anim.frames) == outputs + 2 == len(anim.durations)
    shapes = {f.shape for f in anim.frames}
    assert len(shapes) == 1 and all(f.dtype == np.uint8 for f in anim.frames)


def test_durations_follow_fps_and_hold_the_ends() -> None:
    anim = animate(settings(fps=4, input_size=3))
    assert anim.durations[1:-1] == [250] * 9
    assert anim.durations[0] == anim.durations[-1] == 750


def test_padding_cells_hold_what_each_mode_puts_there() -> None:
    x = small_integers(5)
    for mode in MODES:
        p = plan(settings(values=x, pad=(2, 1, 1, 2), mode=mode))
        np.testing.assert_array_equal(p.grid, np.pad(x, ((2, 1), (1, 2)), mode=NUMPY_MODE[mode]))
        assert p.labels["padding"] == f"padding {mode} 2,1,1,2 (T,B,L,R)"


# --- sizes: the guide's relationships -------------------------------------------------------


@given(n=st.integers(1, 9), k=st.integers(1, 5), s=st.integers(1, 3), d=st.integers(1, 2),
       before=st.integers(0, 3), after=st.integers(0, 3))
def test_output_size_is_the_guides_formula(n: int, k: int, s: int, d: int, before: int, after: int) -> None:
    expected = (n + before + after - d * (k - 1) - 1) // s + 1
    kernel = parse_literal("; ".join(" ".join("1" for _ in range(k)) for _ in range(k)))
    st_ = settings(kernel=kernel, input_size=n, stride=(s, s), dilation=(d, d),
                   pad=(before, after, before, after))
    if expected < 1:
        with pytest.raises(ValueError, match="empty"):
            plan(st_)
        return
    assert plan(st_).out_hw == (expected, expected)


@given(i=st.integers(1, 5), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       data=st.data())
def test_transposed_size_is_the_guides_relationship(i: int, k: int, s: int, d: int, data: Any) -> None:
    p = data.draw(st.integers(0, d * (k - 1)))
    a = data.draw(st.integers(0, max(s, d) - 1))
    kernel = parse_literal("; ".join(" ".join("1" for _ in range(k)) for _ in range(k)))
    st_ = settings(kernel=kernel, input_size=i, stride=(s, s), dilation=(d, d), pad=(p, p, p, p),
                   transposed=True, output_padding=a)
    if s * (i - 1) + a + d * (k - 1) + 1 - 2 * p < 1:
        with pytest.raises(ValueError, match="empty"):
            plan(st_)
        return
    planned = plan(st_)
    got = planned.out_hw
    # the label writes PyTorch's formula, (i-1)*s - 2*p + d*(k-1) + a + 1, and it adds up to the size
    formula = planned.labels["output"].split(" = ", 1)[1]
    assert formula == f"({i}-1)*{s}{f'-2*{p}' if p else ''}+{d}*({k}-1)+{a}+1"
    assert eval(formula, {"__builtins__": {}}) == got[0]  # noqa: S307 - digits and + - * ( ) only
    # the guide's relationship 13 (d = 1): o' = s(i'-1) + a + k - 2p; with dilation k -> d(k-1)+1
    assert got == (s * (i - 1) + a + d * (k - 1) + 1 - 2 * p,) * 2
    if d == 1:
        assert got[0] == s * (i - 1) + a + k - 2 * p


# --- numbers ---------------------------------------------------------------------------------


def test_lecture_patch_gives_50() -> None:
    patch = parse_literal("10 20 30; 40 50 60; 70 80 90").weights
    p = plan(settings(values=patch, pad=(0, 0, 0, 0), mode="valid"))
    assert len(p.steps) == 1
    assert p.steps[0].value == 50
    assert p.steps[0].equation.endswith("= 50")
    assert p.output is not None and p.output[0, 0] == 50


@given(h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4),
       s=st.integers(1, 3), d=st.integers(1, 2), pad=st.tuples(*[st.integers(0, 3)] * 4),
       mode=st.sampled_from(MODES), seed=st.integers(0, 2**16))
def test_numbers_shown_equal_a_float64_loop(h: int, w: int, kh: int, kw: int, s: int, d: int,
                                            pad: tuple[int, int, int, int], mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-20, 60, size=(h, w)).astype(np.float64)
    k = np.round(rng.normal(size=(kh, kw)), 2)
    if (h + pad[0] + pad[1] - d * (kh - 1) - 1 < 0) or (w + pad[2] + pad[3] - d * (kw - 1) - 1 < 0):
        return
    p = plan(settings(kernel=parse_literal(";".join(" ".join(map(str, r)) for r in k)), values=x,
                      stride=(s, s), dilation=(d, d), pad=pad, mode=mode))
    want = direct(x, k, (s, s), (d, d), pad, mode)
    assert p.output is not None
    np.testing.assert_allclose(p.output, want, rtol=1e-12, atol=1e-9)
    for step in p.steps:
        assert step.value == pytest.approx(want[step.out_yx], rel=1e-12, abs=1e-9)
        assert step.value == pytest.approx(sum(wt * v for wt, v, _ in step.terms), rel=1e-12, abs=1e-9)


@given(i=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2), k=st.integers(1, 3),
       seed=st.integers(0, 2**16), data=st.data())
def test_transposed_numbers_equal_the_scatter_definition(i: int, s: int, d: int, k: int, seed: int,
                                                         data: Any) -> None:
    p_ = data.draw(st.integers(0, d * (k - 1)))
    a = data.draw(st.integers(0, max(s, d) - 1))
    if s * (i - 1) + a + d * (k - 1) + 1 - 2 * p_ < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10, size=(i, i)).astype(np.float64)
    kern = rng.integers(-3, 4, size=(k, k)).astype(np.float64)
    pl = plan(settings(kernel=parse_literal(";".join(" ".join(str(int(v)) for v in r) for r in kern)),
                       values=x, stride=(s, s), dilation=(d, d), pad=(p_,) * 4, transposed=True,
                       output_padding=a))
    want = transposed_direct(x, kern, s, d, p_, a)
    assert pl.output is not None
    np.testing.assert_allclose(pl.output, want, atol=1e-9)
    assert [st_.value for st_ in pl.steps] == pytest.approx(list(want.ravel()), abs=1e-9)


def test_unroll_rows_are_the_windows() -> None:
    x = small_integers(4)
    p = plan(settings(values=x, pad=(1, 1, 1, 1), mode="reflection", unroll=True))
    want = direct(x, SHARPEN, (1, 1), (1, 1), (1, 1, 1, 1), "reflection")
    assert [s.value for s in p.steps] == pytest.approx(list(want.ravel()))


# --- files ------------------------------------------------------------------------------------


def _durations(im: Image.Image) -> list[int]:
    out = []
    for i in range(im.n_frames):
        im.seek(i)
        im.load()
        out.append(int(im.info["duration"]))
    return out


@pytest.mark.parametrize("ext", [".gif", ".png", ".webp"])
def test_written_animation_opens_with_frames_and_durations(tmp_path: Path, ext: str) -> None:
    if ext == ".webp" and not features.check("webp"):
        pytest.skip("Pillow without WebP")
    out = tmp_path / "new" / "dir" / f"conv{ext}"
    res = ok("animate", "-k", "sharpen", "-s", "2", "--pad", "1", "--fps", "4", "-o", out)
    assert "11 frames" in res.stdout
    with Image.open(out) as im:
        assert im.n_frames == 11
        assert _durations(im) == [750] + [250] * 9 + [750]
    assert out.stat().st_size < 200_000


def test_gif_frames_keep_their_pixels() -> None:
    anim = animate(settings(stride=(2, 2), values=small_integers(5)))
    with Image.open(io.BytesIO(encode_animation(anim.frames, anim.durations, "gif"))) as im:
        for i, frame in enumerate(anim.frames):
            im.seek(i)
            got = np.asarray(im.convert("RGB"))
            assert np.mean(np.any(got != frame, axis=2)) < 0.01  # a shared palette: crisp, near exact


def test_frame_writes_one_png(tmp_path: Path) -> None:
    out = tmp_path / "still.png"
    ok("animate", "--numbers", "--unroll", "--input-size", "3", "-o", out, "--frame", "-1")
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert getattr(im, "n_frames", 1) == 1
    anim = animate(settings(values=small_integers(3), unroll=True))
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), anim.frames[-1])


def test_image_crop_is_its_rounded_luminance(tmp_path: Path) -> None:
    out = tmp_path / "cat.gif"
    ok("animate", CAT, "--at", "100,60", "--crop", "4", "-k", "sobel-x", "-o", out)
    lum = np.asarray(Image.open(CAT).convert("RGB"), dtype=np.float64)
    lum = lum[..., 0] * 0.299 + lum[..., 1] * 0.587 + lum[..., 2] * 0.114
    from convcli.cli.commands.animate import _photo_patch

    patch, _, xy, _ = _photo_patch(str(CAT), "100,60", 4)
    assert xy == (100, 60)
    np.testing.assert_allclose(patch, np.rint(lum[60:64, 100:104]), atol=1)
    with Image.open(out) as im:
        assert im.n_frames == 16 + 2


@pytest.mark.parametrize("args", [
    ["-o", "x.bmp"],
    ["-o", "x.gif", "--frame", "0"],
    ["-o", "x.png", "--frame", "99"],
    ["-o", "x.gif", "--transposed", "-p", "reflection"],
    ["-o", "x.gif", "--transposed", "--pad", "3"],
    ["-o", "x.gif", "--output-padding", "1"],
    ["-o", "x.gif", "--at", "1,1"],
    ["-o", "x.gif", "--patch", "1 2; 3 4", "--input-size", "4"],
    ["-o", "x.gif", "--input-size", "3", "-p", "valid", "-k", "box5"],
    ["-o", "x.gif", "-k", "nonsense"],
    ["-o", "x.gif", "--input-size", "16", "--unroll"],
    [str(CAT), "--at", "220,0", "-o", "x.gif"],
    ["-o", "x.gif", "--pad", "1000000"],  # a 3.6 TiB grid was built before the size check: traceback
    ["-o", "x.gif", "--transposed", "-s", "1000000", "--pad", "0"],
])
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    res = run("animate", *args)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert res.stderr.startswith("convcli: error:")
    assert res.stderr.strip().count("\n") == 0
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content", [None, b"hello", b""])
def test_an_image_that_cannot_be_read_is_named(tmp_path: Path, content: bytes | None) -> None:
    """SPEC 5: every error names its input; animate said 'convcli: error: no such file'."""
    src = tmp_path / "cat.png"
    if content is not None:
        src.write_bytes(content)
    r = run("animate", src, "-o", tmp_path / "a.gif")
    assert r.exit_code == 1
    assert r.stderr.startswith(f"convcli: error: IMAGE {src}: ") and r.stderr.count("\n") == 1
    assert not (tmp_path / "a.gif").exists()


def test_a_crop_larger_than_the_image_names_it(tmp_path: Path) -> None:
    """SPEC 5: every error names its input ('--crop 5 is larger than the image' did not)."""
    src = tmp_path / "one.png"
    Image.new("L", (1, 1)).save(src)
    r = run("animate", src, "-o", tmp_path / "a.gif", "--crop", "5")
    assert r.exit_code == 2
    assert r.stderr == f"convcli: error: IMAGE {src}: --crop 5 is larger than the image (1×1, W×H)\n"


@hypothesis.settings(max_examples=40, derandomize=True)
@given(seed=st.integers(0, 10_000), n_palette=st.integers(1, 40))
def test_frames_are_indexed_to_the_nearest_palette_colour(seed: int, n_palette: int) -> None:
    """GIF frames: every pixel takes its own colour where the palette has it, else the nearest entry
    (squared RGB distance, the first on a tie), against a brute-force look-up over all entries."""
    from convcli.teach.animate import _indexed_frames, _pack

    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (60, 3), dtype=np.uint8)
    frame = colours[rng.integers(0, 60, (17, 23))]
    palette = np.unique(_pack(colours[rng.choice(60, n_palette, replace=False)][None]).ravel())
    got = np.asarray(next(_indexed_frames([frame], palette)).convert("RGB"))  # a first frame: looked up whole
    entries = np.stack([(palette >> 16) & 255, (palette >> 8) & 255, palette & 255], axis=1).astype(np.int64)
    d = ((frame.astype(np.int64)[:, :, None, :] - entries[None, None]) ** 2).sum(axis=3)
    np.testing.assert_array_equal(got, entries[np.argmin(d, axis=2)].astype(np.uint8))


# --- drawing and encoding fast paths, against the plain calls they replace ----------------------


@hypothesis.settings(max_examples=60, derandomize=True, deadline=None)
@given(text=st.sampled_from(["0", "−12", "1/16", "out[3,4] = (0·[0]) + (−1·20) = 50", "input 5×5", "⋆", "@",
                             "3.1416", "padding zeros 1", "→"]),
       x=st.floats(0, 120, allow_nan=False), y=st.floats(0, 40, allow_nan=False),
       half=st.booleans(), anchor=st.sampled_from(["la", "mm", "ma", "rm"]),
       size=st.sampled_from([11, 13, 28]), fill=st.tuples(*[st.integers(0, 255)] * 3),
       seed=st.integers(0, 99))
def test_cached_text_draws_what_pillow_draws(text: str, x: float, y: float, half: bool, anchor: str,
                                             size: int, fill: tuple[int, int, int], seed: int) -> None:
    """_Pen.draw renders each text once and blends the kept coverage: pixel for pixel what
    ImageDraw.text draws, twice over (the second call from the cache), on a noisy background."""
    from PIL import ImageDraw

    from convcli.teach.animate import _Pen

    if half:  # the cells' centres are whole or half pixels
        x, y = round(x * 2) / 2, round(y * 2) / 2
    background = np.random.default_rng(seed).integers(0, 256, (60, 200, 3), dtype=np.uint8)
    pen = _Pen(size)
    want = Image.fromarray(background)
    ImageDraw.Draw(want).text((x, y), pen.text(text), fill=fill, font=pen.font, anchor=anchor)
    for _ in range(2):
        got = Image.fromarray(background)
        pen.draw(ImageDraw.Draw(got), (x, y), text, fill, anchor=anchor)
        assert np.array_equal(np.asarray(got), np.asarray(want))


def _random_frames(seed: int, count: int, h: int = 23, w: int = 31) -> list[np.ndarray]:
    """Frames that change a few rectangles at a time (sometimes nothing), like the animation's."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (12, 3), dtype=np.uint8)
    frame = colours[rng.integers(0, 12, (h, w))]
    out = [frame]
    for _ in range(count - 1):
        frame = frame.copy()
        for _ in range(int(rng.integers(0, 3))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            frame[y:y + int(rng.integers(1, 6)), x:x + int(rng.integers(1, 6))] = colours[rng.integers(0, 12)]
        out.append(frame)
    return out


@hypothesis.settings(max_examples=25, derandomize=True, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 12))
def test_apng_frames_decode_to_the_frames_given(seed: int, count: int) -> None:
    """encode_apng (one changed rectangle a frame, drawn OVER the frame before): Pillow's APNG
    reader gives back every frame exactly, with its duration."""
    from convcli.io.png import encode_apng

    frames = _random_frames(seed, count)
    durations = [100 + 10 * i for i in range(count)]
    data = encode_apng(iter(frames), count, durations)
    with Image.open(io.BytesIO(data)) as im:
        assert getattr(im, "n_frames", 1) == count
        for i, frame in enumerate(frames):
            im.seek(i)
            assert np.array_equal(np.asarray(im.convert("RGB")), frame), i
            assert int(im.info["duration"]) == durations[i]


def test_apng_refuses_a_frame_count_it_was_not_given() -> None:
    from convcli.io.png import encode_apng

    frames = _random_frames(1, 3)
    for count in (2, 4):
        with pytest.raises(ValueError, match="announced"):
            encode_apng(iter(frames), count, [100] * count)


@hypothesis.settings(max_examples=25, derandomize=True, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 10), n_palette=st.integers(1, 12))
def test_gif_frames_indexed_by_their_changes_as_each_frame_whole(seed: int, count: int,
                                                                 n_palette: int) -> None:
    """_indexed_frames looks up only the pixels that changed since the frame before: the same
    indices as looking up every frame whole (each as a first frame), misses included."""
    from convcli.teach.animate import _indexed_frames, _pack

    frames = _random_frames(seed, count)
    palette = np.unique(_pack(frames[0][:1, :n_palette]).ravel())
    got = [np.asarray(im) for im in _indexed_frames(frames, palette)]
    want = [np.asarray(next(_indexed_frames([f], palette))) for f in frames]
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_frames_are_drawn_when_asked_for() -> None:
    """Animation.frames draws frame i when it is asked for (258 frames of a 16×16 input were 1 GB
    held at once): --frame N draws one frame; the sequence gives the same pixels as before."""
    anim = animate(settings(stride=(2, 2), values=small_integers(5)))
    frames = anim.frames
    calls: list[int] = []
    draw = frames._draw
    frames._draw = lambda i: calls.append(i) or draw(i)  # type: ignore[method-assign]
    last = frames[-1]
    assert calls == [len(frames) - 1]
    assert np.array_equal(last, list(frames)[-1]) and np.array_equal(frames[1:3][1], frames[2])
    with pytest.raises(IndexError):
        frames[len(frames)]


@pytest.mark.parametrize(("spec", "name"), [
    ("0.111 0.222 0.111; 0.222 0.444 0.222; 0.111 0.222 0.111", "literal (sum 1.776)"),
    ("gaussian:sigma=1.5", "gaussian:sigma=1.5"),
    ("sharpen", "sharpen"),
])
def test_the_kernel_panel_names_the_kernel(spec: str, name: str) -> None:
    """'kernel 3×3' alone for the lecture's printed Gaussian: its name, 'literal (sum 1.776)' (the
    lecture's point about it), and a parametric kernel's were cut at 16 characters."""
    from convcli.cli.kernelspec import cli_kernel

    k = cli_kernel(spec)
    half = k.shape[0] // 2
    p = plan(settings(kernel=k, values=small_integers(5), pad=(half,) * 4))
    assert p.labels["kernel"].endswith(name), p.labels["kernel"]
