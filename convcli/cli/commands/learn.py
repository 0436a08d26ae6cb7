"""``convcli learn``: the kernel that turns INPUT into TARGET, by gradient descent or least squares."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
from click.core import ParameterSource

from convcli.cli.errors import read_named
from convcli.cli.options import check_png_name, geometry_options, geometry_spec
from convcli.errors import ConvcliError, UsageError

if TYPE_CHECKING:
    from convcli.teach.learn import LearnSettings


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums *= 2
    if len(nums) != 2 or min(nums) < 1 or max(nums) > 31:
        msg = f"--size must be N or KH,KW with 1..31, got {text!r}"
        raise UsageError(msg)
    return nums[0], nums[1]


def _parse_steps(text: str | None, total: int) -> list[int]:
    from convcli.teach.learn import chosen_steps

    if text is None:
        return chosen_steps(total)
    try:
        picks = sorted({total if int(v) == -1 else int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        picks = []
    if not picks or min(picks) < 0 or max(picks) > total:
        msg = f"--show-steps must be steps 0..{total} (-1 = the last), comma-separated, got {text!r}"
        raise UsageError(msg)
    return picks


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(a, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _derived(output: str, suffix: str) -> str:
    p = Path(output)
    return str(p.with_name(f"{p.stem}.{suffix}"))


@click.command("learn")
@click.argument("input_path", metavar="INPUT")
@click.argument("target_path", metavar="TARGET")
@click.option("--size", "size", default="3", show_default=True, metavar="N|KH,KW",
              help="Size of the kernel to learn.")
@click.option("--channels", type=click.Choice(["shared", "depthwise", "mixing"]), default="shared",
              show_default=True,
              help="shared: one kernel for every channel (as filter); depthwise: one per channel; "
                   "mixing: a conv layer C_in -> C_out with bias.")
@click.option("--solver", type=click.Choice(["descent", "lstsq"]), default="descent", show_default=True,
              help="Gradient descent, or the closed form through the unrolled (im2col) matrix.")
@click.option("--steps", type=click.IntRange(0, 100_000), default=200, show_default=True)
@click.option("--lr", type=float, default=None, help="Step size (default: 1 / the loss's largest curvature).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed of the random start.")
@click.option("--gray", is_flag=True, help="Convert input and target to luminance first.")
@click.option("--ignore-clipped", is_flag=True,
              help="Leave target samples at 0 or the maximum (clipped in an 8-bit file) out of the loss.")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="The learnt kernel: .txt/.csv/.json/.npy (shared; '-k @FILE' reads it) or .npy "
                   "(out, in, kh, kw) for depthwise/mixing ('chain conv --weights FILE').")
@click.option("--curve", default=None, metavar="PNG", help="Loss-curve picture (default: {stem}.loss.png).")
@click.option("--montage", default=None, metavar="PNG",
              help="Kernel and output at chosen steps (default: {stem}.steps.png).")
@click.option("--show-steps", default=None, metavar="N,N,...",
              help="Steps shown in the montage (default: 0, the last, and a few between on a log scale).")
@click.option("--no-figures", is_flag=True, help="Write the kernel only (no curve, no montage).")
@click.option("--every", type=click.IntRange(1), default=None, metavar="N",
              help="Report the loss every N steps (default: 20 lines in all).")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one per reported step, then the result.")
@click.option("-q", "--quiet", is_flag=True, help="No report.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse larger inputs.")
@geometry_options()
def learn_cmd(input_path: str, target_path: str, size: str, channels: str, solver: str, steps: int,
              lr: float | None, seed: int, gray: bool, ignore_clipped: bool, output: str, curve: str | None,
              montage: str | None, show_steps: str | None, no_figures: bool, every: int | None,
              as_json: bool, quiet: bool, max_pixels: int | None, **geo: Any) -> int:
    """Find the kernel that turns INPUT into TARGET (images or .npy arrays).

    \b
    convcli learn cat.png cat.sharpen.npy --size 3 -o learned/sharpen.txt
    convcli learn cat.png cat.sharpen.npy --size 3 --solver lstsq -o learned/lstsq.txt
    convcli filter cat.png -k @learned/sharpen.txt

    Descent minimises the mean squared error; its gradient with respect to the kernel is
    the input correlated with the output's error (the same operation as the forward pass).
    """
    from convcli.io.decode import DEFAULT_MAX_PIXELS, read_image
    from convcli.io.files import write_atomic
    from convcli.io.kernelfile import KERNEL_FILE_EXTENSIONS, kernel_file_bytes
    from convcli.report import json_line
    from convcli.run.plan import prepare_paths
    from convcli.teach.learn import LearnSettings, make_problem, solve_lstsq

    t0 = time.perf_counter()
    for flag, value in (("-o", output), ("--curve", curve), ("--montage", montage)):
        if value == "-":  # it made a file named '-' in the current folder
            msg = f"{flag} - : learn writes files, not stdout; give a file name"
            raise UsageError(msg)
        if flag != "-o":
            check_png_name(flag, value)
    ksize = _parse_size(size)
    ext = Path(output).suffix.lower()
    if channels == "shared" and ext not in KERNEL_FILE_EXTENSIONS:
        msg = f"-o {output}: write the kernel as {', '.join(KERNEL_FILE_EXTENSIONS)}"
        raise UsageError(msg)
    if channels != "shared" and ext != ".npy":
        msg = f"-o {output}: --channels {channels} writes conv weights (out, in, kh, kw): use a .npy file"
        raise UsageError(msg)
    settings = LearnSettings(ksize=ksize, channels=channels, spec=geometry_spec(geo),  # type: ignore[arg-type]
                             steps=steps, lr=lr, seed=seed)
    files: list[tuple[str, str]] = [("kernel file", output)]
    bias_path = _derived(output, "bias.npy") if channels == "mixing" else None
    if bias_path:
        files.append(("bias file", bias_path))
    if solver == "lstsq":  # taken and ignored without a word: a descent's options, no step to take
        ctx = click.get_current_context()
        descent = (("--steps", "steps"), ("--lr", "lr"), ("--seed", "seed"), ("--every", "every"),
                   ("--curve", "curve"), ("--show-steps", "show_steps"))
        given = [flag for flag, name in descent
                 if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)]
        if given:
            msg = (f"{', '.join(given)}: options of the descent, and --solver lstsq solves in one step "
                   "(drop them, or use --solver descent)")
            raise UsageError(msg)
    if not no_figures:
        curve = curve or _derived(output, "loss.png")
        montage = montage or _derived(output, "steps.png")
        if solver == "descent":
            files.append(("loss curve", curve))
        files.append(("montage", montage))
    picks = _parse_steps(show_steps, steps if solver == "descent" else 0)
    prepare_paths([input_path, target_path], files)

    limit = max_pixels or DEFAULT_MAX_PIXELS
    # From here on (the two files read included) a failure is the run's, reported as every command
    # reports a failed input: with --json the stream ends with its error record (the one line still
    # goes to stderr).
    with _error_record(input_path, enabled=as_json):
        src, tgt = (read_named(read_image, path, label, gray=gray, max_pixels=limit)
                    for path, label in ((input_path, "INPUT"), (target_path, "TARGET")))
        x, t = src.color, tgt.color
        ignore = (0.0, float(tgt.header.maxval)) if ignore_clipped else None
        problem = make_problem(x, t, settings, ignore=ignore, descent=solver != "lstsq")
        record = _record(input_path, target_path, output, x, t, settings, solver)

        if solver == "lstsq":
            final = solve_lstsq(problem)
            losses, shown = [final.loss], {0: final.weights}
        else:
            final, losses, shown = _descend(problem, steps, picks, every or max(1, steps // 20),
                                            as_json=as_json, quiet=quiet)
        w = final.weights
        if channels == "shared":
            write_atomic(output, kernel_file_bytes(output, w.kernel))
        else:
            conv_w, conv_b = w.as_conv(x.shape[2] if x.ndim == 3 else 1)
            write_atomic(output, _npy_bytes(conv_w))
            if bias_path and conv_b is not None:
                write_atomic(bias_path, _npy_bytes(conv_b))
        written = [output] + ([bias_path] if bias_path else [])
        if not no_figures:
            written += _figures(problem, x, t, losses, shown, picks, solver, curve, montage, settings,
                                src.header.maxval)
        record.update(solver=solver, steps=len(losses) - 1, loss=final.loss, kernel=w.kernel.tolist(),
                      bias=None if w.bias is None else w.bias.tolist(), files=written,
                      seconds=round(time.perf_counter() - t0, 4))
        if as_json:
            click.echo(json_line(record))
        elif not quiet:
            _print(record, w.kernel)
    return 0


def _descend(problem: Any, steps: int, picks: list[int], every: int, *, as_json: bool,
             quiet: bool) -> tuple[Any, list[float], dict[int, Any]]:
    """Run the descent: (its last step, every step's loss, the weights of the steps in ``picks``),
    reporting every ``every``-th step (a JSON line, a plain line, or a progress bar on a terminal)."""
    from convcli.report import json_line
    from convcli.teach.learn import descend

    losses: list[float] = []
    shown: dict[int, Any] = {}
    final = None
    with _Progress(steps, enabled=not (as_json or quiet) and sys.stderr.isatty()) as bar:
        for st in descend(problem):
            losses.append(st.loss)
            if st.step in picks:
                shown[st.step] = st.weights
            if st.step % every == 0 or st.step == steps:
                if as_json:
                    click.echo(json_line({"step": st.step, "loss": st.loss}))
                elif not quiet and not bar.enabled:
                    click.echo(f"step {st.step:>6}  loss {st.loss:.6g}")
            bar.update(st.step, st.loss)
            final = st
    assert final is not None
    return final, losses, shown


@contextmanager
def _error_record(input_path: str, *, enabled: bool) -> Iterator[None]:
    """With --json, a failure first writes the failed input's record (README, "The shape report"); the
    error then goes on to its one line on stderr and its exit status."""
    try:
        yield
    except ConvcliError as e:
        if enabled:
            from convcli.report import json_line
            from convcli.run.scale import error_record

            click.echo(json_line(error_record(input_path, str(e))))
        raise


def _record(input_path: str, target_path: str, output: str, x: np.ndarray, t: np.ndarray,
            settings: LearnSettings, solver: str) -> dict[str, Any]:
    """The shape report of the learnt layer, as every command prints it."""
    from convcli.core.kernels import Kernel
    from convcli.pipeline import ConvStage, Pipeline, make_correlate_stage, nchw

    x3 = x if x.ndim == 3 else x[:, :, None]
    t3 = t if t.ndim == 3 else t[:, :, None]
    kh, kw = settings.ksize
    label = f"learned ({solver})"
    if settings.channels == "mixing":
        mode, pad = settings.resolve()
        stage: Any = ConvStage(op="learn", out_channels=t3.shape[2], kernel_size=settings.ksize,
                               stride=settings.spec.stride, dilation=settings.spec.dilation,
                               padding=mode, pad=pad, source=label)
    else:
        stage = make_correlate_stage("learn", Kernel(label, np.zeros((kh, kw))), settings.spec,
                                     label=f"{label}, {settings.channels}")
    plans = Pipeline((stage,)).plan((x3.shape[2], x3.shape[0], x3.shape[1]))
    return {"input": input_path, "target": target_path, "output": output, "status": "ok",
            "input_shape": nchw(plans[0].in_shape), "output_shape": nchw(plans[-1].out_shape),
            "stages": [p.record() for p in plans]}


def _print(record: dict[str, Any], kernel: np.ndarray) -> None:
    from convcli.report import plain_lines

    lines = plain_lines({**record, "output": ", ".join(record["files"])})
    lines.append(f"  {record['solver']}: {record['steps']} steps, "
                 f"loss (mean squared error) {record['loss']:.6g}")
    def rows(k: np.ndarray) -> list[str]:
        return ["    [" + " ".join(f"{round(float(v), 4) + 0.0:9.4f}" for v in row) + " ]" for row in k]

    if kernel.ndim == 2:
        lines.append("  kernel:")
        lines += rows(kernel)
    elif kernel.ndim == 3:  # depthwise: one kernel per channel, written as a diagonal conv layer
        c, kh, kw = kernel.shape
        for i in range(c):
            lines.append(f"  kernel of channel {i}:")
            lines += rows(kernel[i])
        lines.append(f"  written as conv weights (out, in, kh, kw) {[c, c, kh, kw]}, zero between channels")
    else:
        bias = " + bias" if record.get("bias") else ""
        lines.append(f"  weights (out, in, kh, kw) {list(kernel.shape)}{bias}")
    click.echo("\n".join(lines))


def _figures(problem: Any, x: np.ndarray, t: np.ndarray, losses: list[float], shown: dict[int, Any],
             picks: list[int], solver: str, curve: str | None, montage: str | None, settings: Any,
             maxval: float) -> list[str]:
    """The loss curve and the montage of kernel and output at the chosen steps."""
    from convcli.io.encode import encode_image
    from convcli.io.files import write_atomic
    from convcli.pipeline import nchw
    from convcli.report import shape_text
    from convcli.teach.plots import loss_curve
    from convcli.teach.render import display_pixels, kernel_panel, make_montage, stage_panels

    written = []
    if solver == "descent" and curve:
        kh, kw = settings.ksize
        img = loss_curve(losses, title=f"learning a {kh}x{kw} kernel ({settings.channels}): loss by step",
                         marks=picks)
        write_atomic(curve, encode_image(img, None, "png")[0])
        written.append(curve)
    if montage:
        x3 = x if x.ndim == 3 else x[:, :, None]
        t3 = t if t.ndim == 3 else t[:, :, None]

        def shape(a: np.ndarray) -> str:
            return shape_text(nchw((a.shape[2], a.shape[0], a.shape[1])))

        def picture(a: np.ndarray) -> np.ndarray:
            return display_pixels(a if a.shape[2] in (1, 3) else a[:, :, :1], "filter", maxval)

        panels = stage_panels(None, x3, maxval, 0)[:1]
        panels.append(type(panels[0])("target", shape(t3), picture(t3)))
        one_scale = max((float(np.max(np.abs(shown[s].kernel))) for s in picks if s in shown), default=0.0)
        for step in picks:
            if step not in shown:
                continue
            w = shown[step]
            k2 = w.kernel if w.kernel.ndim == 2 else w.kernel.reshape(-1, *settings.ksize)[0]
            what = "" if w.kernel.ndim == 2 else " (out 0 <- in 0)"
            name = "lstsq" if solver == "lstsq" else f"step {step}"
            pred = problem.forward(_internal(problem, w))
            loss = losses[step] if step < len(losses) else float("nan")
            panels.append(kernel_panel(k2, f"{name} kernel{what}", scale=one_scale or None))
            panels.append(type(panels[0])(f"{name} output, loss {loss:.3g}", shape(pred), picture(pred)))
        img = make_montage(panels, title="learning the kernel: input, target, then kernel and output by step",
                           columns=4)
        write_atomic(montage, encode_image(img, None, "png")[0])
        written.append(montage)
    return written


def _internal(problem: Any, w: Any) -> Any:
    """Exported weights -> the problem's own coordinates (mixing centres the input)."""
    from convcli.teach.learn import Weights

    if problem.offset is None or w.bias is None:
        return w
    return Weights(w.kernel, w.bias + np.einsum("c,ocij->o", problem.offset, w.kernel))


class _Progress:
    """A Rich progress bar on stderr (a terminal only), showing the loss as it falls."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled and os.environ.get("TERM") != "dumb":
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("learning"), BarColumn(), TextColumn("step {task.completed}"),
                                 TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("learn", total=self.total, loss="-")
        else:
            self.enabled = False
        return self

    def update(self, step: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, loss=f"{loss:.4g}")

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
