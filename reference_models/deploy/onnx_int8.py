"""Static INT8 ONNX (ONNX Runtime QDQ) of a model, after the E10 layout, with its fidelity.

    from reference_models.deploy.onnx_int8 import export_onnx_int8
    report = export_onnx_int8(model, "etds_int8.onnx", calibration=images)
    report.fidelity_db     # PSNR of ORT INT8 against PyTorch float32 on the calibration images

The float graph is :func:`~reference_models.deploy.onnx.onnx_bytes` of the laid-out model
(:func:`~reference_models.deploy.int8_layout.int8_layout`; ``layout=False`` skips it), checked in
ONNX Runtime like every export, then :func:`~reference_models.deploy.onnx.quantize_int8`
(per-channel int8 weights, per-tensor uint8 activations, min/max calibration on the same images).
Nothing is written when a check fails or the fidelity is below ``min_fidelity_db``.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reference_models.deploy.int8_layout import LayoutError, LayoutReport, int8_layout
from reference_models.deploy.onnx import (
    ClampedFirstOutput,
    ExportError,
    RuntimeMismatchError,
    export_onnx,
    ort_session,
    quantize_int8,
    run_ort,
)

__all__ = ["OnnxInt8Report", "export_onnx_int8"]

DEFAULT_MIN_FIDELITY_DB = 20.0


@dataclass(frozen=True)
class OnnxInt8Report:
    path: Path
    bytes: int
    fidelity_db: float
    layout: LayoutReport | None


def _fidelity_db(model: nn.Module, session, images: Sequence[torch.Tensor]) -> float:
    reference = ClampedFirstOutput(copy.deepcopy(model).float()).eval()
    squared, count = 0.0, 0
    for x in images:
        with torch.no_grad():
            expected = reference(x.float()).numpy().astype(np.float64)
        got = run_ort(session, x.numpy()).astype(np.float64)
        squared += float(((got - expected) ** 2).sum())
        count += expected.size
    mse = squared / max(count, 1)
    return float("inf") if mse == 0 else float(10 * np.log10(1 / mse))


def export_onnx_int8(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    calibration: Sequence[torch.Tensor],
    height: int = 64,
    width: int = 64,
    layout: bool = True,
    refine: bool = False,
    min_fidelity_db: float = DEFAULT_MIN_FIDELITY_DB,
) -> OnnxInt8Report:
    """Write the static INT8 ONNX of ``model`` to ``path``; :class:`ExportError` and nothing
    written on failure."""
    if not calibration:
        raise ExportError("INT8 needs at least one calibration image")
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"{path.parent}: not a folder")
    model = model.eval()
    laid_out, report = model, None
    if layout:
        try:
            laid_out, report = int8_layout(model, calibration, refine=refine)
        except LayoutError as error:
            raise ExportError(f"INT8 layout failed: {error}") from error
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".int8-") as folder:
        float_path = Path(folder) / "float.onnx"
        quantized = Path(folder) / "int8.onnx"
        export_onnx(laid_out, float_path, height=height, width=width)
        quantize_int8(float_path, quantized, [x.numpy() for x in calibration])
        fidelity = _fidelity_db(model, ort_session(str(quantized), threads=1), calibration)
        if not fidelity >= min_fidelity_db:
            raise RuntimeMismatchError(
                f"INT8 fidelity {fidelity:.2f} dB against PyTorch is below {min_fidelity_db} dB; "
                "nothing written"
            )
        os.replace(quantized, path)
    return OnnxInt8Report(path, path.stat().st_size, fidelity, report)
