"""Direct method: accumulate one shifted, strided view of the padded input per kernel tap."""

from __future__ import annotations

import numpy as np

from ..shapes import Pair


def correlate_padded(
    xp: np.ndarray, k: np.ndarray, stride: Pair, dilation: Pair, out_hw: Pair
) -> np.ndarray:
    """Correlate an already padded (H, W, C) array; only the kept (strided) outputs are computed."""
    (sy, sx), (dy, dx), (oh, ow) = stride, dilation, out_hw
    out = np.zeros((oh, ow, xp.shape[2]), dtype=xp.dtype)
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            c = k[i, j]
            if c == 0:
                continue
            win = xp[i * dy : i * dy + (oh - 1) * sy + 1 : sy, j * dx : j * dx + (ow - 1) * sx + 1 : sx]
            out += c * win
    return out
