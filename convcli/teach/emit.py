"""``--emit``: the same filter written as a program for another library.

Each emitted Python program is complete and runnable: it reads the input as convcli
does (Pillow, raw 0..255 values as float32, RGB or L; ``--gray`` as ITU-R 601-2
luma ``0.299 R + 0.587 G + 0.114 B`` kept in float), computes convcli's numbers
with that library, leaves the float32 result in a variable named ``out`` (shape
(H, W, C) or (H, W)) and saves it as a clipped 8-bit PNG. For ImageMagick the
result is a shell command line.

The conventions each library uses, and how the emitted code bridges them to
convcli's (PyTorch's) cross-correlation
``out[y, x] = sum_ij K[i, j] * in[y*sy + i*dy - pad_top, x*sx + j*dx - pad_left]``:

- **PyTorch** ``torch.nn.Conv2d`` correlates (no flip) and has stride, dilation
  and ``padding_mode`` ``zeros``/``reflect``/``replicate``/``circular`` natively,
  but only the same pad on both sides: asymmetric pads go through
  ``torch.nn.functional.pad`` first; ``symmetric`` does not exist in torch and is
  padded with ``numpy.pad``. Colour is filtered depthwise (``groups=C``).
- **scipy.ndimage** ``correlate`` correlates (``convolve`` flips); its output
  always has the input's size, the window placed by ``origin`` (offset
  ``k//2 + origin``); modes ``constant``/``nearest``/``mirror``/``reflect``/``wrap``.
  No stride (computed at every position, then sliced ``[::sy, ::sx]``), no
  dilation (a kernel with zeros between the taps), and pads other than
  ``d*(k-1)`` in total are done with ``numpy.pad`` followed by a valid crop.
- **OpenCV** ``cv2.filter2D`` correlates (despite the documentation's word
  "convolves"), places the window with ``anchor=(x, y)`` and adds ``delta``;
  no stride, no dilation (as scipy), and ``BORDER_WRAP`` is refused by filter2D
  (``copyMakeBorder`` does it, then a valid crop).
- **ImageMagick** ``-morphology Correlate`` slides the kernel as given;
  ``-morphology Convolve`` rotates it by 180° first ("weighted sum with reflected
  kernel", MagickCore/morphology.h), which is what ``--flip`` asks for. The
  kernel's origin is set in its geometry ``WxH+X+Y:``; edge pixels come from
  ``-virtual-pixel`` (``Black``, ``Edge``, ``Mirror``, ``Tile``). The output always has
  the input's size and there is no stride: strides > 1 are refused.
"""

from __future__ import annotations

import shlex
import textwrap
from typing import Literal

import numpy as np

from convcli.core.padding import PadMode, resolve_mode
from convcli.core.pixels import check_policy
from convcli.core.records import record
from convcli.errors import UsageError

Library = Literal["torch", "opencv", "scipy", "magick"]
LIBRARIES: tuple[str, ...] = ("torch", "opencv", "scipy", "magick")

# ImageMagick's ``-virtual-pixel`` method for each mode is PadMode.magick (convcli.core.padding),
# as measured on ImageMagick 6.9.11: ``Mirror`` repeats the edge pixel (``b a | a b c d | d c``),
# i.e. convcli's ``symmetric``; nothing in ImageMagick mirrors without repeating it (convcli's
# ``reflection``), so that mode is padded by hand (crop, flop, append) before a valid correlation.


@record(frozen=True)
class EmitSpec:
    """What to emit: the kernel (as convcli correlates it, before ``flip``) and the geometry.

    ``pad`` is (top, bottom, left, right), already resolved; ``mode`` any padding
    name or alias; ``channels`` 1 (read as L) or 3 (read as RGB); ``gray`` reads RGB
    and converts to float luma first.
    """

    kernel: np.ndarray
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]
    mode: str
    flip: bool
    channels: int
    input_path: str
    output_path: str
    bias: float = 0.0
    gray: bool = False
    policy: str = "clip"  # --range: how the float result becomes 8-bit pixels
    repeat: int = 1  # the kernel applied this many times in float (downsample --times)
    image_size: tuple[int, int] | None = None  # (height, width) upright, where the input could be read
    quality: int | None = None  # JPEG/WebP output: convcli's quality (Pillow's own default is 75)

    def __post_init__(self) -> None:
        if self.repeat < 1:
            msg = f"repeat must be >= 1, got {self.repeat}"
            raise UsageError(msg)
        check_policy(self.policy)
        k = np.array(self.kernel, dtype=np.float64)
        if k.ndim != 2 or k.size == 0 or not np.all(np.isfinite(k)):
            msg = f"--emit needs a finite, non-empty 2-D kernel, got shape {k.shape}"
            raise UsageError(msg)
        object.__setattr__(self, "kernel", k)
        if min(self.stride) < 1 or min(self.dilation) < 1:
            msg = f"stride and dilation must be >= 1, got {self.stride} and {self.dilation}"
            raise UsageError(msg)
        if len(self.pad) != 4 or min(self.pad) < 0:
            msg = f"pad must be four amounts >= 0 (top, bottom, left, right), got {self.pad}"
            raise UsageError(msg)
        if resolve_mode(self.mode).name == "valid" and any(self.pad):
            msg = "padding mode 'valid' takes no padding amount"
            raise UsageError(msg)
        if self.channels not in (1, 3):
            msg = f"--emit writes programs for 1 (L) or 3 (RGB) channels, got {self.channels}"
            raise UsageError(msg)

    @property
    def padmode(self) -> PadMode:
        return resolve_mode(self.mode)

    @property
    def dilated_shape(self) -> tuple[int, int]:
        kh, kw = self.kernel.shape
        return self.dilation[0] * (kh - 1) + 1, self.dilation[1] * (kw - 1) + 1

    @property
    def same_size(self) -> bool:
        """True when the pads add up to d*(k-1) on both axes: the stride-1 output has the input's size."""
        dh, dw = self.dilated_shape
        t, b, left, r = self.pad
        return t + b == dh - 1 and left + r == dw - 1

    @property
    def out_channels(self) -> int:
        return 1 if self.gray else self.channels


def emit(library: Library, spec: EmitSpec) -> str:
    """The program (or, for ``magick``, the shell command) that computes ``spec`` in ``library``.

    Raises UsageError when the library cannot express it (ImageMagick: stride > 1).
    """
    if library not in LIBRARIES:
        msg = f"unknown --emit target {library!r}; choose from: {', '.join(LIBRARIES)}"
        raise UsageError(msg)
    if library == "magick":
        return _magick(spec)
    body = {"torch": _torch, "opencv": _opencv, "scipy": _scipy}[library](spec)
    return _python(library, spec, body)


# --- shared pieces of the Python programs ------------------------------------------------


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _array_literal(k: np.ndarray) -> str:
    rows = ",\n    ".join("[" + ", ".join(_num(v) for v in row) + "]" for row in k)
    return f"np.array([\n    {rows},\n], dtype=np.float32)"


def _summary(spec: EmitSpec) -> str:
    kh, kw = spec.kernel.shape
    m = spec.padmode
    parts = [f"{kh}x{kw} kernel", f"stride {spec.stride[0]},{spec.stride[1]}",
             f"dilation {spec.dilation[0]},{spec.dilation[1]}",
             f"padding {m.name} {','.join(map(str, spec.pad))} (top,bottom,left,right)"]
    if spec.flip:
        parts.append("flip (true convolution)")
    if spec.bias:
        parts.append(f"bias {_num(spec.bias)}")
    if spec.gray:
        parts.append("gray")
    return ", ".join(parts)


def _python(library: str, spec: EmitSpec, body: list[str]) -> str:
    imports = {
        "torch": ["import torch"] + (["import torch.nn.functional as F"] if any("F.pad" in b for b in body)
                                     else []),
        "opencv": ["import cv2"],
        "scipy": ["import scipy.ndimage as ndi"],
    }[library]
    lines = [
        "#!/usr/bin/env python3",
        f'"""convcli, written for {library}.',
        "",
        *textwrap.wrap(_summary(spec) + ".", 96),
        "Generated by convcli --emit. The result is left in `out` (float32) before it is saved.",
        '"""',
        *sorted(["import numpy as np", *imports]),  # straight imports, then from-imports: isort's order
        "from PIL import Image, ImageOps",
        "",
        f"INPUT = {spec.input_path!r}",
        f"OUTPUT = {spec.output_path!r}",
        "",
        "# Read as convcli does: upright (EXIF), raw 0..255 values as float32.",
    ]
    if spec.gray:
        lines += [
            'x = np.array(ImageOps.exif_transpose(Image.open(INPUT)).convert("RGB"), dtype=np.float32)',
            "# --gray: ITU-R 601-2 luma (Pillow's 'L' weights), kept in float",
            "x = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)",
        ]
    elif spec.channels == 1:
        lines.append('x = np.array(ImageOps.exif_transpose(Image.open(INPUT)).convert("L"), '
                     "dtype=np.float32)  # (H, W)")
    else:
        lines.append('x = np.array(ImageOps.exif_transpose(Image.open(INPUT)).convert("RGB"), '
                     "dtype=np.float32)  # (H, W, 3)")
    lines += [
        "",
        "# The kernel as convcli correlates it: slid over the image as written, like torch.nn.Conv2d.",
        f"K = {_array_literal(spec.kernel)}",
    ]
    if spec.flip:
        lines.append("K = K[::-1, ::-1].copy()  # --flip: true convolution = "
                     "correlation with the kernel rotated by 180°")
    if spec.repeat > 1:
        body = [f"for _ in range({spec.repeat}):  # --times {spec.repeat}: the same stage again on its "
                "result, in float",
                *(f"    {ln}" if ln else ln for ln in body), "    x = np.asarray(out, dtype=np.float32)"]
    lines += ["", *body, "", "out = np.asarray(out, dtype=np.float32)",
              *_pixel_lines(spec.policy, spec.quality), ""]
    return "\n".join(wrapped for line in lines for wrapped in _wrap_comment(line))


#: Longest line of an emitted program (comments are wrapped to it; the code's lines are shorter).
EMIT_WIDTH = 99


def _wrap_comment(line: str) -> list[str]:
    """A whole-line comment longer than :data:`EMIT_WIDTH`, wrapped at the same indent."""
    indent = line[: len(line) - len(line.lstrip())]
    if len(line) <= EMIT_WIDTH or not line.lstrip().startswith("# "):
        return [line]
    return textwrap.wrap(line.lstrip()[2:], EMIT_WIDTH, initial_indent=indent + "# ",
                         subsequent_indent=indent + "# ")


def _pixel_lines(policy: str, quality: int | None = None) -> list[str]:
    """The float result to 8-bit pixels and saved, as convcli's ``--range`` policy does it."""
    save = "" if quality is None else f", quality={quality}"
    if policy == "abs":
        return ["# Back to 8-bit pixels as convcli's --range abs: |x|, round half to even, clip to 0..255.",
                f"Image.fromarray(np.clip(np.rint(np.abs(out)), 0, 255).astype(np.uint8)).save(OUTPUT{save})"]
    if policy == "normalize":
        return ["# Back to 8-bit pixels as convcli's --range normalize: min..max onto 0..255 (in float64),",
                "# round half to even; a constant result is 0.",
                "v = out.astype(np.float64)",
                "lo, hi = v.min(), v.max()",
                "v = (v - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(v)",
                f"Image.fromarray(np.rint(np.clip(v, 0, 255)).astype(np.uint8)).save(OUTPUT{save})"]
    return ["# Back to 8-bit pixels as convcli's --range clip: round half to even, clip to 0..255.",
            f"Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8)).save(OUTPUT{save})"]


def _dilate_lines(spec: EmitSpec, library: str) -> list[str]:
    if spec.dilation == (1, 1):
        return []
    dy, dx = spec.dilation
    dh, dw = spec.dilated_shape
    return [
        f"# {library} has no dilation: spread the taps with zeros between them ({dh}x{dw} kernel).",
        f"Kd = np.zeros(({dh}, {dw}), dtype=np.float32)",
        f"Kd[::{dy}, ::{dx}] = K",
        "K = Kd",
    ]


def _stride_lines(spec: EmitSpec, library: str) -> list[str]:
    if spec.stride == (1, 1):
        return []
    sy, sx = spec.stride
    return [f"# {library} has no stride: every position was computed; keep rows 0, {sy}, {2 * sy}, ... "
            f"and columns 0, {sx}, {2 * sx}, ...",
            f"out = out[::{sy}, ::{sx}]"]


def _np_pad_call(spec: EmitSpec, var: str = "x") -> str:
    t, b, left, r = spec.pad
    widths = f"(({t}, {b}), ({left}, {r})" + (", (0, 0))" if spec.out_channels == 3 else ")")
    npmode = spec.padmode.numpy
    return f'{var} = np.pad({var}, {widths}, mode="{npmode}")'


# --- scipy ---------------------------------------------------------------------------------


def _scipy(spec: EmitSpec) -> list[str]:
    m = spec.padmode
    dh, dw = spec.dilated_shape
    t, _, left, _ = spec.pad
    color = spec.out_channels == 3
    weights = "K[:, :, None]" if color else "K"
    extra = ", 0" if color else ""
    lines = _dilate_lines(spec, "scipy.ndimage")
    if color:
        lines.append("# Colour: a 3-D kernel of depth 1 filters each channel on its own (depthwise).")
    if spec.same_size and m.scipy is not None:
        oy, ox = t - dh // 2, left - dw // 2
        lines += [
            f"# convcli's padding '{m.name}' is scipy.ndimage's mode=\"{m.scipy}\" "
            f"({m.pattern}); origin places the window",
            f"# at (y - {t}, x - {left}): scipy's window starts at k//2 + origin before the pixel.",
            f'out = ndi.correlate(x, {weights}, mode="{m.scipy}", origin=({oy}, {ox}{extra}))',
        ]
    else:
        if m.name == "valid":
            lines.append("# padding 'valid': no padding; scipy.ndimage always returns the input's size,")
        else:
            lines += [f"# The pads {spec.pad} (top, bottom, left, right) do not add up to the d*(k-1) = "
                      f"({dh - 1}, {dw - 1}) that scipy.ndimage",
                      f"# keeps, so pad explicitly (numpy '{m.numpy}' = convcli '{m.name}' = scipy "
                      f"'{m.scipy}') and",
                      _np_pad_call(spec)]
        lines += [
            "# keep only the positions where the whole kernel lies inside (a 'valid' correlation):",
            "# origin=-(k//2) puts the window at (y, x) itself.",
            f'out = ndi.correlate(x, {weights}, mode="constant", origin=({-(dh // 2)}, {-(dw // 2)}{extra}))',
            f"out = out[: out.shape[0] - {dh - 1}, : out.shape[1] - {dw - 1}]",
        ]
    lines += _stride_lines(spec, "scipy.ndimage")
    if spec.bias:
        lines.append(f"out = out + np.float32({_num(spec.bias)})  # --bias: added after the sum")
    return lines


# --- OpenCV ----------------------------------------------------------------------------------


def _opencv(spec: EmitSpec) -> list[str]:
    m = spec.padmode
    dh, dw = spec.dilated_shape
    t, b, left, r = spec.pad
    delta = f", delta={_num(spec.bias)}" if spec.bias else ""
    lines = _dilate_lines(spec, "OpenCV")
    lines.append("# cv2.filter2D correlates (no flip), each channel on its own; "
                 "anchor=(x, y) inside the kernel.")
    if spec.same_size and m.opencv is not None and m.name != "circular":
        lines += [
            f"# convcli's padding '{m.name}' is OpenCV's cv2.{m.opencv} ({m.pattern}).",
            f"out = cv2.filter2D(x, -1, K, anchor=({left}, {t}){delta}, borderType=cv2.{m.opencv})",
        ]
    else:
        if m.name == "valid":
            lines.append("# padding 'valid': no padding; filter2D always returns the input's size,")
        else:
            why = ("cv2.filter2D refuses BORDER_WRAP" if m.name == "circular" and spec.same_size else
                   f"the pads {spec.pad} (top, bottom, left, right) do not add up to d*(k-1) = "
                   f"({dh - 1}, {dw - 1})")
            lines += [f"# {why}: pad explicitly with cv2.copyMakeBorder (cv2.{m.opencv} = convcli "
                      f"'{m.name}') and",
                      f"x = cv2.copyMakeBorder(x, {t}, {b}, {left}, {r}, cv2.{m.opencv}"
                      + (", value=0)" if m.name == "zeros" else ")")]
        lines += [
            "# keep only the positions where the whole kernel lies inside (a 'valid' correlation).",
            f"out = cv2.filter2D(x, -1, K, anchor=(0, 0){delta}, borderType=cv2.BORDER_CONSTANT)",
            f"out = out[: out.shape[0] - {dh - 1}, : out.shape[1] - {dw - 1}]",
        ]
    lines += _stride_lines(spec, "OpenCV")
    return lines


# --- PyTorch ---------------------------------------------------------------------------------


#: the widest pad torch takes in each mode, as an offset from the input's side: reflect at most
#: side - 1 ("Padding size should be less than the corresponding input dimension"), circular at most
#: the side ("wrapping around more than once")
_TORCH_PAD_SLACK = {"reflect": -1, "circular": 0}


def _torch_pads_fit(spec: EmitSpec) -> bool:
    """Whether torch's own padding can make ``spec``'s pads (unknown input size: assumed so)."""
    slack = _TORCH_PAD_SLACK.get(spec.padmode.torch or "")
    if slack is None or spec.image_size is None:
        return True
    h, w = spec.image_size
    t, b, left, r = spec.pad
    return max(t, b) <= h + slack and max(left, r) <= w + slack


def _torch(spec: EmitSpec) -> list[str]:
    m = spec.padmode
    kh, kw = spec.kernel.shape
    t, b, left, r = spec.pad
    c = spec.out_channels
    lines: list[str] = []
    symmetric_pads = t == b and left == r
    if m.torch is not None and not _torch_pads_fit(spec):
        widest = "smaller than" if _TORCH_PAD_SLACK[m.torch] < 0 else "no wider than"
        lines += [f"# torch's '{m.torch}' padding takes pads {widest} the input only; these are wider,",
                  f"# so pad with numpy (mode=\"{m.numpy}\") first, then a convolution without padding.",
                  _np_pad_call(spec)]
        conv_pad, conv_mode, pre = (0, 0), "zeros", []
    elif m.name == "valid" or (symmetric_pads and m.torch is not None):
        conv_pad, conv_mode = (t, left), (m.torch or "zeros")
        if m.name != "valid" and any(spec.pad):
            lines.append(f"# convcli's padding '{m.name}' is torch's padding_mode=\"{m.torch}\" "
                         f"({m.pattern}).")
        pre: list[str] = []
    elif m.torch is None:
        conv_pad, conv_mode = (0, 0), "zeros"
        lines += [f"# not expressible in torch: there is no '{m.name}' padding mode ({m.pattern});",
                  f"# pad with numpy (mode=\"{m.numpy}\") first, then a convolution without padding.",
                  _np_pad_call(spec)]
        pre = []
    else:
        conv_pad, conv_mode = (0, 0), "zeros"
        fmode = "constant" if m.name == "zeros" else m.torch
        pre = [f"# Conv2d pads both sides alike; these pads differ, so pad first: F.pad takes "
               f"(left, right, top, bottom), mode \"{fmode}\" = convcli '{m.name}'.",
               f'inp = F.pad(inp, ({left}, {r}, {t}, {b}), mode="{fmode}")']
    if c == 3:
        lines.append("inp = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]  "
                     "# (H, W, C) -> NCHW (1, C, H, W)")
    else:
        lines.append("inp = torch.from_numpy(np.ascontiguousarray(x))[None, None]  "
                     "# (H, W) -> NCHW (1, 1, H, W)")
    lines += pre
    has_bias = bool(spec.bias)
    lines += [
        f"# Depthwise: one copy of the kernel per channel (groups={c}), as convcli filters each "
        "channel alone.",
        f"conv = torch.nn.Conv2d({c}, {c}, kernel_size=({kh}, {kw}), "
        f"stride=({spec.stride[0]}, {spec.stride[1]}),",
        f"                       padding=({conv_pad[0]}, {conv_pad[1]}), dilation=({spec.dilation[0]}, "
        f"{spec.dilation[1]}), groups={c},",
        f'                       bias={has_bias}, padding_mode="{conv_mode}")',
        "with torch.no_grad():",
        f"    conv.weight.copy_(torch.from_numpy(K).expand({c}, 1, {kh}, {kw}))",
    ]
    if has_bias:
        lines.append(f"    conv.bias.fill_({_num(spec.bias)})  # --bias: added after the sum")
    lines.append("    y = conv(inp)")
    if c == 3:
        lines.append("out = y[0].permute(1, 2, 0).numpy()  # back to (H, W, C)")
    else:
        lines.append("out = y[0, 0].numpy()  # back to (H, W)")
    return lines


# --- ImageMagick ---------------------------------------------------------------------------


def _magick_kernel(k: np.ndarray, origin: tuple[int, int]) -> str:
    kh, kw = k.shape
    rows = " ".join(",".join(f"{v:.10g}" for v in row) for row in k)
    return f"{kw}x{kh}+{origin[1]}+{origin[0]}: {rows}"


def _magick_reflect_pad(pad: tuple[int, int, int, int]) -> list[str]:
    """Reflection without repeating the edge (c b | a b c d | c b) from crops, flops and appends."""
    t, b, left, r = pad
    out: list[str] = []
    if left:
        out.append(rf"\( +clone -crop {left}x0+1+0 +repage -flop \) +swap +append +repage")
    if r:
        out.append(rf"\( +clone -gravity East -crop {r}x0+1+0 +repage -flop +gravity \) +append +repage")
    if t:
        out.append(rf"\( +clone -crop 0x{t}+0+1 +repage -flip \) +swap -append +repage")
    if b:
        out.append(rf"\( +clone -gravity South -crop 0x{b}+0+1 +repage -flip +gravity \) -append +repage")
    return out


def _check_mirrored_pads(spec: EmitSpec) -> None:
    """Mirrored crops take at most the image's size less one from each side: a larger pad would
    give a short crop, and the program an output smaller than convcli's, without a word."""
    if spec.image_size is None:
        return
    h, w = spec.image_size
    t, b, left, r = spec.pad
    if max(t, b) >= h or max(left, r) >= w:
        msg = (f"not written for ImageMagick: padding '{spec.padmode.name}' is built from mirrored crops, "
               f"which need each pad smaller than the image, and the pads {spec.pad} (top, bottom, left, "
               f"right) are not, for {w}x{h}; use --emit scipy or opencv")
        raise UsageError(msg)


def _magick(spec: EmitSpec) -> str:
    m = spec.padmode
    if spec.repeat > 1:
        msg = (f"not written for ImageMagick: the kernel applied {spec.repeat} times in float; use --emit "
               "torch, scipy or opencv")
        raise UsageError(msg)
    if spec.policy != "clip":
        msg = (f"not expressible in ImageMagick: --range {spec.policy} needs the negative and out-of-range "
               "results that -morphology clamps to 0..QuantumRange in a Q16 build; use --emit torch, "
               "scipy or opencv (or --range clip)")
        raise UsageError(msg)
    if spec.stride != (1, 1):
        msg = (f"not expressible in ImageMagick: -morphology has no stride (asked {spec.stride[0]},"
               f"{spec.stride[1]}) and its output keeps the input's size; use --emit torch, scipy or opencv")
        raise UsageError(msg)
    dh, dw = spec.dilated_shape
    k = spec.kernel
    if spec.dilation != (1, 1):
        kd = np.zeros((dh, dw))
        kd[:: spec.dilation[0], :: spec.dilation[1]] = k
        k = kd
    t, b, left, r = spec.pad
    vp = m.magick
    comments = [
        "# ImageMagick 7; with ImageMagick 6 write convert instead of magick.",
        "# -morphology Correlate slides the kernel as written (convcli's default, like torch.nn.Conv2d); "
        "-morphology Convolve rotates it by 180° first (MagickCore/morphology.h: \"weighted sum with "
        "reflected kernel\"), which is convcli's --flip. Values are raw 0..255 (user kernels are not "
        "normalised).",
    ]
    args = [f"magick {shlex.quote(spec.input_path)} -auto-orient -alpha off"]
    if spec.gray or spec.channels == 1:
        args[0] += " -grayscale Rec601Luma"
        comments.append("# -grayscale Rec601Luma: ITU-R 601-2 luma, as --gray (rounded to ImageMagick's "
                        "quantum, not kept in float).")
    method = "Convolve" if spec.flip else "Correlate"
    if spec.same_size and vp is not None:
        origin = (t, left)
        comments.append(f"# convcli's padding '{m.name}' is -virtual-pixel {vp} ({m.pattern}); the kernel "
                        f"origin +{left}+{t} places the window at (x - {left}, y - {t}).")
        pre: list[str] = [f"-virtual-pixel {vp}"]
        post: list[str] = []
    else:
        origin = (0, 0)
        if m.name == "valid":
            comments.append("# padding 'valid': no padding; -morphology keeps the input's size, so the "
                            "columns and rows where the kernel overhangs are chopped off afterwards.")
            pre = []
        elif vp is None:
            _check_mirrored_pads(spec)
            comments.append(f"# not expressible as a -virtual-pixel: ImageMagick has no '{m.name}' "
                            f"({m.pattern}); the pad is built from mirrored crops (pads must be smaller "
                            "than the image), then a valid correlation.")
            pre = _magick_reflect_pad(spec.pad)
        else:
            comments.append(f"# the pads {spec.pad} (top, bottom, left, right) do not add up to d*(k-1) = "
                            f"({dh - 1}, {dw - 1}): pad explicitly with -virtual-pixel {vp} through a "
                            "distort viewport, then a valid correlation.")
            pre = [f"-virtual-pixel {vp} -set option:distort:viewport "
                   f"'%[fx:w+{left + r}]x%[fx:h+{t + b}]-{left}-{t}' -filter point -distort SRT 0 +repage"]
        post = [f"-gravity SouthEast -chop {dw - 1}x{dh - 1} +gravity"] if (dh, dw) != (1, 1) else []
    if spec.flip:
        # Convolve rotates kernel and origin: origin (y, x) becomes (h-1-y, w-1-x).
        origin = (dh - 1 - origin[0], dw - 1 - origin[1])
    defines = []
    if spec.bias:
        defines.append(f"-define convolve:bias={spec.bias / 255 * 100:.6g}%")
        comments.append(f"# --bias {_num(spec.bias)} is {spec.bias / 255 * 100:.6g}% of the quantum range.")
    args += pre + defines
    args.append(f"-morphology {method} " + shlex.quote(_magick_kernel(k, origin)))
    args += post
    quality = "" if spec.quality is None else f"-quality {spec.quality} "
    args.append(f"-depth 8 {quality}{shlex.quote(spec.output_path)}")
    wrapped = [ln for c in comments for ln in textwrap.wrap(c, 100, subsequent_indent="# ")]
    return "\n".join(wrapped) + "\n" + " \\\n  ".join(args) + "\n"
