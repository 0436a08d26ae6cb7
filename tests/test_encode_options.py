"""--quality and --compress-level are said to be ignored where the output format has no use for them.

Which formats take which option is written here by hand (Pillow's writers: JPEG and WebP take a
quality, PNG a zlib level), not read from convcli's format table. The option that does apply
still changes the file, read back with Pillow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli.app import cli

TAKES_QUALITY = {"jpg": True, "webp": True, "png": False, "bmp": False, "tif": False, "gif": False,
                 "npy": False}
TAKES_LEVEL = {"jpg": False, "webp": False, "png": True, "bmp": False, "tif": False, "gif": False,
               "npy": False}


@pytest.fixture
def src(tmp_path: Path, rng: np.random.Generator) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def notes_of(*args: object) -> list[str]:
    """Run the command with --json; its record's notes."""
    r = CliRunner().invoke(cli, [*(str(a) for a in args), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])["notes"]


@pytest.mark.parametrize("ext", sorted(TAKES_QUALITY))
def test_an_option_the_format_ignores_is_a_note(src: Path, tmp_path: Path, ext: str) -> None:
    notes = notes_of("blur", src, "--quality", 50, "--compress-level", 3, "-o", tmp_path / f"o.{ext}")
    said_quality = any(n.startswith("--quality ignored") for n in notes)
    said_level = any(n.startswith("--compress-level ignored") for n in notes)
    assert said_quality == (not TAKES_QUALITY[ext]), notes
    assert said_level == (not TAKES_LEVEL[ext]), notes


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_no_note_without_the_options(src: Path, tmp_path: Path, ext: str) -> None:
    notes = notes_of("blur", src, "-o", tmp_path / f"o.{ext}")
    assert not any("ignored" in n for n in notes), notes


def test_the_option_that_applies_still_acts(src: Path, tmp_path: Path) -> None:
    notes_of("blur", src, "--quality", 5, "-o", tmp_path / "low.jpg")
    notes_of("blur", src, "--quality", 95, "-o", tmp_path / "high.jpg")
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size
    notes_of("blur", src, "--compress-level", 0, "-o", tmp_path / "l0.png")
    notes_of("blur", src, "--compress-level", 9, "-o", tmp_path / "l9.png")
    assert (tmp_path / "l9.png").stat().st_size < (tmp_path / "l0.png").stat().st_size
    a, b = (np.asarray(Image.open(tmp_path / f)) for f in ("l0.png", "l9.png"))
    np.testing.assert_array_equal(a, b)


def test_an_animation_says_it_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    frames = [Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    notes = notes_of("blur", tmp_path / "anim.gif", "--quality", 50, "-o", tmp_path / "out.gif")
    assert any(n.startswith("--quality ignored: GIF") for n in notes), notes


@pytest.mark.parametrize(("alias", "ext", "pil"), [("jpg", ".jpg", "JPEG"), ("JPG", ".jpg", "JPEG"),
                                                   ("tif", ".tif", "TIFF")])
def test_format_takes_the_extensions_spelling(tmp_path, alias: str, ext: str, pil: str) -> None:
    """--format jpg was refused ('not one of ... jpeg ...') though -o x.jpg is the usual spelling."""
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    r = CliRunner().invoke(cli, ["filter", str(tmp_path / "a.png"), "-k", "box3", "--format", alias,
                                 "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "o" / f"a.box3{ext}") as im:
        assert im.format == pil


def test_a_dry_run_says_16_bits_will_be_written_as_8(tmp_path: Path) -> None:
    """Whether 16 bits become 8 (JPEG, WebP, BMP...) was decided as the pixels were quantised, after the
    plan, which sized memory for 16 bits; the plan decides it now, and --dry-run says it as the run does."""
    src = tmp_path / "deep.png"
    from convcli.io.png import encode_png

    deep = np.random.default_rng(1).integers(0, 65536, (12, 9, 3), dtype=np.uint16)
    src.write_bytes(encode_png(deep, None))
    notes = []
    for extra in (["--dry-run"], []):
        r = CliRunner().invoke(cli, ["blur", str(src), "-o", str(tmp_path / "o.jpg"), "--json", *extra])
        assert r.exit_code == 0, r.stderr
        notes.append([n for n in json.loads(r.stdout)["notes"] if n.startswith("reduced to 8-bit")])
    assert notes[0] == notes[1] and len(notes[0]) == 1, notes
