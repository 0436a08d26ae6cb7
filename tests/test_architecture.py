"""The layering is a contract CI checks: import-linter's contracts in pyproject.toml, run as a test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports is not installed: pip install '.[test]' brings it")
    res = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_a_broken_layer_is_caught(tmp_path: Path) -> None:
    """The contract can fail: a copy of the package whose core imports the CLI is refused."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    pkg = tmp_path / "convcli"
    shutil.copytree(ROOT / "convcli", pkg)
    kernels = pkg / "core" / "kernels.py"
    kernels.write_text(kernels.read_text() + "\nimport convcli.cli.app  # noqa: E402,F401\n")
    res = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, check=False,
                         env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(exe).parent)})
    assert res.returncode != 0
    assert "BROKEN" in res.stdout and "convcli.core.kernels" in res.stdout


#: Calls that open, stat or read files: none belongs in convcli.core (README, "As a library").
_FILE_CALLS = {"open", "stat", "lstat", "fstat", "scandir", "listdir", "read_bytes", "read_text", "load",
               "fromfile", "loadtxt", "genfromtxt", "CDLL"}


def _file_calls(source: str) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in _FILE_CALLS:
                found.append(f"line {node.lineno}: {name}()")
    return found


def test_the_core_opens_no_file() -> None:
    """convcli.core is NumPy only, no I/O: import-linter checks its imports, this its calls (kernel
    files were read by core/userfiles.py, which import-linter could not see: os is the standard
    library). The check itself fails on a call that opens a file."""
    assert _file_calls("import os\nwith open('x') as f:\n    os.stat('x')\n") == ["line 2: open()",
                                                                                 "line 3: stat()"]
    core = (ROOT / "convcli" / "core").glob("*.py")
    found = {str(p.relative_to(ROOT)): _file_calls(p.read_text()) for p in core}
    assert {k: v for k, v in found.items() if v} == {}
