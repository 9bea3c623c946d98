"""Exact input copies in a conv chain (``deploy/int8/input_copies.py``) and the INT8 layout's use of
them: the ET forms' carried RGB channels are found with their exact bound, nothing else is."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from et.testing import probe_inputs
from reference_models import ABPN, ECBSRT
from reference_models.conversions import convert
from reference_models.deploy.int8.input_copies import input_copy_bounds
from reference_models.deploy.int8.int8_layout import chain_links
from reference_models.deploy.int8.layout import HEADROOM, graph_layout, plan_layout
from reference_models.deploy.int8.network_form import layout_network
from tests.export.probe_images import probe_images


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def _et(name: str) -> nn.Module:
    original = {
        "ABPN": lambda: ABPN(num_feat=6, num_block=1, scale=2, num_in_ch=3),
        "ECBSR": lambda: ECBSRT(3, 3, 2, 1, 6, act_type="prelu"),
    }[name]()
    return convert(_randomize(original, seed=5)).double().eval()


def _chain(model: nn.Module) -> list[tuple[nn.Conv2d, nn.Module]]:
    return [(link.conv, link.activation) for link in chain_links(model)]


@pytest.mark.parametrize("name", ["ABPN", "ECBSR"])
def test_the_carried_rgb_of_an_et_form_is_found_and_bounded(name: str) -> None:
    model = _et(name)
    chain = _chain(model)
    bounds = input_copy_bounds(chain)
    assert all(int((b > 0).sum()) == 3 for b in bounds[:-1])  # the three colours, every layer
    x = probe_inputs((3, 10, 10), samples=3, seed=1)  # in [0, 1], with 0s and 1s
    with torch.no_grad():
        for (conv, activation), bound in zip(chain, bounds, strict=False):
            x = activation(conv(x))
            copies = (bound > 0).nonzero().flatten()
            if copies.numel() == 0:  # the layer that adds the image to the features
                continue
            values = x[:, copies]
            assert float(values.min()) >= 0
            assert (values.amax(dim=(0, 2, 3)) <= bound[copies] * (1 + 1e-12)).all()
            # A bound is reached: the probes hold a pure-white image.
            assert torch.allclose(values.amax(dim=(0, 2, 3)), bound[copies])


@pytest.mark.parametrize(
    "spoil",
    [
        lambda conv, c, j: conv.bias.__setitem__(c, 0.01),  # a bias: no longer w·x
        lambda conv, c, j: conv.weight.__setitem__((c, j, 0, 0), 0.5),  # a tap off the centre
        lambda conv, c, j: conv.weight.__setitem__((c, j, 1, 1), -1.0),  # a negative copy
        lambda conv, c, j: conv.weight.__setitem__((c, (j + 1) % 3, 1, 1), 0.5),  # two sources
    ],
)
def test_a_row_that_is_not_an_exact_copy_is_not_counted(spoil) -> None:
    model = copy.deepcopy(_et("ABPN"))
    conv = _chain(model)[0][0]
    bounds = input_copy_bounds(_chain(model))
    c = int((bounds[0] > 0).nonzero()[0])
    j = int(conv.weight[c, :, 1, 1].nonzero()[0])
    with torch.no_grad():
        spoil(conv, c, j)
    spoiled = input_copy_bounds(_chain(model))
    assert spoiled[0][c] == 0 and spoiled[1][c] == 0  # and nothing that reads it downstream


def test_layout_gives_copies_the_range_and_the_rest_headroom() -> None:
    model = _et("ABPN")
    images = probe_images(3, 12)
    network, _ = layout_network(model, images)
    laid_out, _ = graph_layout(network.program, images, strength=1.0)
    plan = plan_layout(laid_out, images, strength=0.0)
    (bounds,) = plan.copy_bounds
    for k, ranges in enumerate(plan.ranges[0][:-1]):
        copies, live = bounds[k] > 0, ranges > 1e-12
        top = float(bounds[k][copies].max())
        assert torch.allclose(bounds[k][copies], torch.full_like(bounds[k][copies], top))
        others = ranges[live & ~copies]
        assert torch.allclose(others, torch.full_like(others, HEADROOM * top))


def test_exact_copies_can_be_turned_off_and_both_layouts_stay_exact() -> None:
    """The export measures both in LiteRT (one was measured better on ABPN-ET, the other on
    ETDS-M ET): without ``exact_copies`` the copies are scaled by their calibration range."""
    model = _et("ABPN")
    images = probe_images(3, 10)
    network, _ = layout_network(model, images)
    exact_graph, exact_report = graph_layout(network.program, images, strength=1.0)
    calibrated_graph, report = graph_layout(
        network.program, images, strength=1.0, exact_copies=False
    )
    exact, calibrated = network.with_program(exact_graph), network.with_program(calibrated_graph)
    assert (
        exact_report.input_copies == report.input_copies == 3 * (len(chain_links(model)) - 2)
    )  # not in the image layer
    assert exact_report.exact_copies and not report.exact_copies
    x = probe_inputs((3, 9, 9), samples=3, seed=4)
    with torch.no_grad():
        assert torch.allclose(calibrated(x), model(x), rtol=0, atol=1e-9)
        assert torch.allclose(exact(x), model(x), rtol=0, atol=1e-9)
    exact_steps, calibrated_steps = (
        plan_layout(graph, images, strength=0.0).steps[0]
        for graph in (exact_graph, calibrated_graph)
    )
    differs = [
        not torch.equal(a.weight, b.weight)
        for (a, _), (b, _) in zip(exact_steps, calibrated_steps, strict=True)
    ]
    assert any(differs)  # the copies' α changed
