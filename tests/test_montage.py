"""convcli.teach.render: layout, labels, scaling, alpha, feature maps, kernel and padding panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convcli.errors import UsageError
from convcli.teach.render import (
    CHECKER,
    OUTLINE,
    Panel,
    feature_maps_to_panels,
    kernel_panel,
    layout,
    make_montage,
    padded_frame_panel,
    scale_to_cell,
)


def _panels(n: int, size: int = 32, label: str = "op") -> list[Panel]:
    rng = np.random.default_rng(n)
    return [Panel(f"{label} {i}", f"[1, 3, {size}, {size}]",
                  rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)) for i in range(n)]


def _crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    return img[top:bottom, left:right]


# --- layout --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "columns", "rows"), [(1, None, 1), (3, None, 1), (4, None, 1), (5, None, 2),
                                                     (9, None, 3), (5, 2, 3), (3, 5, 1)])
def test_montage_size_follows_the_grid(n: int, columns: int | None, rows: int) -> None:
    cell = 64
    out = make_montage(_panels(n), cell=cell, columns=columns)
    lay = layout(n, cell=cell, columns=columns)
    cols = min(n, columns or 4)
    assert (lay.columns, lay.rows) == (cols, rows)
    assert out.dtype == np.uint8 and out.shape == (lay.height, lay.width, 3)
    assert lay.width == cols * cell + (cols + 1) * lay.margin
    assert lay.height == rows * (cell + lay.label_height) + (rows + 1) * lay.margin


def test_each_extra_column_adds_one_cell_and_margin() -> None:
    a, b = make_montage(_panels(2), cell=80), make_montage(_panels(3), cell=80)
    assert a.shape[0] == b.shape[0]
    assert b.shape[1] - a.shape[1] == 80 + layout(3, cell=80).margin


def test_title_adds_a_band_on_top() -> None:
    plain = make_montage(_panels(2), cell=64)
    titled = make_montage(_panels(2), cell=64, title="Sharpen")
    lay = layout(2, cell=64, title=True)
    assert titled.shape == (plain.shape[0] + lay.title_height, plain.shape[1], 3)
    band = titled[: lay.title_height]
    assert (band < 128).any()  # the title is drawn, dark on white


def test_labels_are_drawn_under_each_panel() -> None:
    panels = _panels(3, label="sharpen")
    out = make_montage(panels, cell=96)
    lay = layout(3, cell=96)
    for i in range(3):
        region = _crop(out, lay.label_box(i))
        assert (region < 100).all(axis=2).sum() > 20  # dark text pixels
        assert (region == 255).all(axis=2).mean() > 0.5  # on a white background
    other = make_montage(_panels(3, label="blur"), cell=96)
    assert not np.array_equal(_crop(out, lay.label_box(0)), _crop(other, lay.label_box(0)))
    # the pictures themselves are the same: only the labels differ
    np.testing.assert_array_equal(_crop(out, lay.cell_box(0)), _crop(other, lay.cell_box(0)))


def test_shape_text_is_drawn_too() -> None:
    a = [Panel("x", "[1, 3, 224, 224]", np.zeros((8, 8), np.uint8))]
    b = [Panel("x", "[1, 2, 56, 56]", np.zeros((8, 8), np.uint8))]
    assert not np.array_equal(make_montage(a, cell=96), make_montage(b, cell=96))


def test_default_font_is_scalable_and_legible() -> None:
    lay = layout(1)
    assert lay.font_size >= 14  # at the default 224-pixel cell
    out = make_montage([Panel("sharpen", "[1, 3, 224, 224]", np.zeros((224, 224), np.uint8))])
    region = _crop(out, lay.label_box(0))
    rows_with_ink = np.nonzero((region < 128).all(axis=2).any(axis=1))[0]
    assert rows_with_ink.size >= 10  # text is more than a few pixels tall


# --- scaling --------------------------------------------------------------------------------


def test_small_maps_are_enlarged_by_whole_blocks() -> None:
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    out = make_montage([Panel("map", "[1, 1, 8, 8]", small)], cell=64)
    picture = _crop(out, layout(1, cell=64).cell_box(0))[:, :, 0]
    np.testing.assert_array_equal(picture, np.kron(small, np.ones((8, 8), dtype=np.uint8)))


def test_upscaling_keeps_aspect_and_uses_whole_factors() -> None:
    img = np.zeros((7, 20, 3), np.uint8)
    assert scale_to_cell(img, 64).shape == (21, 60, 3)  # factor 3 = floor(64 / 20)
    assert scale_to_cell(np.zeros((150, 100), np.uint8), 224).shape == (150, 100)  # 1.49: kept as is


def test_large_images_are_shrunk_to_fit() -> None:
    big = np.full((448, 224, 3), 200, np.uint8)
    assert scale_to_cell(big, 224).shape == (224, 112, 3)
    out = make_montage([Panel("big", "[1, 3, 448, 224]", big)], cell=224)
    picture = _crop(out, layout(1).cell_box(0))
    assert (picture[:, 56:168] == 200).all()  # centred, 112 wide
    assert (picture[:, :50] == 255).all()


# --- alpha --------------------------------------------------------------------------------------


def test_transparent_pixels_show_a_checkerboard() -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :32] = (255, 0, 0, 255)  # opaque red on the left, fully transparent on the right
    out = make_montage([Panel("alpha", "[1, 4, 64, 64]", rgba)], cell=64)
    picture = _crop(out, layout(1, cell=64).cell_box(0))
    assert (picture[:, :32] == (255, 0, 0)).all()
    right = picture[:, 32:].reshape(-1, 3)
    colours = {tuple(int(v) for v in c) for c in np.unique(right, axis=0)}
    assert colours == {CHECKER[0], CHECKER[1]}


def test_panel_rejects_floats_and_squeezes_single_channel() -> None:
    with pytest.raises(UsageError, match="uint8"):
        Panel("x", "s", np.zeros((4, 4), np.float32))
    assert Panel("x", "s", np.zeros((4, 4, 1), np.uint8)).image.shape == (4, 4)
    with pytest.raises(UsageError, match="at least one panel"):
        make_montage([])


# --- feature maps -----------------------------------------------------------------------------


def test_feature_maps_are_normalised_channel_by_channel() -> None:
    rng = np.random.default_rng(2)
    maps = np.stack([rng.normal(0, 1, (6, 5)), 1000 + 5 * rng.normal(0, 1, (6, 5)), np.full((6, 5), 3.0)], -1)
    panels = feature_maps_to_panels(maps, "After 3x3 Conv", "[1, 3, 6, 5]")
    assert [p.label for p in panels] == [f"After 3x3 Conv (channel {i}/3)" for i in (1, 2, 3)]
    ranges = [f"{maps[:, :, i].min() + 0.0:.4g}..{maps[:, :, i].max() + 0.0:.4g}" for i in (0, 1)]
    assert [p.shape for p in panels] == [f"[1, 3, 6, 5] {r}" for r in ranges] + ["[1, 3, 6, 5] all 3"]
    for p, ch in zip(panels[:2], (0, 1), strict=True):
        assert p.image.dtype == np.uint8 and p.image.shape == (6, 5)
        assert p.image.min() == 0 and p.image.max() == 255
        # order is kept: the brightest pixel is where the channel is largest
        assert np.argmax(p.image) == np.argmax(maps[:, :, ch])
    assert (panels[2].image == 0).all()  # a flat map has no contrast to show
    unnamed = feature_maps_to_panels(maps[:, :, :2], "", "s")
    assert [p.label for p in unnamed] == ["channel 1/2", "channel 2/2"]


# --- kernels --------------------------------------------------------------------------------------


def test_kernel_panel_colours_show_the_sign() -> None:
    w = np.array([[-1.0, 0.0, 1.0]])
    p = kernel_panel(w, "K_v row")
    img = p.image.astype(int)
    px = img.shape[1] // 3
    neg, zero, pos = (img[img.shape[0] // 2, j * px + 2] for j in range(3))
    assert neg[2] > neg[0] + 80  # blue
    assert pos[0] > pos[2] + 80  # red
    assert (zero > 240).all()  # white
    assert p.shape == "[1, 3]" and p.label == "K_v row"


def test_kernel_panel_writes_values_up_to_5x5() -> None:
    w = np.zeros((3, 3))
    with_text = kernel_panel(w, "z").image
    assert (with_text < 100).all(axis=2).any()  # "0" written in dark ink on white cells
    big = kernel_panel(np.zeros((7, 7)), "z7").image
    assert not (big < 100).all(axis=2).any()  # no text beyond 5×5


# --- padding frames ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["zeros", "border", "reflection", "symmetric", "circular"])
def test_padded_frame_outlines_the_original(mode: str) -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    p = padded_frame_panel(img, 6, mode)
    assert p.image.shape == (32, 42, 3)
    assert p.shape == "[1, 3, 32, 42]" and mode in p.label
    np.testing.assert_array_equal(p.image[6:26, 6:36], img)  # the original pixels are untouched
    assert (p.image[5, 5:37] == OUTLINE).all() and (p.image[26, 5:37] == OUTLINE).all()
    assert (p.image[5:27, 5] == OUTLINE).all() and (p.image[5:27, 36] == OUTLINE).all()


def test_padded_frame_uses_the_mode() -> None:
    img = np.arange(1, 26, dtype=np.uint8).reshape(5, 5) * 10
    zeros = padded_frame_panel(img, 3, "zeros").image
    assert (zeros[0, :, 0] == 0).all()
    refl = padded_frame_panel(img, 3, "reflection").image
    assert refl[0, 3, 0] == img[3, 0]  # three rows above row 0 reflects row 3
    with pytest.raises(UsageError, match="valid"):
        padded_frame_panel(img, 3, "valid")


def test_a_conv_stage_shows_every_weight_of_each_output() -> None:
    """0.3 drew w[o, 0] only: the weights on the first input channel, 9 of 27 for a 3x3 RGB layer."""
    from convcli.pipeline import ConvStage, Pipeline
    from convcli.teach.render import conv_kernel_panels

    for cin, cout, size, most in ((3, 3, 3, 8), (5, 12, 3, 8), (3, 2, 1, 8)):
        stage = ConvStage(op="conv", out_channels=cout, kernel_size=(size, size), seed=1)
        (plan,) = Pipeline((stage,)).plan((cin, 20, 20))
        panels = conv_kernel_panels(plan, 1, most)
        w = stage.weights_for(cin)
        if size == 1:  # one (out, in) matrix
            assert [p.shape for p in panels] == [f"[{cout}, {cin}]"]
            continue
        assert [p.shape for p in panels] == [f"[{cin}, {size}, {size}]"] * min(cout, most)
        for o, p in enumerate(panels):  # each input's kernel drawn in its colours: red where w > 0
            cols = int(np.ceil(np.sqrt(cin)))  # the kernels in a near-square grid, 6 px apart
            rows = -(-cin // cols)
            px = max(4, min((224 - 6 * (cols - 1)) // cols // size,
                            (224 - rows * 16 - 6 * (rows - 1)) // rows // size))
            for c in range(cin):
                r, q = divmod(c, cols)
                red = p.image[r * (16 + size * px + 6) + 16 + 2, q * (size * px + 6) + 2].astype(int)
                w00 = w[o, c, 0, 0]
                if abs(w00) > 0.2 * np.abs(w[o]).max():
                    assert (red[0] > red[2]) == (w00 > 0)
        if cout > most:
            assert panels[-1].label.endswith(f"(first {most} of {cout} outputs)")


def test_the_stages_of_a_pipeline_share_one_scale() -> None:
    """A 112x112 stage after a 224x224 input is drawn half as wide, not blown up to the same size
    (0.3 fitted each to its cell: a 112 stage looked as big as the input, and bigger than a 150 one)."""
    def solid(n: int, rgb: tuple[int, int, int]) -> np.ndarray:
        return np.broadcast_to(np.array(rgb, np.uint8), (n, n, 3)).copy()

    colours = {224: (250, 0, 0), 150: (0, 250, 0), 112: (0, 0, 250)}
    cases = ((True, {224: 224, 150: 150, 112: 112}), (False, {224: 224, 150: 150, 112: 224}))
    for true_scale, drawn in cases:
        panels = [Panel(f"{n}", f"{n}", solid(n, c), true_scale=true_scale) for n, c in colours.items()]
        canvas = make_montage(panels, cell=224)
        for n, c in colours.items():
            assert np.all(canvas == np.array(c, np.uint8), axis=2).sum() == drawn[n] ** 2, (true_scale, n)
    tiny = make_montage([Panel("a", "", solid(4, (250, 0, 0)), true_scale=True),
                         Panel("b", "", solid(2, (0, 0, 250)), true_scale=True)], cell=224)
    assert np.all(tiny == np.array((0, 0, 250), np.uint8), axis=2).sum() == 112 ** 2  # both x56


@pytest.mark.parametrize(("policy", "copies"), [("clip", 2), ("normalize", 1)])
def test_the_last_stage_is_drawn_with_the_outputs_range(tmp_path, policy: str, copies: int) -> None:
    """--range normalize maps a 100|120 grey image to 0|255 in the output; the montage drew the
    output panel clipped (100|120 again) whatever --range said. Counted: pixels of grey 120 are
    the input panel's right half, and the output panel's only when it is drawn clipped."""
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli

    a = np.full((64, 64), 100, np.uint8)
    a[:, 32:] = 120
    Image.fromarray(a, "L").save(tmp_path / "in.png")
    r = CliRunner().invoke(cli, ["filter", str(tmp_path / "in.png"), "-k", "identity", "--range", policy,
                                 "-o", str(tmp_path / "out.png"), "--montage", str(tmp_path / "m.png"), "-q"])
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert set(np.unique(out)) == ({100, 120} if policy == "clip" else {0, 255})
    m = np.asarray(Image.open(tmp_path / "m.png").convert("RGB")).astype(int)
    is120 = np.all(m == 120, axis=2)
    mid = m.shape[1] // 2  # input panel on the left, the output's on the right
    left, right = int(is120[:, :mid].sum()), int(is120[:, mid:].sum())
    assert left >= 32 * 64
    assert abs(right - (copies - 1) * left) < 0.01 * left  # a few grey-120 pixels are text antialiasing


@pytest.mark.parametrize(("v", "text"), [
    (0.0099, "0.0099"), (0.01, "0.01"), (0.024, "0.024"), (0.0031, "0.003"), (-0.0031, "-0.003"),
    (0.00027, "3e-4"), (-6e-6, "-6e-6"), (0.84, "0.84"), (-1.0, "-1"),
])
def test_kernel_cell_texts_read_as_their_neighbours(v: float, text: str) -> None:
    """The learned kernel's step-0 panel wrote 0.0099 as '1e-2' beside '0.024': values from 0.001
    up are written as decimals, only smaller ones in e-notation."""
    from convcli.teach.render import _weight_text

    assert _weight_text(v) == text


@pytest.mark.parametrize("value", [255, 0, 128])
def test_every_picture_has_a_visible_edge(value: int) -> None:
    """An all-white result (every sample clipped to 255) was drawn white on the white page with no
    edge: an empty cell above its label, as if nothing came out. Each picture has a hairline now."""
    flat = np.full((20, 30, 3), value, np.uint8)
    m = make_montage([Panel("a", "[1, 3, 20, 30]", flat), Panel("b", "[1, 3, 20, 30]", flat)], cell=120)
    lay = layout(2, cell=120)
    for i in range(2):
        left, top, right, bottom = lay.cell_box(i)
        cell = m[top:bottom, left:right].reshape(-1, 3)
        colours = {tuple(c) for c in cell}
        assert colours - {(255, 255, 255), (value,) * 3}, f"panel {i}: only the page and the picture"


def test_a_title_keeps_an_arrow_with_its_sizes_and_a_blank_cell_is_empty() -> None:
    """demo's stride-2 title wrapped as '... 224' over '-> 112'; its empty grid cells were drawn with a
    frame, like a missing picture."""
    from PIL import Image, ImageDraw

    from convcli.teach.render import BACKGROUND, Panel, _font, _wrap, blank_panel, make_montage

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title = "3x3 convolution, stride 2, zero padding 1: 224 -> 112 -> 56"
    for width in range(120, 700, 20):
        lines = _wrap(draw, title, _font(20), width)
        assert " ".join(lines) == title
        assert not any(ln.startswith("->") or ln.endswith("->") for ln in lines), lines
    pic = np.full((30, 30), 90, dtype=np.uint8)
    out = np.asarray(make_montage([Panel("a", "[1]", pic), blank_panel()], columns=2))
    right = out[:, out.shape[1] // 2 + 4:]
    assert np.all(right == np.array(BACKGROUND, dtype=np.uint8)), "the blank cell drew something"


def test_a_signed_stage_before_the_last_is_drawn_as_its_magnitude() -> None:
    """A downsample of an edge response was drawn clipped, half black, after the edges stage itself
    was drawn bright as |x|: a stage (not the last, which is drawn as the output file) whose values
    are more than 10% negative is drawn as |x| and says so; one barely negative stays clipped."""
    from convcli.core.kernels import get_kernel
    from convcli.pipeline import Pipeline, make_correlate_stage
    from convcli.teach.render import stage_panels

    plan = Pipeline((make_correlate_stage("downsample", get_kernel("gaussian3")),)).plan((1, 20, 30))[0]
    rng = np.random.default_rng(3)
    signed = rng.normal(0, 60, (20, 30, 1)).astype(np.float32)
    (panel,) = stage_panels(plan, signed, 255.0, 4)
    assert panel.label == "4. downsample gaussian3 |x|"
    np.testing.assert_array_equal(panel.image, np.clip(np.rint(np.abs(signed[..., 0])), 0, 255))
    mostly = np.abs(signed)
    mostly[0, 0] = -5
    (panel,) = stage_panels(plan, mostly, 255.0, 4)
    assert panel.label == "4. downsample gaussian3"
    (panel,) = stage_panels(plan, signed, 255.0, 4, "clip")  # the last stage: the output's --range
    assert panel.label == "4. downsample gaussian3" and panel.image.min() == 0


def test_kernels_compared_in_one_figure_share_one_colour_scale() -> None:
    """Each kernel panel was coloured on its own scale: -0.11 at a descent's step 0 was as dark a blue
    as -1.00 at its last step. With ``scale`` a weight's colour depends on it alone."""
    from convcli.teach.render import kernel_panel

    big = np.array([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])
    small = big * 0.11
    own = [kernel_panel(k, "k").image for k in (small, big)]
    shared = [kernel_panel(k, "k", scale=5.0).image for k in (small, big)]
    corner = (5, 100)  # inside the cell of weight [0, 1], away from its text
    assert np.array_equal(own[0][corner], own[1][corner])  # each on its own scale: the same blue
    assert shared[0][corner].sum() > shared[1][corner].sum()  # one scale: -0.11 paler than -1


def test_a_montage_draws_the_input_with_alpha_as_it_draws_the_stages(tmp_path: Path) -> None:
    """White, its left half transparent: the montage drew the input white (alpha ignored) and the
    blurred stage over black (premultiplied), so the blur seemed to black out half the picture. The
    input is drawn over black too now: both halves of it as the stage shows them."""
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli

    rgba = np.full((40, 60, 4), 255, np.uint8)
    rgba[:, :30, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "half.png")
    r = CliRunner().invoke(cli, ["blur", str(tmp_path / "half.png"), "-o", str(tmp_path / "o.png"),
                                 "--montage", str(tmp_path / "m.png")])
    assert r.exit_code == 0, r.stderr
    m = np.asarray(Image.open(tmp_path / "m.png").convert("RGB")).astype(int)
    left = m[:, : m.shape[1] // 2]  # the input's cell
    assert np.count_nonzero(left.sum(axis=2) == 0) > 500  # its transparent half, drawn black


def test_long_labels_wrap_at_one_font_size_instead_of_shrinking_and_cutting() -> None:
    """A stage label too wide for its cell was drawn in a smaller font, then cut with an ellipsis
    ("2. filter gabor:sigma=4,theta=30,lamb..."): it wraps after spaces and commas now, at the
    montage's one label size, and the montage makes room only when a label needs it."""
    from PIL import Image, ImageDraw

    from convcli.teach.render import Panel, _font, label_lines, make_montage

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = _font(layout(1).font_size)
    text = "2. filter gabor:sigma=4,theta=30,lambda=10,gamma=0.5,psi=0"
    lines = label_lines(draw, text, font, 224)
    assert 1 < len(lines) <= 3 and all(draw.textlength(ln, font=font) <= 224 for ln in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # every character, none cut
    assert label_lines(draw, "1. blur", font, 224) == ["1. blur"]
    pic = np.zeros((8, 8), np.uint8)
    short = make_montage([Panel("a", "[1]", pic), Panel("b", "[1]", pic)])
    tall = make_montage([Panel("a", "[1]", pic), Panel(text, "[1]", pic)])
    assert tall.shape[0] - short.shape[0] == (len(lines) - 1) * layout(1).font_size
    assert tall.shape[1] == short.shape[1]


@pytest.mark.parametrize(("cin", "k"), [(1, 3), (2, 3), (3, 3), (3, 5), (4, 3), (16, 3)])
def test_weights_panel_uses_its_square(cin: int, k: int) -> None:
    """Three 3x3 kernels side by side left each tap 24 px and its number ~6 px high (figure 7): they
    are laid out in a near-square grid now, the colours still the weights' own (one scale)."""
    from convcli.teach.render import weights_panel

    w = np.random.default_rng(cin).uniform(-1, 1, (cin, k, k))
    img = weights_panel(w, "out 1", [str(c) for c in range(cin)]).image
    assert img.shape[0] <= 224 and img.shape[1] <= 224
    old_px = max(4, ((224 - 6 * (cin - 1)) // cin) // k)  # one row of kernels, as it was
    assert img.shape[0] >= 16 + old_px * k - 16 and img.shape[1] >= 224 * 0.6, img.shape
    if (cin, k) == (3, 3):  # figure 7: each tap now about 31 px (24 before), the square filled
        assert min(img.shape[:2]) >= 190


@pytest.mark.parametrize("channels", [2, 5])
def test_a_npy_input_of_any_channel_count_is_drawn_one_map_a_channel(tmp_path: Path, channels: int) -> None:
    """--montage on a .npy of 2 or 5 channels failed after the work (exit 2, 'panel image must be ...
    (H, W, 3)'), while --dry-run said ok; learn wrote its files, then failed the same way. Its input is
    drawn as its stages are: one map a channel, each stretched over its own range."""
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli
    from convcli.teach.render import stage_panels

    x = np.random.default_rng(channels).random((12, 16, channels)) * 255
    panels = stage_panels(None, x.astype(np.float32), 255.0, 0)
    assert [p.label for p in panels] == [f"input (channel {i}/{channels})" for i in range(1, channels + 1)]
    for i, p in enumerate(panels):
        lo, hi = x[..., i].min(), x[..., i].max()
        want = np.round((x[..., i] - lo) / (hi - lo) * 255)
        assert np.abs(p.image.astype(float) - want).max() <= 1
    src = tmp_path / "x.npy"
    np.save(src, x)
    for args in (["filter", str(src), "-k", "sharpen", "-o", str(tmp_path / "y.npy"),
                  "--montage", str(tmp_path / "m.png")],
                 ["learn", str(src), str(src), "--size", "3", "-o", str(tmp_path / "l.npy")]):
        r = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert r.exit_code == 0, r.stderr
    assert Image.open(tmp_path / "m.png").size[0] > 0


def test_an_input_of_many_channels_draws_the_first_64() -> None:
    """A 300-channel .npy drew 600 panels (input and stage): a 976x45057 montage and 479 MB; the
    output's grid already stopped at 64."""
    from convcli.teach.render import stage_panels

    x = np.random.default_rng(0).random((8, 9, 100)).astype(np.float32)
    panels = stage_panels(None, x, 255.0, 0)
    assert [p.label for p in panels] == [f"input (channel {i}/100)" for i in range(1, 65)]
