"""The planned run: every file a command writes is decided from the headers and checked as one set first.

Each class of data loss found in 0.1 has a test here: a planned file over an input (main
output, montage, channel map), two planned files on one file (paths, symlinks, hard links),
names escaping --out-dir, unbounded --name templates, names over the file system's limit,
and existing targets that are not regular files. The property in every refusal: exit 2,
one line naming both paths, and the folder tree byte-identical to before.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from convcli.cli import cli
from convcli.errors import ExitStatus, OutputError
from convcli.io.files import remove_temporaries, write_atomic
from convcli.pipeline import Pipeline
from convcli.run.inputs import InputItem
from convcli.run.job import Job
from convcli.run.plan import Refusal, check_files, check_template, main_outputs, render_name
from convcli.run.spec import OutputSpec, RunSpec


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def save(path: Path, h: int = 12, w: int = 16, channels: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: file bytes, or the kind of a non-regular entry."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            mode = os.lstat(p).st_mode
            rel = str(p.relative_to(root))
            if stat.S_ISREG(mode):
                out[rel] = p.read_bytes()
            else:
                out[rel] = stat.filemode(mode)[0]
    return out


def refused(result: Result, *names: str) -> str:
    """A refusal: exit 2, nothing on stdout, one error line naming every given name."""
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convcli: error: "), result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- planned files over inputs


def test_montage_over_the_input_is_refused(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    before = snapshot(tmp_path)
    line = refused(run("filter", src, "-k", "sharpen", "--out-dir", tmp_path / "o", "--montage", src),
                   str(src), "montage", "overwrite")
    assert "input" in line
    assert snapshot(tmp_path) == before  # not even --out-dir was created


def test_montage_and_output_on_one_file_are_refused(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    before = snapshot(tmp_path)
    x = tmp_path / "x.png"
    refused(run("filter", src, "-k", "sharpen", "-o", x, "--montage", x), str(x), "montage", "collides")
    assert snapshot(tmp_path) == before


def test_channel_map_over_the_input_is_refused(tmp_path: Path) -> None:
    src = save(tmp_path / "fm.c0.png")
    before = snapshot(tmp_path)
    refused(run("chain", "-i", src, "-o", tmp_path / "fm.png", "conv", "--out-channels", "4"),
            str(src), "channel map", "overwrite")
    assert snapshot(tmp_path) == before


def test_channel_map_over_a_second_input_of_the_batch_is_refused(tmp_path: Path) -> None:
    a = save(tmp_path / "x.png")
    b = save(tmp_path / "o" / "x.chain.c1.png", seed=1)
    before = snapshot(tmp_path)
    refused(run("chain", "-i", a, "-i", b, "--out-dir", tmp_path / "o", "conv", "--out-channels", "2"),
            str(b), "overwrite")
    assert snapshot(tmp_path) == before


def test_output_through_a_symlink_or_hard_link_to_the_input_is_refused(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    (tmp_path / "sym.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    before = snapshot(tmp_path)
    for target in ("sym.png", "hard.png"):
        refused(run("blur", src, "-o", tmp_path / target), "overwrite", str(src))
    refused(run("blur", src, "-o", tmp_path / "sub" / ".." / "in.png"), "overwrite")
    assert snapshot(tmp_path) == before


def test_two_inputs_sharing_a_montage_are_refused(tmp_path: Path) -> None:
    a, b = save(tmp_path / "a" / "cat.png"), save(tmp_path / "b" / "cat.png", seed=1)
    before = snapshot(tmp_path)
    refused(run("blur", a, b, "--out-dir", tmp_path / "o", "--name", "{parent}_{stem}{ext}",
                "--montage", tmp_path / "m" / "{stem}.png"), "montage", "collides")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- --name and --out-dir


@pytest.mark.parametrize("template", [
    "../{stem}.x{ext}", "a/../../{stem}{ext}", "/tmp/{stem}{ext}", "~/{stem}{ext}",
    "{stem:>999999999}.png", "{stem!r}.png", "{stem.__class__}.png", "{stem[0]}.png", "{0}.png", "{}.png",
    "{stem", "{nope}.png",
])
def test_name_templates_that_could_escape_or_explode_are_refused(tmp_path: Path, template: str) -> None:
    src = save(tmp_path / "in.png")
    before = snapshot(tmp_path)
    refused(run("blur", src, "--out-dir", tmp_path / "o", "--name", template), "--name")
    assert snapshot(tmp_path) == before


def test_parent_is_the_real_folder_name(tmp_path: Path) -> None:
    src = save(tmp_path / "photos" / "cat.png")
    (tmp_path / "photos" / "sub").mkdir()
    odd = tmp_path / "photos" / "sub" / ".." / "cat.png"
    r = run("blur", odd, "--out-dir", tmp_path / "o", "--name", "{parent}_{stem}{ext}", "-q")
    assert r.exit_code == 0, r.stderr
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["photos_cat.png"]
    assert src.exists()


def test_subfolders_in_name_stay_inside_out_dir_and_are_created(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    r = run("blur", src, "--out-dir", tmp_path / "o", "--name", "{op}/{stem}/{stem}{ext}", "-q")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "o" / "blur" / "in" / "in.png").is_file()


def test_a_symlinked_folder_in_out_dir_cannot_lead_outside(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    (tmp_path / "o").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "o" / "link").symlink_to(tmp_path / "elsewhere")
    before = snapshot(tmp_path)
    refused(run("blur", src, "--out-dir", tmp_path / "o", "--name", "link/{stem}{ext}"), "outside --out-dir")
    assert snapshot(tmp_path) == before


def test_a_name_over_the_file_system_limit_is_a_usage_error_up_front(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    before = snapshot(tmp_path)
    line = refused(run("blur", src, "--out-dir", tmp_path / "o", "--name", "x" * 300 + "{ext}"), "limit")
    assert len(line) < 400  # the name is shortened in the message
    assert snapshot(tmp_path) == before


def test_long_names_within_the_limit_are_written(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    name = "y" * 250 + ".png"  # 254 bytes: its temporary file needs a shortened name
    r = run("blur", src, "--out-dir", tmp_path / "o", "--name", name, "-q")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "o" / name).is_file()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [name]


NAME_ALPHABET = st.sampled_from(["{stem}", "{ext}", "{op}", "{parent}", "{name}", "..", "/", ".", "a", "_",
                                 "{", "}", ":", "!r", "[0]", "~", "{stem:9}", "{x}", " "])


@given(st.lists(NAME_ALPHABET, min_size=1, max_size=8).map("".join))
def test_any_template_is_refused_or_stays_inside_out_dir(template: str) -> None:
    out_dir = "/srv/out"
    item = InputItem("/data/in/cat.png", Path("/data/in/cat.png"))
    spec = RunSpec(images=(item.name,), output=OutputSpec(out_dir=out_dir, name_template=template))
    try:
        check_template(template)
        [path] = main_outputs(spec, "blur", [item])
    except ValueError:  # UsageError: refused, with a message
        return
    assert path is not None
    resolved = os.path.normpath(path)
    assert resolved.startswith(out_dir + os.sep), (template, path)
    assert len(path) < 4096


def test_render_name_fields() -> None:
    item = InputItem("a/b/cat.jpg", Path("a/b/cat.jpg"))
    assert render_name("{parent}-{stem}.{op}{ext}|{name}", item, "blur", ".png") == "b-cat.blur.png|cat.jpg"
    assert render_name("{stem}{ext}", InputItem("-", None), "x", ".png") == "stdin.png"


# --------------------------------------------------------------------------- existing targets


def test_a_character_device_is_written_in_place_never_replaced(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of a character device needs root")
    src = save(tmp_path / "in.png")
    node = tmp_path / "null.png"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a copy of /dev/null
    r = run("blur", src, "-o", node, "-q")
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode)  # still the device, not a regular file renamed over it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "null.png"]  # no temporary left


def test_dev_null_as_output_is_a_sink(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    r = run("blur", src, "-o", os.devnull, "--format", "png", "-q")
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket"])
def test_other_non_regular_targets_are_refused(tmp_path: Path, kind: str) -> None:
    src = save(tmp_path / "in.png")
    target = tmp_path / "t.png"
    sock = None
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
    try:
        before = snapshot(tmp_path)
        refused(run("blur", src, "-o", target), str(target), "refusing to replace")
        assert snapshot(tmp_path) == before
    finally:
        if sock is not None:
            sock.close()


def test_write_atomic_refuses_a_fifo_that_appeared_after_the_plan(tmp_path: Path) -> None:
    target = tmp_path / "late.png"
    os.mkfifo(target)
    with pytest.raises(OutputError, match="not a regular file"):
        write_atomic(target, b"x")
    assert stat.S_ISFIFO(os.lstat(target).st_mode)


def test_an_output_through_a_symlink_writes_the_file_it_names_and_keeps_the_link(tmp_path: Path) -> None:
    """0.2 renamed over the link itself: the file it named stayed stale, and as root
    ``-o /dev/stdout > f.png`` replaced /dev/stdout with a regular file (f.png got nothing)."""
    src = save(tmp_path / "in.png")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "out.png").write_bytes(b"stale")
    link = tmp_path / "out.png"
    link.symlink_to(tmp_path / "real" / "out.png")
    r = run("blur", src, "-o", link, "-q")
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "real" / "out.png")
    with Image.open(tmp_path / "real" / "out.png") as im:
        assert im.size == (16, 12)
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["out.png"]  # no temporary left


def blur_through_stdout_link(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """What ``-o /dev/stdout > captured.png`` does, with a link of our own (not the machine's
    /dev/stdout): (the process, the link); stdout went to ``captured.png``."""
    src = save(tmp_path / "in.png")
    link = tmp_path / "stdout.png"
    link.symlink_to("/proc/self/fd/1")
    if not os.path.exists("/proc/self/fd/1"):
        pytest.skip("no /proc/self/fd")
    with open(tmp_path / "captured.png", "wb") as f:
        proc = subprocess.run([sys.executable, "-m", "convcli", "blur", str(src), "-o", str(link), *flags],
                              stdout=f, stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "captured.png") as im:
        assert im.size == (16, 12)
    return proc, link


def test_an_output_through_a_proc_fd_link_lands_in_the_redirected_file(tmp_path: Path) -> None:
    _, link = blur_through_stdout_link(tmp_path, "-q")
    assert link.is_symlink()


@pytest.mark.parametrize("report", [["--json"], []], ids=["json", "plain"])
def test_the_report_of_an_image_written_to_the_file_on_stdout_goes_to_stderr(tmp_path: Path,
                                                                              report: list[str]) -> None:
    """``-o /dev/stdout --json > f.png`` wrote the JSON record to f.png, then renamed the image over it:
    exit 0 and no record anywhere. An image written to the file on stdout is ``-o -``: its report goes
    to stderr."""
    proc, link = blur_through_stdout_link(tmp_path, "--format", "png", *report)
    src = tmp_path / "in.png"
    if report:
        assert json.loads(proc.stderr)["output"] == str(link)
    else:
        assert proc.stderr.startswith(f"{src} -> {link}  [1, 3, 12, 16]")


def test_the_file_on_stdin_is_an_input_too(tmp_path: Path) -> None:
    """0.2 let ``convcli filter - -o in.png < in.png`` replace the image it was reading."""
    src = save(tmp_path / "in.png")
    before = snapshot(tmp_path)
    for args in (["filter", "-", "-k", "sharpen", "-o", str(src)],
                 ["blur", "-", "-o", str(tmp_path / "x.png"), "--montage", str(src)]):
        with open(src, "rb") as stdin:
            proc = subprocess.run([sys.executable, "-m", "convcli", *args], stdin=stdin, capture_output=True,
                                  text=True, check=False, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().endswith("would overwrite the input - (stdin)"), proc.stderr
    assert snapshot(tmp_path) == before
    with open(src, "rb") as stdin:  # another file is fine
        argv = [sys.executable, "-m", "convcli", "blur", "-", "-o", str(tmp_path / "y.png"), "-q"]
        proc = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_symlink_to_nothing_is_refused_before_any_work(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "missing" / "x.png")
    before = snapshot(tmp_path)
    refused(run("blur", src, "-o", tmp_path / "dangling.png"), "symbolic link that leads to no file")
    (tmp_path / "loop1.png").symlink_to(tmp_path / "loop2.png")  # a loop was called 'a missing file'
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop1.png")
    refused(run("blur", src, "-o", tmp_path / "loop1.png"),
            "leads to no file (its target is missing, or links loop)")
    before = snapshot(tmp_path)
    refused(run("blur", src, "--montage", tmp_path / "dangling.png", "-o", tmp_path / "o.png"),
            "montage", "symbolic link")
    assert snapshot(tmp_path) == before
    with pytest.raises(OutputError, match="leads to no file"):
        write_atomic(tmp_path / "dangling.png", b"x")
    assert (tmp_path / "dangling.png").is_symlink()


def test_a_fifo_output_names_the_stdout_spelling(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    os.mkfifo(tmp_path / "pipe.png")
    refused(run("blur", src, "-o", tmp_path / "pipe.png"), "FIFO", "-o - writes to stdout")


# --------------------------------------------------------------------------- folders, dry runs, temporaries


def test_montage_and_output_folders_are_created(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    r = run("blur", src, "-o", tmp_path / "a" / "b" / "x.png", "--montage", tmp_path / "m" / "{stem}.png",
            "-q")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "a" / "b" / "x.png").is_file() and (tmp_path / "m" / "in.png").is_file()


def test_dry_run_checks_the_plan_and_creates_nothing(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    before = snapshot(tmp_path)
    refused(run("blur", src, "--dry-run", "-o", src), "overwrite")
    r = run("blur", src, "--dry-run", "--out-dir", tmp_path / "o", "--montage", tmp_path / "m" / "x.png")
    assert r.exit_code == 0
    assert snapshot(tmp_path) == before


def test_cleanup_removes_only_this_runs_temporaries(tmp_path: Path) -> None:
    mine = tmp_path / ".x.png.tmp-aaaa1111-q1w2e3r4"
    other = tmp_path / ".x.png.tmp-bbbb2222-z9x8c7v6"
    unrelated = tmp_path / ".x.png.tmp-notes"
    for p in (mine, other, unrelated):
        p.write_bytes(b"partial")
    remove_temporaries([str(tmp_path / "x.png")], "aaaa1111")
    assert not mine.exists() and other.exists() and unrelated.exists()
    remove_temporaries([str(tmp_path / "x.png")], "")  # no tag: nothing is removed
    assert other.exists()


def test_a_concurrent_runs_temporary_survives_a_run_in_the_same_folder(tmp_path: Path) -> None:
    src = save(tmp_path / "in.png")
    other = tmp_path / "o" / ".in.blur.png.tmp-0123abcd-zzzzzzzz"
    other.parent.mkdir()
    other.write_bytes(b"another run is writing this")
    r = run("blur", src, "--out-dir", tmp_path / "o", "-q")
    assert r.exit_code == 0
    assert other.read_bytes() == b"another run is writing this"


# --------------------------------------------------------------------------- the check as a function


def _job(source: str, output: str, maps: tuple[str, ...] = (), montage: str | None = None) -> Job:
    return Job(source=source, pipeline=Pipeline(()), output=output, channel_maps=maps, montage=montage)


def test_check_files_names_both_paths(tmp_path: Path) -> None:
    a, b = str(save(tmp_path / "a.png")), str(save(tmp_path / "b.png", seed=1))
    inputs = [InputItem(a, Path(a)), InputItem(b, Path(b))]
    out = str(tmp_path / "o.png")
    both = r"b\.png: the output .*o\.png collides with the output .*o\.png of .*a\.png"
    with pytest.raises(ValueError, match=both):
        check_files(inputs, [_job(a, out), _job(b, out)], None)
    with pytest.raises(ValueError, match="channel map"):
        check_files(inputs, [_job(a, str(tmp_path / "g.png"), maps=(b,))], None)
    refused = Refusal(b, "unreadable", ExitStatus.FAILURE)
    check_files(inputs, [_job(a, out), refused], None)  # refused inputs plan nothing


# ------------------------------------------------------------------- commands that plan their own files


def test_teaching_commands_never_write_over_their_inputs(tmp_path: Path) -> None:
    """animate, kernels --response, demo and learn check their files as the image commands do."""
    src = save(tmp_path / "in.png", h=40, w=40)
    before = snapshot(tmp_path)
    refused(run("animate", src, "--crop", "4", "-o", src), "animation", "overwrite")
    refused(run("kernels", f"@{src}", "--response", "-o", src), "response picture", "overwrite")
    fig = tmp_path / "00-overview.png"
    fig.write_bytes(src.read_bytes())
    before = snapshot(tmp_path)
    refused(run("demo", "--image", fig, "--out-dir", tmp_path), "figure", "overwrite")
    kernel = tmp_path / "k.txt"
    kernel.write_text("0 1 0\n1 1 1\n0 1 0\n")
    before = snapshot(tmp_path)
    refused(run("learn", src, src, "--size", "3", "-o", kernel, "--montage", src), "overwrite")
    assert snapshot(tmp_path) == before


def test_teaching_commands_create_their_folders(tmp_path: Path) -> None:
    r = run("animate", "-o", tmp_path / "a" / "b" / "x.gif")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "a" / "b" / "x.gif").is_file()
    (tmp_path / "file").write_text("a file where a folder would go")
    refused(run("animate", "-o", tmp_path / "file" / "x.gif"), "not a directory")


def test_a_collision_with_stdin_hints_at_what_helps(tmp_path: Path) -> None:
    """stdin takes the stem 'stdin': '--name a template with {stem}' could not part it from a file
    called stdin.png; the hint now says what does."""
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "stdin.png")
    data = (tmp_path / "stdin.png").read_bytes()
    r = CliRunner().invoke(cli, ["blur", "-", str(tmp_path / "stdin.png"), "--out-dir", str(tmp_path / "o")],
                           input=data)
    assert r.exit_code == 2
    assert "collides" in r.stderr and "takes the stem 'stdin'" in r.stderr and "{stem}" not in r.stderr
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ a size that cannot fit in memory


def _png_header_only(path: Path, width: int, height: int, colour_type: int = 2, depth: int = 8) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (its data is nowhere near)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99))
                     + chunk(b"IEND", b""))
    return path


def test_an_image_whose_pixels_cannot_fit_is_a_usage_error(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC 5: a size that cannot fit in memory is exit 2, found from the header; 0.3 tried the
    allocation and failed the input with a MemoryError (exit 1). Its decoded pixels and its result are
    held at once: 2000x1500 RGB 8-bit is 9,000,000 bytes each, 18,000,000 together."""
    monkeypatch.setattr("convcli.cli.execute.memory_limit", lambda: 17_999_999)
    big = _png_header_only(tmp_path / "big.png", 2000, 1500)
    small = save(tmp_path / "small.png")
    r = run("blur", big, small, "--out-dir", tmp_path / "out", "--json")
    assert r.exit_code == 2
    records = {rec["input"]: rec for rec in map(__import__("json").loads, r.stdout.splitlines())}
    assert records[str(small)]["status"] == "ok"
    assert records[str(big)]["status"] == "error" and "2000x1500" in records[str(big)]["error"]
    assert f"convcli: error: {big}: 2000x1500 needs at least 17.2 MiB" in r.stderr.splitlines()[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.blur.png"]
    monkeypatch.setattr("convcli.cli.execute.memory_limit", lambda: 18_000_000)
    r = run("blur", big, "--out-dir", tmp_path / "out2", "--dry-run")  # fits (just): planned as usual
    assert r.exit_code == 0, r.stderr
    # a 16-bit result of the same image takes twice the bytes
    monkeypatch.setattr("convcli.cli.execute.memory_limit", lambda: 26_999_999)
    r = run("blur", big, "--out-dir", tmp_path / "out3", "--bit-depth", "16", "--dry-run")
    assert r.exit_code == 2 and "2000x1500" in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="resource limits are POSIX")
def test_the_address_space_limit_is_read(tmp_path: Path) -> None:
    """Under ``ulimit -v`` (3 GiB here), a 30000x30000 RGB header (2.5 GiB decoded + 2.5 GiB result) is
    refused from its header with exit 2, in the real process."""
    big = _png_header_only(tmp_path / "huge.png", 30000, 30000)

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))

    r = subprocess.run([sys.executable, "-m", "convcli", "blur", str(big), "--max-pixels", "10000000000",
                        "-o", str(tmp_path / "o.png")], capture_output=True, text=True, preexec_fn=limit,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"convcli: error: {big}: 30000x30000 needs at least") and "3.0 GiB" in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_an_image_written_to_dev_null_keeps_its_report_on_stdout(tmp_path: Path) -> None:
    """``-o /dev/null > /dev/null`` (a timing run) is the same device on both, but a device is written in
    place, never renamed over: the report stays on stdout, and stderr stays empty."""
    src = save(tmp_path / "in.png")
    argv = [sys.executable, "-m", "convcli", "blur", str(src), "-o", os.devnull, "--format", "png"]
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 0 and proc.stderr == ""


@pytest.mark.parametrize("args", [
    ["blur", "{in}", "-o", "-", "-q"],  # the image itself
    ["blur", "{in}", "-o", "{tmp}/o.png", "--json"],  # the report
    ["blur", "-", "-q"],  # stdin's file, appended to (>>)
    ["explain", "{in}", "--at", "1,1"],
    ["filter", "{in}", "-k", "sharpen", "--emit", "torch"],
    ["animate", "{in}", "-o", "{tmp}/a.gif"],
    # stdout on the kernel file: commands that plan no files of their own appended to it
    ["explain", "--patch", "1 2 3; 4 5 6; 7 8 9", "-k", "@{in}"],
    ["kernels", "@{in}"],
    ["filter", "{tmp}/other.png", "-k", "@{in}", "--emit", "scipy"],
], ids=["image", "report", "stdin-append", "explain", "emit", "animate", "explain-kernel", "kernels-kernel",
        "emit-kernel"])
def test_stdout_open_on_an_input_is_refused(args: list[str], tmp_path: Path) -> None:
    """``convcli blur in.png -o - 1<>in.png`` wrote the blurred image over the input (exit 0), as
    ``convcli blur - < in.png >> in.png`` appended one to it: refused before anything is written."""
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(src)
    if any(a.startswith("@") for a in args):  # the file read is a kernel: a 3x3 image, beside an image
        Image.fromarray(np.full((3, 3), 200, np.uint8)).save(src)
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / "other.png")
    before = src.read_bytes()
    argv = [a.replace("{in}", str(src)).replace("{tmp}", str(tmp_path)) for a in args]
    append = "-" in argv
    with open(src, "rb") as stdin, open(src, "ab" if append else "r+b") as stdout:
        r = subprocess.run([sys.executable, "-m", "convcli", *argv], stdin=stdin, stdout=stdout,
                           stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("convcli: error: standard output is the input ") and r.stderr.count("\n") == 1
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "other.png") == ["in.png"]


def test_a_collision_of_two_files_of_one_stem_suggests_name(tmp_path: Path) -> None:
    """a.png and a.ppm both make a.blur.png: the hint said to put {stem} in --name, which the default
    template has; {name} (the whole file name) is what tells them apart."""
    img = Image.fromarray(np.zeros((6, 8, 3), np.uint8))
    img.save(tmp_path / "a.png")
    img.save(tmp_path / "a.ppm")
    args = ["blur", str(tmp_path / "a.png"), str(tmp_path / "a.ppm"), "--out-dir", str(tmp_path / "o")]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "put {name}" in r.stderr and "with {stem}" not in r.stderr
    r = CliRunner().invoke(cli, [*args, "--name", "{name}.{op}.png", "-q"])
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "a.png.blur.png", "a.ppm.blur.png"]
