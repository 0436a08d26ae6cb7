"""The convcli process and its children: kill -9, signals during pool start-up, closed pipes, warnings.

Every test here runs convcli as a real process (``python -m convcli``) and bounds every
wait. Process trees are read from /proc (Linux only).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import cli
from convcli.run.scale import check_dask_address

TIMEOUT = 60
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc/self/stat").exists(),
                                reason="reads the process tree from /proc")


def convcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "convcli", *args]


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough work for a few seconds on two cores: 16 images of 400 x 400."""
    d = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(7)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(d / f"img{i:02d}.png",
                                                                                  compress_level=1)
    return d


# --------------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live process whose parent chain leads to ``root``."""
    parent: dict[int, int] = {}
    start: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[0] != "Z":
                parent[int(entry.name)], start[int(entry.name)] = st[1], st[2]
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                found[child] = start[child]
                frontier.append(child)
    return found


def alive(procs: dict[int, int]) -> list[int]:
    """The processes of ``procs`` still running (same pid and start time, not a zombie)."""
    out = []
    for pid, started in procs.items():
        st = _stat(pid)
        if st is not None and st[0] != "Z" and st[2] == started:
            out.append(pid)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


# --------------------------------------------------------------------------- kill -9


@linux_only
def test_kill_9_leaves_no_process_behind(many: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(convcli("blur", str(many), "--out-dir", str(out), "-j", "2", "--size", "21"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: dict[int, int] = {}
    try:
        # Wait for the pool: forkserver, resource tracker and two workers (bounded).
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            children = descendants(proc.pid)
            if len(children) >= 4 and out.exists() and any(out.iterdir()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert len(children) >= 3, [cmdline(p) for p in children]
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + 5
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive(children)
        assert not left, [cmdline(p) for p in left]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in alive(children):  # don't leave them to the next test if this one failed
            os.kill(pid, signal.SIGKILL)
        if proc.stderr is not None:
            proc.stderr.close()


_WATCHER = """
import multiprocessing, sys, time
from convcli.run.lifeline import watch_parent

def child():
    watch_parent()  # the portable mechanism alone: no prctl here
    time.sleep(60)

if __name__ == "__main__":
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    p = ctx.Process(target=child)
    p.start()
    print(p.pid, flush=True)
    time.sleep(60)
"""


@linux_only
def test_watch_parent_alone_ends_the_child(tmp_path: Path) -> None:
    script = tmp_path / "watcher.py"
    script.write_text(_WATCHER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    children: dict[int, int] = {}
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        children = descendants(proc.pid)
        assert child in children
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + 5
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(children), [cmdline(p) for p in alive(children)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        for pid in alive(children):
            os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()


# --------------------------------------------------------------------------- signals during start-up


def wait_until_convcli_runs(pid: int) -> None:
    """Until convcli's first line has run (its SIGTERM handler is set: python -m convcli).

    Before that, Python itself is starting (site, the editable-install finder): a signal
    there is Python's business, not convcli's.
    """
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.002)
    pytest.fail("convcli never started")


@linux_only
@pytest.mark.parametrize(("sig", "status", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                     (signal.SIGTERM, 143, "terminated"),
                                                     (signal.SIGHUP, 129, "hung up")])
@pytest.mark.parametrize("group", [False, True], ids=["process", "group"])
def test_signal_during_pool_start_up(many: Path, tmp_path: Path, sig: int, status: int, word: str,
                                     group: bool) -> None:
    """At any moment of the start-up, a signal ends the run with one line (the whole group: Ctrl-C)."""
    for i, delay in enumerate((0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)):
        out = tmp_path / f"out{i}"
        # ~1.7 s of work here (a direct 31x31 blur), so the last delay still lands before the end:
        # the run with --size 21 took 0.55 s on a quiet machine and ended before a signal at 0.5 s
        proc = subprocess.Popen(convcli("blur", str(many), "--out-dir", str(out), "-j", "2", "--size", "31",
                                        "--method", "direct"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=group)
        wait_until_convcli_runs(proc.pid)
        time.sleep(delay)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        try:
            _, stderr = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert (delay, proc.returncode, stderr.decode()) == (delay, status, f"convcli: {word}\n")
        if out.exists():
            assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left"


# --------------------------------------------------------------------------- closed pipes


@pytest.fixture(scope="module")
def big_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A noise image whose PNG (several MB) is far larger than a pipe's buffer."""
    path = tmp_path_factory.mktemp("big") / "noise.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (1000, 1200, 3), dtype=np.uint8)).save(path, compress_level=1)
    return path


def read_then_close(args: list[str], n: int) -> tuple[int, bytes, str]:
    """Run convcli, read ``n`` bytes of its stdout and close the pipe (like ``| head -c n``)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        head = proc.stdout.read(n)
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace")
        return proc.wait(timeout=TIMEOUT), head, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        proc.stderr.close()


def test_image_to_a_reader_that_leaves_mid_image(big_png: Path) -> None:
    status, head, stderr = read_then_close(convcli("blur", str(big_png), "-o", "-", "-q"), 100)
    assert head.startswith(b"\x89PNG")
    assert status == 1
    assert stderr == ""


def test_image_to_a_reader_that_reads_it_all(big_png: Path) -> None:
    proc = subprocess.run(convcli("blur", str(big_png), "-o", "-", "-q"), capture_output=True,
                          timeout=TIMEOUT, check=False)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert Image.open(io.BytesIO(proc.stdout)).size == (1200, 1000)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_json_to_a_reader_that_leaves(many: Path, tmp_path: Path, jobs: str) -> None:
    args = convcli("blur", str(many), "--out-dir", str(tmp_path / "out"), "--json", "-j", jobs, "--size", "9")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = json.loads(proc.stdout.readline())
        proc.stdout.close()  # like `| head -1`
        stderr = proc.stderr.read().decode(errors="replace")
        assert first["status"] == "ok"
        assert proc.wait(timeout=TIMEOUT) == 1
        assert stderr == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
        proc.stderr.close()


# --------------------------------------------------------------------------- --dask ADDRESS


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tls://sched.example.org:8786", "sched:8786",
                                     "[::1]:8786", "tcp://[fe80::1]:1", "inproc://10.0.0.1/123/1"])
def test_dask_address_forms_accepted(address: str) -> None:
    check_dask_address(address)


@pytest.mark.parametrize("address", ["", "8786", "tcp://", "tcp://host", "host:0", "host:99999", "ftp://h:1",
                                     "tcp://h:1/x", "h :1", "-rf:1", "inproc://", "tcp://h:1; rm -rf /"])
def test_bad_dask_address_is_a_usage_error_before_dask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       address: str) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # importing Dask would fail: never tried
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src)
    r = CliRunner().invoke(cli, ["blur", str(src), "--out-dir", str(tmp_path / "out"), "--dask", address],
                           catch_exceptions=False)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr == (f"convcli: error: --dask {address!r} is not a scheduler address: "
                        "use tcp://HOST:PORT, "
                        "tls://HOST:PORT, HOST:PORT or inproc://NAME\n")
    assert not (tmp_path / "out").exists()


def test_dask_help_says_the_scheduler_must_be_trusted() -> None:
    r = CliRunner().invoke(cli, ["blur", "--help"], catch_exceptions=False)
    assert r.exit_code == 0
    assert "use only a scheduler and workers you trust" in " ".join(r.stdout.split())


def test_stdin_jpeg_to_stdout_becomes_png() -> None:
    data = (Path(__file__).parent.parent / "sample_images" / "rocket.jpg").read_bytes()
    r = CliRunner().invoke(cli, ["blur", "-", "-q"], input=data, catch_exceptions=False)
    assert r.exit_code == 0
    assert r.stderr == ""
    assert Image.open(io.BytesIO(r.stdout_bytes)).format == "PNG"


def test_stray_warning_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warning outside decoding and jobs (none is known): one line, no library path."""
    import warnings

    from convcli.cli.commands import info

    real = info.pattern_row

    def warn(*args: object, **kwargs: object) -> str:
        warnings.warn("something odd\n  happened", RuntimeWarning, stacklevel=1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(info, "pattern_row", warn)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        r = CliRunner().invoke(cli, ["padding", "zeros"], catch_exceptions=False)
    assert r.exit_code == 0
    assert r.stderr == "convcli: warning: something odd happened\n"


def test_a_signal_landing_in_a_callback_python_ignores_is_delivered_again() -> None:
    """A Ctrl-C whose exception lands in a weakref callback (as during an import's module lock)
    would be printed as "Exception ignored" and lost: it is delivered again, and the run stops."""
    code = textwrap.dedent('''
        import gc, os, signal, time, weakref
        from convcli.cli.errors import Stopped, signals_stop
        class A: pass
        try:
            with signals_stop():
                a = A()
                def cb(ref):
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(1000): pass  # the handler runs here, inside the callback
                r = weakref.ref(a, cb)
                del a
                gc.collect()
                time.sleep(2)
                print("not stopped")
        except Stopped as e:
            print("stopped", int(e.signum))
    ''')
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert res.stdout == f"stopped {int(signal.SIGINT)}\n"
    assert res.stderr == ""


def test_a_second_ctrl_c_neither_cuts_the_clean_up_short_nor_prints_a_traceback() -> None:
    """Ctrl-C pressed twice: 0.3 printed a KeyboardInterrupt traceback in about half the tries (the
    second landed in the clean-up or as the process left). The second is ignored; a third leaves."""
    code = textwrap.dedent('''
        import os, signal
        from convcli.cli.errors import Stopped, signals_stop
        def spin():
            for _ in range(100000): pass
        try:
            with signals_stop():
                try:
                    os.kill(os.getpid(), signal.SIGINT); spin()
                finally:
                    os.kill(os.getpid(), signal.SIGINT); spin()  # during the clean-up
                    print("clean-up done")
        except Stopped:
            print("stopped")
        os.kill(os.getpid(), signal.SIGINT); spin()  # as the process leaves
        print("left")
    ''')
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert (res.stdout, res.stderr, res.returncode) == ("clean-up done\nstopped\nleft\n", "", 0)
    three = code.replace("print(\"clean-up done\")", "os.kill(os.getpid(), signal.SIGINT); spin()")
    res = subprocess.run([sys.executable, "-c", three], capture_output=True, text=True, timeout=TIMEOUT)
    assert (res.stdout, res.stderr, res.returncode) == ("", "convcli: interrupted\n", 130)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_behind_stdout_is_one_line_and_exit_1() -> None:
    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    with open("/dev/full", "wb") as full:
        r = subprocess.run(convcli("blur", str(cat), "-o", "-"), stdout=full, stderr=subprocess.PIPE,
                           timeout=120, check=False)
    assert r.returncode == 1
    want = "convcli: error: cannot write the image to standard output: no space left on device\n"
    assert r.stderr.decode() == want


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("args", [("blur", "{cat}", "--out-dir", "{out}", "--json"),
                                  ("blur", "{cat}", "--out-dir", "{out}"),
                                  ("kernels",), ("shape", "224x224", "--size", "3", "--json")])
def test_a_full_disk_behind_a_report_on_stdout_is_one_line_and_exit_1(tmp_path: Path, args: tuple[str, ...]
                                                                      ) -> None:
    """0.2 printed a traceback when stdout could not take the JSON lines, the report or a listing."""
    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    argv = [a.format(cat=cat, out=tmp_path / "o") for a in args]
    with open("/dev/full", "wb") as full:
        r = subprocess.run(convcli(*argv), stdout=full, stderr=subprocess.PIPE, timeout=120, check=False)
    assert r.returncode == 1
    assert r.stderr.decode() == "convcli: error: cannot write to standard output: no space left on device\n"


@pytest.mark.parametrize(("args", "status", "err"), [
    (("-q",), 0, ""),  # nothing was due on stdout: the image is written, as asked
    (("--json",), 1, "convcli: error: cannot write to standard output: it is closed\n"),
    ((), 1, "convcli: error: cannot write to standard output: it is closed\n"),
])
def test_a_closed_stdout(tmp_path: Path, args: tuple[str, ...], status: int, err: str) -> None:
    """``convcli ... >&-``: Python starts with sys.stdout None; 0.2 died on it with AttributeError."""
    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    r = subprocess.run(convcli("blur", str(cat), "--out-dir", str(tmp_path / "o"), *args),
                       stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, check=False,
                       preexec_fn=lambda: os.close(1))  # closes the child's own fd 1
    assert (r.returncode, r.stderr.decode()) == (status, err)
    assert (tmp_path / "o" / "cat224.blur.png").is_file()


@pytest.mark.parametrize("args", [("kernels",), ("kernels", "sharpen", "--json"), ("padding",),
                                  ("--help",), ("filter", "--help"), ("shape", "224x224", "--size", "3"),
                                  ("filter", "{cat}", "-k", "sharpen", "-o", "-")])
def test_data_for_a_closed_stdout_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    """0.3 exited 0 with the listing dropped (click writes nothing to a None stdout), or died with
    AttributeError on ``sys.stdout.isatty()`` (padding, ``-o -``)."""
    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    r = subprocess.run(convcli(*(a.format(cat=cat) for a in args)), stdin=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120, check=False, preexec_fn=lambda: os.close(1))
    assert r.returncode == 1
    assert r.stderr.decode() in ("convcli: error: cannot write to standard output: it is closed\n",
                                 "convcli: error: cannot write the image to standard output: it is closed\n")


def test_a_closed_stdin_is_a_failed_input(tmp_path: Path) -> None:
    """``convcli filter - ... <&-``: 0.3 died with AttributeError on ``sys.stdin.buffer``."""
    r = subprocess.run(convcli("filter", "-", "-k", "sharpen", "-o", str(tmp_path / "o.png")),
                       capture_output=True, timeout=120, check=False, preexec_fn=lambda: os.close(0))
    assert r.returncode == 1
    assert r.stderr.decode() == "convcli: error: -: standard input is closed\n"
    assert not (tmp_path / "o.png").exists()


def test_a_closed_stderr_loses_no_input_of_a_batch(tmp_path: Path) -> None:
    """``2>&-``: 0.3 died on the first failed input's error line (sys.stderr None), and the rest of
    the batch was never done."""
    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    r = subprocess.run(convcli("blur", str(tmp_path / "missing.png"), str(cat),
                               "--out-dir", str(tmp_path / "o"), "--json"),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, timeout=120, check=False,
                       preexec_fn=lambda: os.close(2))
    assert r.returncode == 1
    records = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [rec["status"] for rec in records] == ["error", "ok"]
    assert (tmp_path / "o" / "cat224.blur.png").is_file()


def test_no_output_file_takes_the_number_of_a_closed_stdout(tmp_path: Path) -> None:
    """With fd 1 closed, the first file opened would be fd 1; convcli holds it on /dev/null first,
    so what the child writes to fd 1 cannot land in an image."""
    code = ("import os, sys\n"
            "from convcli.cli.errors import stand_in_for_closed_streams\n"
            "os.close(1)\n"
            "stand_in_for_closed_streams()\n"
            f"fd = os.open({str(tmp_path / 'f')!r}, os.O_WRONLY | os.O_CREAT)\n"
            "os.write(2, str(fd).encode())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    assert int(r.stderr) > 2


@pytest.mark.parametrize(("signum", "status", "word"),
                         [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted"),
                          (signal.SIGHUP, 129, "hung up")])
def test_a_signal_wrapped_by_python_is_still_the_stop(signum: int, status: int, word: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A signal that lands in a class body during a lazy import comes out as RuntimeError from Stopped."""
    from convcli.cli.errors import Stopped, run_main

    def call() -> int:
        try:
            raise Stopped(signum)
        except Stopped as e:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance 'pointwise'") from e

    assert run_main(call, debug=False, prog_name="convcli") == status
    assert capsys.readouterr().err == f"convcli: {word}\n"

    def crash() -> int:
        raise RuntimeError("a bug stays a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_main(crash, debug=False, prog_name="convcli")
