"""Run a ``.tflite`` super-resolution file in LiteRT, at its own size or tiled over any image.

    from reference_models.deploy.litert.runtime import TFLiteModel
    model = TFLiteModel.from_file("etds_int8.tflite", threads=2)
    y = model(x)        # x: 1×3×H×W float32 in [0, 1], any H, W ≥ the file's size → 1×3×sH×sW

The files :mod:`reference_models.deploy.litert.export` writes have a fixed ``1×h×w×3`` NHWC input
(the
LiteRT converter cannot lower PixelShuffle with symbolic sizes) and a float32 ``1×sh×sw×3``
output; an INT8 file takes int8 input, quantized here with the file's own scale and zero point.

Other sizes are tiled, exactly: tiles of the file's size overlap by ``2·margin`` pixels, and an
output pixel is taken from a tile in which it lies at least ``margin`` input pixels from every
tile edge that is not an image edge. With ``margin`` ≥ the receptive radius of the network (the
sum of ``(k − 1)/2`` over its ``k×k`` convs, read from the file), every output pixel sees exactly
the input and the zero padding it sees in one whole-image pass; tiles along the image edge are
placed flush with it, so the conv's zero padding there is the image's own. An image smaller than
the file's size in either dimension is refused (export a smaller file for it).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

__all__ = ["TFLiteModel", "litert_interpreter", "receptive_radius", "run_litert", "tile_starts"]


def litert_interpreter(model: bytes | str | os.PathLike[str], *, threads: int = 2):
    """A LiteRT interpreter (XNNPACK, LiteRT's default CPU delegate) with tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        interpreter = Interpreter(model_content=model, num_threads=threads)
    else:
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def run_litert(interpreter, x_nhwc: np.ndarray) -> np.ndarray:
    """Run one NHWC float32 input; return the NHWC output (a copy)."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x_nhwc.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def receptive_radius(interpreter) -> int:
    """``Σ (k − 1)/2`` over the file's ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` filters (OHWI)."""
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    radius = 0
    for op in interpreter._get_ops_details():  # the only listing of ops LiteRT's Python API has
        if op["op_name"] in {"CONV_2D", "DEPTHWISE_CONV_2D"}:
            kernel = shapes[int(op["inputs"][1])]
            radius += (int(max(kernel[1], kernel[2])) - 1) // 2
    return radius


def tile_starts(size: int, tile: int, margin: int) -> list[int]:
    """Tile origins along one axis: ``0, tile − 2·margin, …`` and ``size − tile`` last."""
    if size < tile:
        raise ValueError(f"image side {size} is smaller than the file's input side {tile}")
    if size == tile:
        return [0]
    step = tile - 2 * margin
    if step < 1:
        raise ValueError(f"the file's input side {tile} is too small for a {margin}-pixel margin")
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def _valid_span(start: int, tile: int, size: int, margin: int) -> tuple[int, int]:
    low = start + (margin if start > 0 else 0)
    high = start + tile - (margin if start + tile < size else 0)
    return low, high


class TFLiteModel(nn.Module):
    """A LiteRT interpreter behind the ``nn.Module`` call convention (NCHW float32 in and out)."""

    def __init__(self, interpreter, *, margin: int | None = None) -> None:
        super().__init__()
        self.interpreter = interpreter
        self._input = interpreter.get_input_details()[0]
        self._output = interpreter.get_output_details()[0]
        _, self.tile_height, self.tile_width, self.colors = (int(v) for v in self._input["shape"])
        self.upscale_factor = int(self._output["shape"][1]) // self.tile_height
        self.margin = receptive_radius(interpreter) if margin is None else margin

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | bytes, *, threads: int = 2) -> TFLiteModel:
        return cls(litert_interpreter(path, threads=threads))

    @property
    def is_int8(self) -> bool:
        return self._input["dtype"] == np.int8

    def run_tile(self, tile: np.ndarray) -> np.ndarray:
        """One ``1×h×w×C`` float32 NHWC tile of the file's size → ``1×sh×sw×C`` float32."""
        if self.is_int8:
            scale, zero_point = self._input["quantization"]
            tile = np.clip(np.round(tile / scale) + zero_point, -128, 127).astype(np.int8)
        self.interpreter.set_tensor(self._input["index"], np.ascontiguousarray(tile))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if out.dtype != np.float32:
            scale, zero_point = self._output["quantization"]
            out = (out.astype(np.float32) - zero_point) * scale
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x.detach().cpu().to(torch.float32).permute(0, 2, 3, 1).numpy()
        if image.shape[0] != 1:
            return torch.cat([self.forward(x[i : i + 1]) for i in range(x.shape[0])])
        _, height, width, colors = image.shape
        if colors != self.colors:
            raise ValueError(f"the file takes {self.colors} colours, got {colors}")
        s, th, tw = self.upscale_factor, self.tile_height, self.tile_width
        out = np.empty((1, height * s, width * s, colors), dtype=np.float32)
        for top in tile_starts(height, th, self.margin):
            r0, r1 = _valid_span(top, th, height, self.margin)
            for left in tile_starts(width, tw, self.margin):
                c0, c1 = _valid_span(left, tw, width, self.margin)
                y = self.run_tile(image[:, top : top + th, left : left + tw])
                out[:, r0 * s : r1 * s, c0 * s : c1 * s] = y[
                    :, (r0 - top) * s : (r1 - top) * s, (c0 - left) * s : (c1 - left) * s
                ]
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
