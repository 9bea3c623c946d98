"""Static INT8 ONNX (ONNX Runtime QDQ) of a model, after the INT8 layout, with its fidelity.

    from reference_models.deploy.onnx.int8 import export_onnx_int8
    report = export_onnx_int8(model, "etds_int8.onnx", calibration=images)
    report.fidelity_db     # PSNR of ORT INT8 against PyTorch float32 on the calibration images

The float graph is :func:`~reference_models.deploy.onnx.export.onnx_bytes` of the layout chosen
by the one decision rule (:func:`~reference_models.deploy.int8.decision.layout_candidates` and
:func:`~reference_models.deploy.int8.decision.decide_layout` for ``"onnx"``, as ``etds export``
chooses; ``layout=False`` skips it), checked in ONNX Runtime like every export, then
:func:`~reference_models.deploy.onnx.int8.quantize_int8` (per-channel int8 weights, per-tensor
uint8 activations, min/max calibration on the same images). The decision is written beside
the file as ``PATH.json``. Nothing is written when a check fails or the fidelity is below
``min_fidelity_db``.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
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
)
from reference_models.deploy.int8.decision import (
    LayoutDecision,
    decide_layout,
    decision_path,
    layout_candidates,
    write_decision,
)
from reference_models.deploy.int8.layout import LayoutError, LayoutReport
from reference_models.deploy.onnx.export import INPUT_NAME, export_onnx
from reference_models.deploy.onnx.runtime import ort_session, run_ort

__all__ = ["OnnxInt8Report", "export_onnx_int8", "quantize_int8"]

DEFAULT_MIN_FIDELITY_DB = 20.0


@dataclass(frozen=True)
class OnnxInt8Report:
    path: Path
    bytes: int
    fidelity_db: float
    layout: LayoutReport | None
    #: the layout decision (every candidate and its scores), also written to ``PATH.json``
    decision: LayoutDecision | None = None


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
    laid_out, decision = model, None
    if layout:
        try:
            candidates = layout_candidates(model, calibration, refine=refine)
        except LayoutError as error:
            raise ExportError(f"INT8 layout failed: {error}") from error
        decision = decide_layout(
            candidates, model, calibration, backend="onnx", height=height, width=width
        )
        laid_out = decision.chosen.model
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
    if decision is not None:
        report = {"out": str(path), "fidelity_db": fidelity, **decision.to_json()}
        write_decision(decision_path(path), report)
    layout_report = decision.chosen.report if decision is not None else None
    return OnnxInt8Report(path, path.stat().st_size, fidelity, layout_report, decision)


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
