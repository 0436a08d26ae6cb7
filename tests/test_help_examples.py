"""Every example in every command's --help runs as written (README examples: test_readme.py)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli.app import COMMANDS, cli

ROOT = Path(__file__).parent.parent


def _examples() -> list[tuple[str, str]]:
    found = []
    for name in COMMANDS:
        text = CliRunner().invoke(cli, [name, "--help"]).stdout
        for line in text.splitlines():
            if line.strip().startswith("convcli "):
                command = re.split(r"\s{2,}", line.strip())[0]  # what follows two spaces is a comment
                found.append((name, command))
    return found


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with what the examples name: cat.png, photos/, sample_images/, cat.sharpen.npy."""
    d = tmp_path_factory.mktemp("examples")
    shutil.copy(ROOT / "sample_images" / "cat224.png", d / "cat.png")
    (d / "photos").mkdir()
    for n, shade in enumerate((40, 200)):
        Image.new("RGB", (30, 20), (shade, 90, 255 - shade)).save(d / "photos" / f"p{n}.png")
    (d / "sample_images").mkdir()
    for f in ("cat224.png", "chelsea.png"):
        shutil.copy(ROOT / "sample_images" / f, d / "sample_images" / f)
    cat = np.asarray(Image.open(d / "cat.png").convert("RGB"), dtype=np.float32)
    np.save(d / "cat.sharpen.npy", cat)  # a target for learn (the identity kernel is its answer)
    return d


def test_every_command_has_examples() -> None:
    assert {name for name, _ in EXAMPLES} >= {"filter", "blur", "edges", "downsample", "chain", "animate"}


@pytest.mark.parametrize(("name", "command"), EXAMPLES, ids=[c for _, c in EXAMPLES])
def test_a_help_example_runs(name: str, command: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0.3's ``animate --help`` showed ``-o anim/unroll.gif --frame -1``, which --frame refuses."""
    monkeypatch.chdir(workdir)
    argv = shlex.split(command)[1:]
    learned = workdir / "learned" / "sharpen.txt"
    if "@learned/sharpen.txt" in command and not learned.exists():  # run alone (-k), not after learn's
        CliRunner().invoke(cli, ["learn", "cat.png", "cat.sharpen.npy", "--size", "3", "-o", str(learned)])
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, f"{command}\n{result.stderr}"
