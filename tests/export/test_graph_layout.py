"""The INT8 layout on the compiled graph: our architectures go through it like any network and
get the factors computed from their own chain's ranges, exact in float64; the layout applies
only where E10 holds (a tensor with a second reader, or a non-homogeneous map, is no chain)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import et
from et.testing import compare_outputs, probe_inputs
from reference_models import ABPN_ET, ECBSRET, ETDSForInference, load_checkpoint
from reference_models.deploy.int8.calibration import calibration_images
from reference_models.deploy.int8.graph_chains import conv_chains
from reference_models.deploy.int8.input_copies import input_copy_bounds
from reference_models.deploy.int8.int8_layout import chain_links
from reference_models.deploy.int8.layout import (
    LayoutError,
    channel_alphas,
    graph_layout,
    plan_layout,
)
from reference_models.deploy.int8.network_form import layout_network
from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db
from tests.export.chain_simulation import channel_ranges, simulated_fidelity_db
from tests.export.probe_images import probe_images
from tests.export.scaled_weights import randomize_scaled

MODELS = {
    "ETDSForInference": lambda: ETDSForInference(3, 3, 3, 2, 8, 3, align=4),
    "ABPN_ET": lambda: ABPN_ET(num_feat=8, num_block=2, scale=2, num_in_ch=3),
    "ECBSRET": lambda: ECBSRET(3, 3, 2, 2, 8, act_type="prelu"),
}


def _compiled(model: nn.Module) -> torch.fx.GraphModule:
    return et.compile(model, (probe_inputs((3, 16, 16), samples=1, seed=3),)).module


def _steps(model: nn.Module) -> list[tuple[nn.Conv2d, nn.Module]]:
    return [(link.conv, link.activation) for link in chain_links(model)]


@pytest.mark.parametrize("name", list(MODELS))
def test_our_architectures_are_laid_out_on_their_graph_with_the_expected_factors(
    name: str,
) -> None:
    model = randomize_scaled(MODELS[name](), 1, gain=0.5).eval()
    images = probe_images(3, 12, dtype=torch.float32)
    network, converted_from = layout_network(model, images)  # compiled: the one code path
    assert converted_from is None and network is not model
    program = network.program
    # the expected factors, from the module's own chain run in float64 (tests/export/
    # chain_simulation.py), not from the graph
    steps = _steps(model)
    ranges = channel_ranges(steps, images)
    for strength in (0.5, 1.0):
        plan = plan_layout(program, images, strength=strength)
        expected = [
            channel_alphas(r, strength, b)
            for r, b in zip(ranges, input_copy_bounds(steps), strict=True)
        ]
        assert len(plan.chains) == 1 and len(plan.alphas[0]) == len(expected)
        for graph_alpha, alpha in zip(plan.alphas[0], expected, strict=True):
            torch.testing.assert_close(graph_alpha, alpha, rtol=1e-12, atol=0.0)
    laid_out, report = graph_layout(program, images, strength=1.0)
    assert max(report.spreads_before) > 1.5  # there was something to even out
    for x in [probe_inputs((3, 9, 14), samples=2, seed=7), *images]:
        # graph_layout checked its float64 result to 1e-9; what is returned holds the new
        # weights in the program's float32, one rounding each; and it is the module's function
        gap = compare_outputs(program, laid_out, x, dtype=torch.float64, weights64=False)
        assert gap.max_abs_error <= 1e-6 * max(gap.scale, 1.0)
        gap = compare_outputs(model, network.with_program(laid_out), x, weights64=False)
        assert gap.max_abs_error <= 1e-5 * max(gap.scale, 1.0)
    # the laid-out graph's own ranges are even: every live channel spans its layer's range
    for ranges in plan_layout(laid_out, images, strength=0.0).ranges[0]:
        live = ranges[ranges > 1e-9]
        assert float(live.max() / live.min()) == pytest.approx(1.0, rel=1e-5)


def test_graph_simulation_equals_the_chain_simulation_on_a_chain(shared_dir: Path) -> None:
    # a released ET form: its outputs stay in [0, 1], where the exported clamp changes nothing
    model = load_checkpoint(shared_dir / "official/checkpoints/ECBSR_ET_M4C16_x2.pth").eval()
    images = calibration_images(shared_dir / "data/Set5", 2, 24, 24, tiles_per_image=1)
    # two implementations: modules walked in order, and the exported ATen graph interpreted
    assert simulated_int8_fidelity_db(model, images) == pytest.approx(
        simulated_fidelity_db(_steps(model), images), abs=1e-6
    )


class _FanOut(nn.Module):
    """conv → ReLU read by a conv *and* by the output: scaling that tensor changes the output."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.first(x))
        return self.second(hidden) * hidden  # a product: no rule folds it away


class _Tanh(nn.Module):
    """conv → tanh → conv: tanh(αt) ≠ α·tanh(t)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(self.first(x)))


@pytest.mark.parametrize("network", [_FanOut, _Tanh])
def test_no_chain_where_e10_would_change_the_function(network: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model = network().eval().double()
    x = probe_inputs((3, 8, 8), samples=2, seed=1)
    # the two sides differ: channel 0 of the hidden tensor ×2, the reading column ÷2
    scaled = network().eval().double()
    scaled.load_state_dict(model.state_dict())
    assert torch.equal(scaled(x), model(x))
    with torch.no_grad():
        scaled.first.weight[0] *= 2
        scaled.first.bias[0] *= 2
        scaled.second.weight[:, 0] /= 2
        assert (scaled(x) - model(x)).abs().max() > 1e-3
    program = _compiled(model.float())
    assert conv_chains(program) == []
    with pytest.raises(LayoutError, match="no conv → activation → conv chain"):
        graph_layout(program, probe_images(2, 8, dtype=torch.float32), strength=1.0)
