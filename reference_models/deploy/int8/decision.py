"""One decision rule for the INT8 layout, whatever the backend and whatever the network.

    from reference_models.deploy.int8.decision import decide_layout, layout_candidates
    candidates = layout_candidates(model, calibration)            # plain, E10 strengths, ± E11
    decision = decide_layout(candidates, model, calibration, backend="tflite", height=64, width=64)
    decision.chosen.model                                         # the layout to export
    decision.to_json()                                            # every candidate's scores

Candidates: :func:`~reference_models.deploy.int8.candidates.layout_candidates` (the plain
network, E10 strengths, E11, exact or calibrated copies, R25 copy splits, R24 ReLU pairs, the
refined best; every network laid out on its compiled graph), importable from here too.

Score. :func:`layout_score`: the PSNR (dB, peak 1) of the INT8 output against PyTorch float32
of the network on the calibration images, measured in the *target runtime itself* (ONNX Runtime
for ``.onnx``: the QDQ file :func:`~reference_models.deploy.onnx.int8.quantize_int8` makes; LiteRT
for ``.tflite``: the file :func:`~reference_models.deploy.litert.export.tflite_bytes` makes) where
that runtime is installed, else by the INT8 simulation
(:func:`~reference_models.deploy.int8.simulation.simulated_int8_fidelity_db`), which every
candidate also gets because it costs a fraction of a conversion.

Rule. The simulation ranks all candidates; the plain one and the best ``shortlist − 1`` others
are scored by :func:`layout_score`. The runtime decides, the simulation only saves conversions:
measured, the two disagree by several dB on some layouts (ETDS-M with exact copies: 44.5
simulated, 32.7 in LiteRT). Cost weighs in
(:func:`~reference_models.deploy.int8.layout_cost.cheapest_within_slack`): among the scored
candidates whose score is within ``fidelity_slack_db`` (default
:data:`~reference_models.deploy.int8.layout_cost.DEFAULT_FIDELITY_SLACK_DB` = 0.25 dB) of the
best score, the one with the fewest multiply-accumulates at the export size wins (ties: the
higher score, then the earlier, simpler candidate). E10/E11 layouts cost what the plain network
costs, so among them the highest score wins as before; R24 (up to 3× the MACs) wins only where
it beats every cheaper scored layout by more than the slack. Every candidate's MACs
(:func:`~reference_models.deploy.int8.layout_cost.multiply_accumulates`) are in the report.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from et.atomic_file import atomic_path
from reference_models.deploy.export_contract import ClampedFirstOutput, ExportError
from reference_models.deploy.int8.candidates import (
    LayoutCandidate,
    finite_or_none,
    layout_candidates,
)
from reference_models.deploy.int8.layout_cost import (
    DEFAULT_FIDELITY_SLACK_DB,
    cheapest_within_slack,
    multiply_accumulates,
)
from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db

__all__ = [
    "RUNTIME_SHORTLIST",
    "LayoutCandidate",
    "LayoutDecision",
    "decide_layout",
    "decision_path",
    "layout_candidates",
    "layout_score",
    "runtime_name",
    "write_decision",
]

#: How many candidates the runtime scores (the plain one included): each costs a conversion.
RUNTIME_SHORTLIST = 3
#: The target runtimes by backend: (display name, the module that must import).
RUNTIMES = {"onnx": ("ONNX Runtime", "onnxruntime"), "tflite": ("LiteRT", "ai_edge_litert")}


@dataclass
class LayoutDecision:
    """The chosen candidate, who scored it (``judge``: a runtime's name or ``"simulation"``),
    every candidate with its scores and MACs, the slack of the cost rule and the export size
    the MACs were counted at."""

    backend: str
    judge: str
    chosen: LayoutCandidate
    candidates: list[LayoutCandidate] = field(default_factory=list)
    fidelity_slack_db: float = DEFAULT_FIDELITY_SLACK_DB
    size: tuple[int, int] | None = None

    @property
    def mac_ratio(self) -> float | None:
        """The chosen candidate's MACs over the plain network's (1 for every E10/E11 layout)."""
        plain = self.candidates[0].macs if self.candidates else None
        if not plain or self.chosen.macs is None:
            return None
        return self.chosen.macs / plain

    @property
    def chosen_db(self) -> float:
        score = self.chosen.runtime_db
        return score if score is not None else float(self.chosen.simulated_db or 0.0)

    def to_json(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "judge": self.judge,
            "rule": "the simulation ranks every candidate; the plain one and the best "
            f"{RUNTIME_SHORTLIST - 1} others are scored by the judge; among the scored "
            f"candidates within {self.fidelity_slack_db:g} dB of the best score, the one with "
            "the fewest MACs wins (ties: the higher score, then the earlier candidate)",
            "fidelity_slack_db": self.fidelity_slack_db,
            "macs_at": list(self.size) if self.size else None,
            "chosen": self.chosen.name,
            "chosen_db": finite_or_none(self.chosen_db),
            "chosen_macs": self.chosen.macs,
            "mac_ratio": self.mac_ratio,
            "candidates": [candidate.as_json() for candidate in self.candidates],
        }


def runtime_name(backend: str) -> str | None:
    """The name of ``backend``'s runtime where it is installed, else ``None``."""
    name, module = RUNTIMES[backend]
    return name if importlib.util.find_spec(module) is not None else None


def _fidelity_db(
    reference: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], images: Sequence
) -> float:
    expected_model = ClampedFirstOutput(copy.deepcopy(reference).float()).eval()
    squared, count = 0.0, 0
    with torch.no_grad():
        for x in images:
            expected = expected_model(x.float()).double()
            got = run(x.float()).double()
            squared += float(((got - expected) ** 2).sum())
            count += expected.numel()
    mse = squared / max(count, 1)
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _onnx_runner(model: nn.Module, calibration: Sequence[torch.Tensor], height: int, width: int):
    from reference_models.deploy.onnx.export import onnx_bytes
    from reference_models.deploy.onnx.int8 import quantize_int8
    from reference_models.deploy.onnx.runtime import ort_session, run_ort

    with tempfile.TemporaryDirectory(prefix="etds-int8-") as folder:
        float_path, int8_path = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        float_path.write_bytes(onnx_bytes(model, height=height, width=width))
        quantize_int8(float_path, int8_path, [x.numpy() for x in calibration])
        session = ort_session(int8_path.read_bytes(), threads=1)
    return lambda x: torch.from_numpy(run_ort(session, x.numpy()))


def _litert_runner(model: nn.Module, calibration: Sequence[torch.Tensor], height: int, width: int):
    from reference_models.deploy.litert.export import tflite_bytes
    from reference_models.deploy.litert.runtime import TFLiteModel, litert_interpreter

    data = tflite_bytes(model, height=height, width=width, calibration=calibration)
    return TFLiteModel(litert_interpreter(data, threads=1))


def layout_score(
    candidate: nn.Module,
    reference: nn.Module,
    calibration: Sequence[torch.Tensor],
    *,
    backend: str,
    height: int,
    width: int,
) -> tuple[str, float]:
    """``(judge, dB)``: the INT8 fidelity of ``candidate`` against ``reference`` (float32) on
    ``calibration``, measured in ``backend``'s runtime where installed, else simulated."""
    judge = runtime_name(backend)
    if judge is None:
        return "simulation", simulated_int8_fidelity_db(candidate, calibration)
    make = _onnx_runner if backend == "onnx" else _litert_runner
    try:
        run = make(candidate, calibration, height, width)
    except Exception as error:  # the converters raise many types; report one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExportError(
            f"{judge}: converting a layout candidate failed: {type(error).__name__}: {first}"
        ) from error
    return judge, _fidelity_db(reference, run, calibration)


def decide_layout(
    candidates: Sequence[LayoutCandidate],
    reference: nn.Module,
    calibration: Sequence[torch.Tensor],
    *,
    backend: str,
    height: int,
    width: int,
    shortlist: int = RUNTIME_SHORTLIST,
    fidelity_slack_db: float = DEFAULT_FIDELITY_SLACK_DB,
    progress: Callable[[str], None] | None = None,
    macs_at: tuple[int, int] | None = None,
) -> LayoutDecision:
    """The rule of the module docstring: the runtime scores files of ``height``×``width``
    (the scoring tiles' size), MACs are counted at ``macs_at`` (the export size; default
    ``height``×``width``); ``progress`` is told each candidate as it is scored."""
    if backend not in RUNTIMES:
        raise ValueError(f"backend must be one of {sorted(RUNTIMES)}, not {backend!r}")
    if not (math.isfinite(fidelity_slack_db) and fidelity_slack_db >= 0):
        raise ValueError(f"fidelity_slack_db must be finite and ≥ 0, got {fidelity_slack_db}")
    candidates = list(candidates)
    colors = int(getattr(reference, "colors", 3))
    macs_at = macs_at or (height, width)
    for candidate in candidates:
        candidate.macs = multiply_accumulates(
            candidate.model, colors=colors, height=macs_at[0], width=macs_at[1]
        )
    for candidate in candidates:
        if progress is not None:
            progress(f"simulating {candidate.name}")
        if candidate.simulated_db is None:  # layout_candidates may have simulated it already
            candidate.simulated_db = simulated_int8_fidelity_db(candidate.model, calibration)
    ranked = sorted(candidates[1:], key=lambda c: -np.nan_to_num(c.simulated_db, nan=-np.inf))
    scored = [candidates[0], *ranked[: max(shortlist - 1, 0)]]
    judge = "simulation"
    for candidate in scored:
        if progress is not None:
            progress(f"scoring {candidate.name}")
        judge, db = layout_score(
            candidate.model, reference, calibration, backend=backend, height=height, width=width
        )
        candidate.runtime_db = db if judge != "simulation" else None
    key = (lambda c: c.runtime_db) if judge != "simulation" else (lambda c: c.simulated_db)
    # scored keeps the candidates' order, so "the earlier candidate" breaks ties
    scored.sort(key=candidates.index)
    winner = cheapest_within_slack(
        [key(c) for c in scored], [c.macs for c in scored], slack_db=fidelity_slack_db
    )
    return LayoutDecision(backend, judge, scored[winner], candidates, fidelity_slack_db, macs_at)


def decision_path(out: str | os.PathLike[str]) -> Path:
    """Where the INT8 decision of the exported file ``out`` is written: ``OUT.json`` beside it
    (``m.tflite`` → ``m.tflite.json``)."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def write_decision(path: str | os.PathLike[str], report: dict[str, object]) -> Path:
    """Write ``report`` as JSON to ``path`` atomically (``et.atomic_file``)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps(report, indent=2) + "\n")
    return path
