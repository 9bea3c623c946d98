"""The one decision rule: the judge (runtime, else simulation) picks, the plain candidate is
always judged, and the report lists every candidate with its scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from reference_models import load_checkpoint
from reference_models.deploy.int8 import decision
from reference_models.deploy.int8.calibration import calibration_images
from reference_models.deploy.int8.decision import (
    LayoutCandidate,
    decide_layout,
    layout_candidates,
    write_decision,
)
from reference_models.deploy.int8.layout_cost import cheapest_within_slack


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


# --- the cost rule ------------------------------------------------------------------------


def test_cheapest_within_slack_takes_the_cheaper_layout_only_inside_the_slack() -> None:
    costs = [4, 4, 12]  # plain, an E10 layout, an R24 layout (3× the MACs)
    # R24 0.2 dB better than the E10 layout: inside 0.25 dB, the cheaper one wins
    assert cheapest_within_slack([31.0, 40.0, 40.2], costs, slack_db=0.25) == 1
    # 0.3 dB better: outside, R24 wins
    assert cheapest_within_slack([31.0, 40.0, 40.3], costs, slack_db=0.25) == 2
    # slack 0: the highest score, whatever it costs
    assert cheapest_within_slack([31.0, 40.0, 40.01], costs, slack_db=0.0) == 2
    # equal costs: the higher score, then the earlier candidate
    assert cheapest_within_slack([31.0, 31.1, 31.1], [4, 4, 4], slack_db=0.25) == 1
    # unscored candidates (None, NaN) never win against a scored one, even when cheaper
    assert cheapest_within_slack([None, float("nan"), 30.0], [1, 1, 9], slack_db=5.0) == 2
    with pytest.raises(ValueError, match="slack_db"):
        cheapest_within_slack([1.0], [1], slack_db=-0.1)
    with pytest.raises(ValueError, match="scores"):
        cheapest_within_slack([1.0, 2.0], [1], slack_db=0.1)


#: fabricated runtime scores and costs: "E10 1 + E11" is the cheaper near-best, "R24" the best
COSTLY_RUNTIME = {"plain": 31.0, "E10 1": 33.0, "E10 1 + E11": 37.0, "R24": 37.2}
COSTLY_SIMULATED = {"plain": 30.0, "E10 1": 34.0, "E10 1 + E11": 36.0, "R24": 38.0}
MACS = {"plain": 100, "E10 1": 100, "E10 1 + E11": 100, "R24": 300}


@pytest.mark.parametrize(
    ("r24_db", "slack", "winner"),
    [
        (37.2, 0.25, "E10 1 + E11"),  # 0.2 dB better: not worth 3× the MACs
        (37.3, 0.25, "R24"),  # 0.3 dB better: worth it
        (37.2, 0.0, "R24"),  # no slack: the best score wins
        (38.5, 1.0, "R24"),
    ],
)
def test_decide_layout_weighs_the_macs(
    monkeypatch: pytest.MonkeyPatch, r24_db: float, slack: float, winner: str
) -> None:
    names = list(COSTLY_RUNTIME)
    candidates = [LayoutCandidate(n, 0.0, False, True, nn.Identity(), None) for n in names]
    by_model = {id(c.model): c.name for c in candidates}
    runtime = {**COSTLY_RUNTIME, "R24": r24_db}
    monkeypatch.setattr(decision, "runtime_name", lambda backend: "LiteRT")
    monkeypatch.setattr(
        decision, "simulated_int8_fidelity_db", lambda m, images: COSTLY_SIMULATED[by_model[id(m)]]
    )
    monkeypatch.setattr(
        decision,
        "layout_score",
        lambda m, *a, backend, height, width: ("LiteRT", runtime[by_model[id(m)]]),
    )
    monkeypatch.setattr(
        decision,
        "multiply_accumulates",
        lambda m, *, colors, height, width: MACS[by_model[id(m)]] * height * width,
    )
    made = decide_layout(
        candidates, nn.Identity(), [], backend="tflite", height=4, width=5, fidelity_slack_db=slack
    )
    assert made.chosen.name == winner
    report = made.to_json()
    assert {c["name"]: c["macs"] for c in report["candidates"]} == {
        n: 20 * cost for n, cost in MACS.items()
    }
    assert report["fidelity_slack_db"] == slack and report["macs_at"] == [4, 5]
    assert report["chosen_macs"] == 20 * MACS[winner]
    assert made.mac_ratio == pytest.approx(MACS[winner] / MACS["plain"])


def test_decide_layout_refuses_a_negative_slack() -> None:
    with pytest.raises(ValueError, match="fidelity_slack_db"):
        decide_layout(
            _candidates(),
            nn.Identity(),
            [],
            backend="onnx",
            height=8,
            width=8,
            fidelity_slack_db=-1.0,
        )


def _conv_macs(model: nn.Module, height: int, width: int) -> int:
    """MACs counted by hand: every conv's output elements × its kernel's fan-in, read while
    the network runs (module hooks for a module, the conv calls of a compiled graph)."""
    total = 0
    x = torch.zeros(1, 3, height, width, dtype=torch.float32)
    program = getattr(model, "program", None)
    if isinstance(program, torch.fx.GraphModule):
        convs = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)

        class _Counting(torch.fx.Interpreter):
            def call_function(self, target, args, kwargs):
                nonlocal total
                output = super().call_function(target, args, kwargs)
                if target in convs:
                    total += output.numel() * args[1][0].numel()
                return output

        with torch.no_grad():
            _Counting(program).run(x)
        return total

    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x.to(next(model.parameters()).dtype))
    for handle in handles:
        handle.remove()
    return total


def test_a_real_decision_counts_macs_and_follows_the_rule(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the released ECBSR ET form, judged by the simulation (no conversion: fast, deterministic)
    monkeypatch.setattr(decision, "runtime_name", lambda backend: None)
    model = load_checkpoint(shared_dir / "official/checkpoints/ECBSR_ET_M4C16_x2.pth").eval()
    images = calibration_images(shared_dir / "data/Set5", 2, 24, 24, tiles_per_image=1)[:2]
    candidates = layout_candidates(model, images, strengths=(0.0, 0.5))
    made = decide_layout(
        candidates, model, images, backend="tflite", height=36, width=40, shortlist=len(candidates)
    )
    for candidate in made.candidates:  # the fake-tensor count agrees with a count by hand
        assert candidate.macs == _conv_macs(candidate.model, 36, 40)
    paired = next(c for c in made.candidates if c.name == "R24 ReLU pairs")
    plain = made.candidates[0]
    # the pair form is built in float64; the candidate has the model's dtype, as the others
    assert {p.dtype for c in made.candidates for p in c.model.parameters()} == {torch.float32}
    # R24 doubles the 16 learned channels of each PReLU layer: about 3× the MACs
    assert 2.5 < paired.macs / plain.macs < 3.5
    scores = [c.runtime_db if c.runtime_db is not None else c.simulated_db for c in candidates]
    best = max(scores)
    eligible = [c for c, s in zip(candidates, scores, strict=True) if s >= best - 0.25]
    assert made.chosen.macs == min(c.macs for c in eligible)
    assert made.chosen in eligible


def test_the_export_summary_names_the_layout_and_r24s_cost() -> None:
    from etds.cli._export_formats import layout_line
    from reference_models.deploy.int8.layout import LayoutReport

    def candidate(name: str, macs: int, relu_pairs: bool) -> LayoutCandidate:
        report = LayoutReport((), (), 0.0, 0.5, {}, relu_pairs=relu_pairs)
        return LayoutCandidate(name, 0.5, False, True, nn.Identity(), report, macs=macs)

    plain, e10 = candidate("plain", 40, False), candidate("E10 0.5", 40, False)
    paired = candidate("R24 ReLU pairs", 120, True)
    chosen = decision.LayoutDecision("tflite", "LiteRT", paired, [plain, e10, paired], 0.25)
    line = layout_line(chosen, None, "out.tflite.json")
    assert line.startswith("INT8 layout: R24 ReLU pairs, chosen by LiteRT")
    assert "3.00× the plain network's MACs" in line and "0.25 dB" in line
    assert line.endswith("every candidate in out.tflite.json")
    chosen = decision.LayoutDecision("tflite", "LiteRT", e10, [plain, e10, paired], 0.25)
    line = layout_line(chosen, "ETDS", None)
    assert line == (
        "INT8 layout: E10 0.5, chosen by LiteRT; ETDS converted to its inference form first"
    )
