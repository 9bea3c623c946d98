"""Export a super-resolution model to ONNX and check it in ONNX Runtime before keeping the file.

    from reference_models.deploy.onnx.export import export_onnx
    report = export_onnx(model, "etds.onnx")  # ExportError and nothing written on failure
    report.max_abs_error_255                  # worst |ORT − PyTorch| · 255 over the checks

The exported graph computes ``y = clamp(f(x)[0], 0, 1)``: the first output of the model (the
dual-stream training forms return two) clamped to the image range, as ``etds verify`` and
``etds eval`` read it. Input ``input`` is ``1×C×H×W`` float32 with ``H`` and ``W`` dynamic;
output ``output`` is ``1×C×sH×sW``.

The check runs the file in ONNX Runtime (CPU, all graph optimisations on) at the export size and
at a second, odd size (so a graph that baked in the export size fails), on inputs in [0, 1], and
compares with the same model run by PyTorch in float64 (the exact function, so float32 noise of
either runtime is not charged twice), in units of 1/255: ``e = max |y_ort − y_torch64| · 255``.
The file is written to a temporary name in the destination folder and moved into place
(``os.replace``) only when ``e ≤ tolerance_255`` at every size.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from et.atomic_file import atomic_path
from reference_models.deploy.export_contract import (
    ClampedFirstOutput,
    ExportError,
    RuntimeMismatchError,
    check_sizes,
    input_channels,
)
from reference_models.deploy.onnx.runtime import ort_session, run_ort

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_TOLERANCE_255",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "ExportReport",
    "export_onnx",
    "onnx_bytes",
]

#: ONNX opset of the exported graph (DepthToSpace with mode CRD needs ≥ 11).
DEFAULT_OPSET = 17
#: Largest accepted |ORT − PyTorch(float64)| in 1/255 units. Float32 rounding over the authors'
#: conv chains reaches ~0.03/255 (FSRCNN ×2, PyTorch float32 vs float64); a wrong graph (a
#: channel order, a baked-in size) is off by ≫ 1/255.
DEFAULT_TOLERANCE_255 = 0.05
INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how closely ONNX Runtime matched PyTorch."""

    path: Path
    opset: int
    sizes: tuple[tuple[int, int], ...]
    errors_255: tuple[float, ...]
    bytes: int

    @property
    def max_abs_error_255(self) -> float:
        return max(self.errors_255)


def onnx_bytes(model: nn.Module, *, height: int, width: int, opset: int = DEFAULT_OPSET) -> bytes:
    """The ONNX serialisation of ``ClampedFirstOutput(model)`` with dynamic ``H``, ``W``.

    Uses the TorchScript exporter (``dynamo=False``): it needs no ``onnxscript`` and emits
    ``DepthToSpace`` for PixelShuffle, which runtimes fuse better than Reshape/Transpose.
    """
    wrapped = ClampedFirstOutput(model).eval()
    example = torch.rand(1, input_channels(model), height, width)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            wrapped,
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {2: "height", 3: "width"},
                OUTPUT_NAME: {2: "out_height", 3: "out_width"},
            },
            do_constant_folding=True,
        )
    return buffer.getvalue()


def _max_error_255(model: nn.Module, session, size: tuple[int, int], seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, input_channels(model), *size, generator=generator)
    exact = ClampedFirstOutput(copy.deepcopy(model).double()).eval()
    with torch.no_grad():
        expected = exact(x.double()).numpy()
    actual = run_ort(session, x.numpy()).astype(np.float64)
    if actual.shape != expected.shape:
        raise RuntimeMismatchError(
            f"ONNX Runtime output {actual.shape} but PyTorch {expected.shape} "
            f"at {size[0]}×{size[1]}"
        )
    return float(np.max(np.abs(actual - expected)) * 255.0)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    height: int = 64,
    width: int = 64,
    opset: int = DEFAULT_OPSET,
    tolerance_255: float = DEFAULT_TOLERANCE_255,
    sizes: Sequence[tuple[int, int]] | None = None,
) -> ExportReport:
    """Export ``model`` (first output, clamped) to ``path`` after checking it in ONNX Runtime.

    ``height``×``width`` is the tracing size; the check sizes default to :func:`check_sizes`.
    Raises :class:`ExportError` (and leaves ``path`` untouched) when export fails or the error
    exceeds ``tolerance_255`` at any size.
    """
    if height < 1 or width < 1:
        raise ExportError(f"height and width must be positive, got {height}×{width}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"{path.parent}: not a folder")
    model = model.eval()
    try:
        data = onnx_bytes(model, height=height, width=width, opset=opset)
    except Exception as error:  # the exporter raises many types; report one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExportError(f"ONNX export failed: {type(error).__name__}: {first}") from error
    sizes = tuple(sizes) if sizes is not None else check_sizes(height, width)
    session = ort_session(data, threads=1)
    errors = tuple(_max_error_255(model, session, s, seed=i) for i, s in enumerate(sizes))
    for size, error in zip(sizes, errors, strict=True):
        if not error <= tolerance_255:  # also catches NaN
            raise RuntimeMismatchError(
                f"ONNX Runtime differs from PyTorch by {error:.4g}/255 at {size[0]}×{size[1]} "
                f"(tolerance {tolerance_255}/255); nothing written"
            )
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return ExportReport(path, opset, sizes, errors, len(data))
