"""ONNX Runtime: a CPU session, one run, and a session behind the ``nn.Module`` call convention."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

__all__ = ["OnnxRuntimeModel", "ort_session", "run_ort"]


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
