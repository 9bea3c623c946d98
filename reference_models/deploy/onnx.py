"""Export a super-resolution model to ONNX and check it in ONNX Runtime before keeping the file.

    from reference_models.deploy.onnx import export_onnx
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
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from et.atomic_file import atomic_path
from et.testing import first_output

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_TOLERANCE_255",
    "ClampedFirstOutput",
    "ExportError",
    "ExportReport",
    "OnnxRuntimeModel",
    "RuntimeMismatchError",
    "check_sizes",
    "export_onnx",
    "onnx_bytes",
    "ort_session",
    "quantize_int8",
    "run_ort",
]

#: ONNX opset of the exported graph (DepthToSpace with mode CRD needs ≥ 11).
DEFAULT_OPSET = 17
#: Largest accepted |ORT − PyTorch(float64)| in 1/255 units. Float32 rounding over the authors'
#: conv chains reaches ~0.03/255 (FSRCNN ×2, PyTorch float32 vs float64); a wrong graph (a
#: channel order, a baked-in size) is off by ≫ 1/255.
DEFAULT_TOLERANCE_255 = 0.05
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class ExportError(RuntimeError):
    """The export failed and nothing was written. ``status`` is the exit status ``etds export``
    gives it: 2 (the default) when the file could not be made (a bad size or destination, a
    converter failure, a model the INT8 layout does not support), 1 when it was made but its
    check in the runtime failed (:class:`RuntimeMismatchError`)."""

    status: int = 2

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            if status not in (1, 2):
                raise ValueError(f"export error status must be 1 or 2, not {status!r}")
            self.status = status


class RuntimeMismatchError(ExportError):
    """The runtime disagrees with PyTorch (output shape, fp32 error over the tolerance, INT8
    fidelity below the minimum, an INT8 conv left in float): exit status 1."""

    status = 1


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


class ClampedFirstOutput(nn.Module):
    """``x ↦ clamp(model(x)[0], 0, 1)`` (or ``clamp(model(x), 0, 1)`` for one output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(first_output(self.model(x)), 0.0, 1.0)


def input_channels(model: nn.Module) -> int:
    """The model's input channels: its ``colors`` attribute, else its first conv's inputs."""
    colors = getattr(model, "colors", None)
    if isinstance(colors, int) and colors > 0:
        return colors
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ExportError(f"{type(model).__name__}: cannot tell the number of input channels")
    return first.in_channels


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


def ort_session(
    model: bytes | str | os.PathLike[str],
    *,
    threads: int = 2,
    spinning: bool = True,
    optimization: str = "all",
):
    """An ONNX Runtime CPU session: ``threads`` intra-op threads, one inter-op thread.

    ``spinning=False`` sets ``session.intra_op.allow_spinning = 0`` (workers sleep between
    ops instead of busy-waiting). ``optimization`` is ``"disable"``, ``"basic"``,
    ``"extended"`` or ``"all"`` (``GraphOptimizationLevel.ORT_ENABLE_*``).
    """
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = levels[optimization]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_ort(session, x: np.ndarray) -> np.ndarray:
    """Run a session made by :func:`ort_session` (or any one-input session) on ``x``."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def check_sizes(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """The export size and a second, odd-sided one (``⌈H/2⌉+3 × W+5``) to prove the sizes
    are dynamic."""
    return ((height, width), (-(-height // 2) + 3, width + 5))


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


class OnnxRuntimeModel(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call convention (float32 NCHW in and
    out, CPU), so :mod:`reference_models.evaluation.evaluate` can score an exported or INT8
    model."""

    def __init__(self, session, *, upscale_factor: int | None = None) -> None:
        super().__init__()
        self.session = session
        if upscale_factor is not None:
            self.upscale_factor = upscale_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = run_ort(self.session, x.detach().cpu().to(torch.float32).numpy())
        return torch.from_numpy(y)


def quantize_int8(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    calibration: Sequence[np.ndarray],
) -> Path:
    """Static INT8 quantization with ONNX Runtime (QDQ, per-channel signed weights, unsigned
    activations, MinMax calibration over ``calibration``: ``1×C×h×w`` float32 arrays in [0, 1]).

    Writes ``target`` atomically and returns it. The input and output stay float32; every conv
    runs as ``QLinearConv`` after ORT fuses the Q/DQ pairs.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {INPUT_NAME: item.astype(np.float32)}

    target = Path(target)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs "consider pre-processing" on root
    try:
        with atomic_path(target) as temporary:
            quantize_static(
                str(source),
                str(temporary),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
    finally:
        root.setLevel(level)
    return target
