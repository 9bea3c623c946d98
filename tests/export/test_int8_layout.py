"""The INT8 layout of our architectures through the one graph path (compiled, then E10 from the
calibration ranges): exact in float64, evens out the ranges, refuses what it cannot lay out,
raises the simulated INT8 fidelity of a released ET form, and its refinement never lowers it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from et.testing import compare_outputs, probe_inputs
from reference_models import ABPN_ET, ECBSRET, ETDSForInference, load_checkpoint
from reference_models.architectures.espcn import ESPCN
from reference_models.deploy.int8.calibration import calibration_images
from reference_models.deploy.int8.decision import layout_candidates
from reference_models.deploy.int8.graph_chains import graph_constant
from reference_models.deploy.int8.layout import LayoutError, graph_layout, plan_layout
from reference_models.deploy.int8.network_form import layout_network, module_layout
from reference_models.deploy.int8.refinement import refine_layout
from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db
from tests.export.probe_images import probe_images
from tests.export.scaled_weights import randomize_scaled

MODELS = {
    "ETDSForInference": lambda: ETDSForInference(3, 3, 3, 2, 8, 3, align=4),
    "ABPN_ET": lambda: ABPN_ET(num_feat=8, num_block=2, scale=2, num_in_ch=3),
    "ECBSRET": lambda: ECBSRET(3, 3, 2, 2, 8, act_type="prelu"),
}


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    return randomize_scaled(model, seed, gain=0.5)


def _images(count: int = 3, size: int = 12) -> list[torch.Tensor]:
    return probe_images(count, size, dtype=torch.float32)


def _constants(program: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    return {
        str(node.target): graph_constant(program, node).clone()
        for node in program.graph.nodes
        if node.op == "get_attr" and graph_constant(program, node) is not None
    }


@pytest.mark.parametrize("name", list(MODELS))
def test_layout_is_exact_in_float64_and_evens_the_ranges(name: str) -> None:
    model = _randomize(MODELS[name](), seed=1).double()  # float64 in, float64 out: exact
    images = [image.double() for image in _images()]
    network, _ = layout_network(model, images)
    before = _constants(network.program)
    laid_out, report = graph_layout(network.program, images, strength=1.0)
    for x in [probe_inputs((3, 9, 14), samples=2, seed=7), *images]:
        gap = compare_outputs(model, network.with_program(laid_out), x)
        assert gap.max_abs_error <= 1e-12 * (1 + gap.max_abs_error / max(gap.max_rel_error, 1e-300))
    after = _constants(network.program)  # the input graph is untouched
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # With strength 1 every live channel of every hidden layer now spans its layer's range.
    for ranges in plan_layout(laid_out, images, strength=0.0).ranges[0]:
        live = ranges[ranges > 1e-12]
        assert float(live.max() / live.min()) == pytest.approx(1.0, rel=1e-6)
    assert max(report.spreads_before) > 1.5  # there was something to even out


def test_strength_zero_changes_nothing() -> None:
    model = _randomize(MODELS["ABPN_ET"](), seed=2)
    network, _ = layout_network(model, _images())
    laid_out, _ = graph_layout(network.program, _images(), strength=0.0)
    before, after = _constants(network.program), _constants(laid_out)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_unsupported_models_are_refused() -> None:
    # ESPCN (tanh between its convs) has no chain on its graph; it is not converted (no ET
    # conversion; the ETDS training form is: tests/export/test_training_form_int8.py)
    with pytest.raises(LayoutError, match="no conv → activation → conv chain"):
        layout_candidates(ESPCN(3, 2, 8, 4).eval(), _images())
    with pytest.raises(LayoutError, match="calibration"):
        layout_candidates(MODELS["ABPN_ET"]().eval(), [])


def test_a_non_homogeneous_activation_ends_the_chain() -> None:
    model = _randomize(ECBSRET(3, 3, 2, 2, 4, act_type="prelu"), seed=4).eval()
    model.backbone[1][1] = nn.Sigmoid()  # σ(αt) ≠ ασ(t): E10 must not cross it
    network, _ = layout_network(model, _images())
    plan = plan_layout(network.program, _images(), strength=1.0)
    sigmoid = torch.ops.aten.sigmoid.default
    read = [node.args[0] for node in network.program.graph.nodes if node.target is sigmoid]
    assert len(read) == 1
    # the conv the sigmoid reads may end a chain (its output left alone) but never scale
    rescaled = {step.conv for chain in plan.chains for step in chain[:-1]}
    assert read[0] not in rescaled and plan.chains  # the rest of the network is still laid out
    laid_out, _ = graph_layout(network.program, _images(), strength=1.0)
    x = probe_inputs((3, 9, 14), samples=2, seed=7)
    gap = compare_outputs(model, network.with_program(laid_out), x, weights64=False)
    assert gap.max_abs_error <= 1e-5 * max(gap.scale, 1.0)


def test_layout_raises_simulated_int8_fidelity_of_a_released_et_form(shared_dir: Path) -> None:
    model = load_checkpoint(shared_dir / "official/checkpoints/ABPN_ET_M4C28_x3.pth").eval()
    images = calibration_images(shared_dir / "data/Set5", 3, 32, 32, tiles_per_image=1)
    candidates = layout_candidates(model, images)
    scores = {c.name: simulated_int8_fidelity_db(c.model, images) for c in candidates}
    assert max(scores.values()) >= scores["plain"] + 1.0


def test_refinement_is_exact_and_never_lowers_the_simulated_fidelity() -> None:
    model = _randomize(MODELS["ECBSRET"](), seed=3).double()
    images = [image.double() for image in _images()]
    network, _ = layout_network(model, images)
    start = network.with_program(graph_layout(network.program, images, strength=0.5)[0])
    start_db = simulated_int8_fidelity_db(start, images)
    refined, report = refine_layout(start, images)
    assert report.refined_db is not None and report.refined_db > start_db
    for x in [probe_inputs((3, 9, 14), samples=2, seed=7), *images]:
        gap = compare_outputs(model, refined, x)
        assert gap.max_abs_error <= 1e-12 * (1 + gap.max_abs_error / max(gap.max_rel_error, 1e-300))
    # The figure is the returned network's own: simulate it again from scratch.
    assert simulated_int8_fidelity_db(refined, images) == pytest.approx(report.refined_db, abs=1e-9)


def test_refinement_is_a_candidate_only_when_asked() -> None:
    model = _randomize(MODELS["ECBSRET"](), seed=3)
    names = [candidate.name for candidate in layout_candidates(model, _images())]
    assert not any("refined" in name for name in names)
    candidates = layout_candidates(model, _images(), refine=True)
    refined = [c for c in candidates if "refined" in c.name]
    assert len(refined) == 1 and refined[0].simulated_db == refined[0].report.refined_db
    others = [c.simulated_db for c in candidates if c.report is not None and c not in refined]
    assert refined[0].simulated_db >= max(others)  # it starts from the best and never lowers it


def test_the_graph_layout_is_written_back_into_the_module_it_came_from() -> None:
    """``etds convert --int8-layout`` writes a checkpoint: the module must hold the layout."""
    model = _randomize(MODELS["ABPN_ET"](), seed=6).eval()
    images = _images()
    network, _ = layout_network(model, images)
    laid_out = network.with_program(graph_layout(network.program, images, strength=1.0)[0])
    written = module_layout(model, network, laid_out)
    assert type(written) is type(model)
    pairs = list(zip(model.parameters(), written.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in pairs)  # rescaled …
    x = probe_inputs((3, 9, 14), samples=2, seed=7)
    gap = compare_outputs(model, written, x, weights64=False)
    assert gap.max_abs_error <= 1e-5 * max(gap.scale, 1.0)  # … the same function
    # another module's parameters do not hold the graph's constants: refused, naming them
    other = _randomize(MODELS["ABPN_ET"](), seed=7).eval()
    with pytest.raises(LayoutError, match="0 parameters of the module hold it"):
        module_layout(other, network, laid_out)
