"""The R24 INT8 candidate: every PReLU layer as ReLU channel pairs. Exact in float64 on the
released ECBSR forms, only fused activations left, and ECBSR's ET form brought within 1 dB of
the original's simulated INT8 fidelity (it is ~12 dB behind as released, ~1.2 dB with E11)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import fx, nn

from et.testing import compare_outputs, probe_inputs
from examples.user_sr_net import build as build_user_net
from reference_models import ECBSRET, load_checkpoint
from reference_models.deploy.compiled_network import CompiledNetwork, compile_network
from reference_models.deploy.int8.calibration import calibration_images, calibration_tiles
from reference_models.deploy.int8.decision import layout_candidates
from reference_models.deploy.int8.graph_chains import graph_constant
from reference_models.deploy.int8.int8_layout import LayoutError, chain_links
from reference_models.deploy.int8.relu_pairs import (
    graph_has_prelu_layers,
    graph_relu_pair_candidate,
    graph_relu_pair_form,
    has_prelu_layers,
    relu_pair_form,
)
from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db
from tests.export.chain_simulation import simulated_fidelity_db

CHECKPOINTS = ("ECBSR_M4C16_x2.pth", "ECBSR_ET_M4C16_x2.pth")


def _chain(model: nn.Module) -> list[tuple[nn.Conv2d, nn.Module]]:
    return [(link.conv, link.activation) for link in chain_links(model)]


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_relu_pair_form_of_a_released_model_is_exact_and_has_only_relus(
    shared_dir: Path, name: str
) -> None:
    model = load_checkpoint(shared_dir / "official/checkpoints" / name).double().eval()
    paired = relu_pair_form(model)
    activations = [link.activation for link in chain_links(paired)[:-1]]
    assert all(isinstance(a, nn.ReLU) for a in activations)
    assert not has_prelu_layers(paired) and has_prelu_layers(model)
    x = probe_inputs((3, 16, 16), samples=3, seed=1)
    assert compare_outputs(model, paired, x).max_abs_error < 1e-12
    # the learned channels are doubled, the ET form's slope-0 channels (carried image, padding)
    # are not
    before = [link.conv.out_channels for link in chain_links(model)]
    after = [link.conv.out_channels for link in chain_links(paired)]
    extra = 4 if "ET" in name else 0
    assert after[:-2] == [2 * (c - extra) + extra for c in before[:-2]]


def test_layers_that_cannot_take_r24_are_refused() -> None:
    model = ECBSRET(3, 3, 2, 2, 8, act_type="prelu")
    with torch.no_grad():
        model.backbone[0][1].weight[0] = float("inf")
    with pytest.raises(LayoutError, match="finite"):
        relu_pair_form(model)
    assert not has_prelu_layers(nn.Sequential(nn.Conv2d(3, 3, 3)))  # no chain: no PReLU layer


def test_relu_pairs_bring_ecbsr_et_within_one_db_of_the_original_in_simulated_int8(
    shared_dir: Path,
) -> None:
    images = calibration_images(shared_dir / "data/Set5", 2, 48, 48, tiles_per_image=1)
    checkpoints = shared_dir / "official/checkpoints"
    original = load_checkpoint(checkpoints / "ECBSR_M4C16_x2.pth").eval()
    et_form = load_checkpoint(checkpoints / "ECBSR_ET_M4C16_x2.pth").eval()
    original_db = simulated_fidelity_db(_chain(original), images)
    released_db = simulated_fidelity_db(_chain(et_form), images)
    candidates = layout_candidates(et_form, images)
    paired = next(c for c in candidates if c.name == "R24 ReLU pairs")
    paired_db = simulated_int8_fidelity_db(paired.model, images)
    assert paired.report.relu_pairs and paired.report.max_abs_error < 1e-4
    assert released_db < original_db - 5  # the problem: the carried image gets a few levels
    assert paired_db > original_db - 1.0, (original_db, released_db, paired_db)


def test_candidates_offer_the_pair_form_only_where_there_are_prelu_layers(
    shared_dir: Path,
) -> None:
    images = calibration_images(shared_dir / "data/Set5", 3, 24, 24, tiles_per_image=1)[:2]
    abpn = load_checkpoint(shared_dir / "official/checkpoints/ABPN_ET_M4C28_x3.pth").eval()
    names = [candidate.name for candidate in layout_candidates(abpn, images)]
    assert "R24 ReLU pairs" not in names and names[0] == "plain"
    ecbsr = ECBSRET(3, 3, 2, 2, 8, act_type="prelu").eval()
    candidates = layout_candidates(ecbsr, images)
    paired = next(c for c in candidates if c.name == "R24 ReLU pairs")
    assert paired.report.relu_pairs
    x = probe_inputs((3, 12, 12), samples=2, seed=2)
    assert compare_outputs(ecbsr, paired.model, x, weights64=False).max_abs_error < 1e-4


def test_calibration_tiles_cut_frames_and_keep_small_images() -> None:
    frame = torch.arange(2 * 3 * 130 * 200, dtype=torch.float32).reshape(2, 3, 130, 200)[:1]
    tiles = calibration_tiles([frame], 64, per_image=4)
    assert len(tiles) == 4 and all(t.shape == (1, 3, 64, 64) for t in tiles)
    # each tile is the frame's own pixels at its corner
    corners = {(int(t[0, 0, 0, 0]) // 200, int(t[0, 0, 0, 0]) % 200) for t in tiles}
    assert all(r % 64 == 0 and c % 64 == 0 for r, c in corners) and len(corners) == 4
    small = [torch.zeros(1, 3, 48, 48), torch.zeros(1, 3, 48, 48)]
    assert calibration_tiles(small, 64) == small


def _compiled(model: nn.Module) -> CompiledNetwork:
    return compile_network(model.eval(), colors=3, height=16, width=16, label="test")


def _graph_activations(program: fx.GraphModule) -> list[str]:
    aten = torch.ops.aten
    names = {aten.relu.default: "relu", aten.prelu.default: "prelu"}
    names[aten.leaky_relu.default] = "leaky_relu"
    return [names[n.target] for n in program.graph.nodes if n.target in names]


def _conv_out_channels(program: fx.GraphModule) -> list[int]:
    convs = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    return [
        int(graph_constant(program, n.args[1]).shape[0])
        for n in program.graph.nodes
        if n.target in convs
    ]


def _nonzero_slopes(program: fx.GraphModule) -> int:
    """The channels R24 doubles: the non-zero slopes of the graph's per-channel PReLUs."""
    prelus = [n for n in program.graph.nodes if n.target is torch.ops.aten.prelu.default]
    return sum(int((graph_constant(program, n.args[1]) != 0).sum()) for n in prelus)


class _LeakyNet(nn.Module):
    """A third-party net: conv → LeakyReLU → conv → PReLU (one shared slope) → conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 5, 3, padding=1)
        self.c = nn.Conv2d(5, 3, 3, padding=1)
        self.leaky, self.prelu = nn.LeakyReLU(0.2), nn.PReLU(1, init=-0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.prelu(self.b(self.leaky(self.a(x)))))


@pytest.mark.parametrize(
    "make",
    [lambda: ECBSRET(3, 3, 2, 2, 8, act_type="prelu"), build_user_net, _LeakyNet],
    ids=["ECBSRET", "user_sr_net", "leaky"],
)
def test_r24_on_a_compiled_graph_is_exact_and_leaves_only_relus(make) -> None:
    torch.manual_seed(0)
    model = make().eval()
    network = _compiled(model)
    program = network.program
    assert graph_has_prelu_layers(program)
    paired = graph_relu_pair_form(program)
    assert set(_graph_activations(paired)) == {"relu"}
    assert not graph_has_prelu_layers(paired)
    x = probe_inputs((3, 11, 13), samples=3, seed=4)
    # the rewrite ran in float64; what is returned holds the weights in float32
    gap = compare_outputs(program, paired, x, dtype=torch.float64, weights64=False)
    assert gap.max_abs_error <= 1e-6 * max(gap.scale, 1.0)
    assert (
        compare_outputs(model, CompiledNetwork(paired, colors=3, arch="p"), x).max_abs_error < 1e-4
    )
    before, after = _conv_out_channels(program), _conv_out_channels(paired)
    if make is _LeakyNet:  # every slope is non-zero: each hidden layer doubles
        assert before == [6, 5, 3] and after == [12, 10, 3]
    else:  # one more channel per non-zero slope (ECBSR-ET's 4 slope-0 channels are not doubled)
        assert sum(after) - sum(before) == _nonzero_slopes(program) > 0


def test_r24_on_a_graph_refuses_an_infinite_slope_and_leaves_the_input_alone() -> None:
    network = _compiled(ECBSRET(3, 3, 2, 2, 8, act_type="prelu"))
    program = network.program
    prelu = next(n for n in program.graph.nodes if n.target is torch.ops.aten.prelu.default)
    slopes = getattr(program, prelu.args[1].target)
    with torch.no_grad():
        slopes[0] = float("inf")
    kept = [t.clone() for t in program.state_dict().values()]
    with pytest.raises(LayoutError, match="finite"):
        graph_relu_pair_form(program)
    assert all(torch.equal(a, b) for a, b in zip(kept, program.state_dict().values(), strict=True))
    assert "prelu" in _graph_activations(program)


def test_a_relu_only_graph_gets_no_r24_candidate() -> None:
    relu_net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)
    )
    network = _compiled(relu_net)
    images = [probe_inputs((3, 8, 8), samples=1, seed=5)]
    assert not graph_has_prelu_layers(network.program)
    assert graph_relu_pair_candidate(network, images, strengths=(0.0, 1.0)) is None


def test_a_compiled_prelu_network_gets_the_r24_candidate_in_the_decision() -> None:
    from reference_models.deploy.int8.decision import layout_candidates

    user = build_user_net(channels=8, blocks=2).eval()
    network = _compiled(user)
    images = [probe_inputs((3, 12, 12), samples=1, seed=s) for s in (6, 7)]
    candidates = layout_candidates(network, images, strengths=(0.0, 0.5))
    paired = next(c for c in candidates if c.name == "R24 ReLU pairs")
    assert paired.report.relu_pairs and isinstance(paired.model, CompiledNetwork)
    assert set(_graph_activations(paired.model.program)) == {"relu"}
    x = probe_inputs((3, 12, 12), samples=2, seed=8)
    assert compare_outputs(user, paired.model, x, weights64=False).max_abs_error < 1e-4
