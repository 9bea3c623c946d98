"""The one decision rule: the judge (runtime, else simulation) picks, the plain candidate is
always judged, and the report lists every candidate with its scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

from reference_models.deploy.int8 import decision
from reference_models.deploy.int8.decision import LayoutCandidate, decide_layout, write_decision


def _candidates() -> list[LayoutCandidate]:
    names = ["plain", "E10 0.5", "E10 1", "E10 1 + E11"]
    return [LayoutCandidate(n, 0.0, False, True, nn.Identity(), None) for n in names]


#: what the simulation and the runtime say of each candidate: they disagree on the best
SIMULATED = {"plain": 30.0, "E10 0.5": 35.0, "E10 1": 38.0, "E10 1 + E11": 36.0}
RUNTIME = {"plain": 31.0, "E10 0.5": 34.0, "E10 1": 33.0, "E10 1 + E11": 37.0}


@dataclass
class _Judged:
    """The names ``layout_score`` was asked for, in order, and which model is which
    candidate."""

    names: list[str]
    by_model: dict[int, str]


@pytest.fixture
def scores(monkeypatch: pytest.MonkeyPatch) -> _Judged:
    judged: list[str] = []
    by_model: dict[int, str] = {}

    def simulated(model, images):
        return SIMULATED[by_model[id(model)]]

    def score(model, reference, calibration, *, backend, height, width):
        judged.append(by_model[id(model)])
        judge = decision.runtime_name(backend)
        if judge is None:
            return "simulation", simulated(model, calibration)
        return judge, RUNTIME[by_model[id(model)]]

    monkeypatch.setattr(decision, "simulated_int8_fidelity_db", simulated)
    monkeypatch.setattr(decision, "layout_score", score)
    return _Judged(judged, by_model)


def _decide(by_model: dict[int, str], backend: str = "onnx"):
    candidates = _candidates()
    for candidate in candidates:
        by_model[id(candidate.model)] = candidate.name
    return decide_layout(candidates, nn.Identity(), [], backend=backend, height=8, width=8)


def test_the_runtime_decides_among_plain_and_the_simulations_best(
    scores: _Judged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decision, "runtime_name", lambda backend: "ONNX Runtime")
    made = _decide(scores.by_model)
    # shortlist of 3: plain + the two best simulated ("E10 1", "E10 1 + E11")
    assert scores.names == ["plain", "E10 1", "E10 1 + E11"]
    assert made.judge == "ONNX Runtime" and made.chosen.name == "E10 1 + E11"
    report = made.to_json()
    assert [c["name"] for c in report["candidates"]] == [c.name for c in _candidates()]
    runtime = {c["name"]: c["runtime_db"] for c in report["candidates"]}
    assert runtime == {"plain": 31.0, "E10 0.5": None, "E10 1": 33.0, "E10 1 + E11": 37.0}


def test_without_the_runtime_the_simulation_decides(
    scores: _Judged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decision, "runtime_name", lambda backend: None)
    made = _decide(scores.by_model, backend="tflite")
    assert made.judge == "simulation" and made.chosen.name == "E10 1"
    assert all(c["runtime_db"] is None for c in made.to_json()["candidates"])


def test_the_report_is_written_as_json(tmp_path: Path) -> None:
    path = write_decision(tmp_path / "out.onnx.json", {"chosen": "plain", "scores": [1.5]})
    assert json.loads(path.read_text()) == {"chosen": "plain", "scores": [1.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx.json"]  # no temporary left
