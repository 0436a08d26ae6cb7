"""The machine, the libraries and the external tools the suite can compare against."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def where_python() -> str:
    """Where the interpreter lives, without a path of this machine."""
    return "a virtual environment" if sys.prefix != sys.base_prefix else "the system's"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def optional_module(name: str) -> tuple[object | None, str]:
    """Import ``name`` if installed: (module, '') or (None, one-line reason)."""
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip this tool"
        return None, f"{name} not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"


def dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def blas_info() -> str:
    """numpy's BLAS: the running kernel via threadpoolctl when present, else numpy's build config."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _blas_from_numpy_config()
    import numpy  # noqa: F401 - loads the BLAS so threadpoolctl can see it

    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return _blas_from_numpy_config()
    return "; ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
        f"{p.get('num_threads')} threads, "
        f"{Path(p.get('filepath', '')).name})"
        for p in pools
    )


def _blas_from_numpy_config() -> str:
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} (numpy build config)"
    except Exception:  # noqa: BLE001 - older numpy: no dict mode
        return "unknown (install threadpoolctl to see the running BLAS)"


def engine_accepts(param: str) -> bool:
    from convcli.engine import correlate2d

    return param in inspect.signature(correlate2d).parameters


def find_exe(name: str) -> str | None:
    """``name`` beside the running interpreter (same environment, no shims) or on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def _is_binary(path: str) -> bool:
    try:
        with open(os.path.realpath(path), "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _all_on_path(name: str) -> list[str]:
    seen: list[str] = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d, name)
        real = os.path.realpath(p)
        if os.path.isfile(p) and os.access(p, os.X_OK) and real not in map(os.path.realpath, seen):
            seen.append(p)
    return seen


def find_imagemagick() -> tuple[list[str] | None, str]:
    """The real ImageMagick (``magick`` or ``convert``, an executable, not a stand-in script)."""
    for name, prefix in (("magick", []), ("convert", [])):
        for path in _all_on_path(name):
            if not _is_binary(path):
                continue
            v = tool_version([path, "-version"])
            if "ImageMagick" in v:
                return [path, *prefix], v
    return None, "ImageMagick not found (apt-get install imagemagick); a stand-in `convert` script is ignored"


def tool_version(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    text = (r.stdout or r.stderr).strip().splitlines()
    return text[0].strip() if text else ""


def machine_lines(quick: bool, blas_env_removed: dict[str, str]) -> list[str]:
    """The machine section, as Markdown bullet lines."""
    import numpy as np

    lines = [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; RAM {ram_gib()}; "
        f"load average at start {load_average()}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()} ({where_python()})",
        f"- numpy {np.__version__}; BLAS: {blas_info()}",
    ]
    if blas_env_removed:
        env = ", ".join(f"{k}={v}" for k, v in blas_env_removed.items())
        lines.append(f"- Removed for this run (they slow a current numpy's OpenBLAS): {env}")
    lines.append(f"- Mode: {'--quick' if quick else 'full'}")
    return lines


def library_lines(tools: dict[str, str]) -> list[str]:
    """Versions of every library and tool, and why a missing one is skipped."""
    rows = []
    for dist in ("convcli", "numpy", "scipy", "opencv-python-headless", "pillow", "torch", "threadpoolctl"):
        rows.append(f"- {dist}: {dist_version(dist)}")
    rows += [f"- {name}: {desc}" for name, desc in tools.items()]
    return rows
