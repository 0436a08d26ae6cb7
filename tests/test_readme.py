"""The README runs verbatim: every command of its ```bash blocks, in order, from a copy of the repo root.

Each block runs in one shell (so a later line may use an earlier line's output), in a
temporary copy of ``sample_images/`` laid out as in a fresh clone; every line must exit 0.
Install lines (``pip install``) and the test command itself are skipped: this test runs
inside them. Console transcripts (```console blocks) are checked in tests of their own
topics, since their output carries timings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SKIP = re.compile(
    r"^\s*(pip install|pytest|python3? -m pytest|apt-get|ruff|lint-imports|git |cd |python benchmarks)")


def bash_blocks() -> list[tuple[int, str]]:
    """(line number, block text) of every ```bash block."""
    blocks = []
    for m in re.finditer(r"^```bash\n(.*?)^```", README, flags=re.S | re.M):
        blocks.append((README[: m.start()].count("\n") + 1, m.group(1)))
    return blocks


def commands(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or SKIP.match(line):
            continue
        out.append(line)
    return out


BLOCKS = [(n, b) for n, b in bash_blocks() if commands(b)]


def test_the_readme_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 10


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "sample_images", work / "sample_images")
    return work


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_block_runs(line: int, block: str, workdir: Path) -> None:
    exe_dir = Path(sys.executable).parent
    if not (exe_dir / "convcli").exists():
        pytest.skip("the convcli command is not installed beside this Python")
    env = {**os.environ, "PATH": f"{exe_dir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    for cmd in commands(block):
        res = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, f"README.md:{line}: {cmd}\nexit {res.returncode}\n{res.stderr[-2000:]}"
        assert "Traceback" not in res.stderr, f"README.md:{line}: {cmd}\n{res.stderr[-2000:]}"
