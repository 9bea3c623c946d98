"""Equivalent-Transformation rewrites on the graph, what the certificate records for each, and
the near-misses left alone (kill tests of the mutation pass; ``mutation/survivors.txt`` names
each one)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler.helpers import FAN_OUT
from et.testing import compare_outputs, probe_inputs


class Forward(nn.Module):
    def __init__(self, forward, cin: int = 3, cout: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.other = nn.Conv2d(cin, cout, 1)
        self.body = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self, x)


def _compiled(forward, cin: int = 3, cout: int = 12) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = Forward(forward, cin, cout).double().eval()
    compiled = et.compile(model, (torch.rand(1, cin, 6, 6, dtype=torch.float64),))
    report = compare_outputs(model, compiled.module, probe_inputs((cin, 7, 5)), dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


def _applied(compiled: et.compiler.Compiled, rule: str):
    return [a for a in compiled.certificate.applications if a.rule == rule]


def test_clip_after_a_conv_records_both_nodes() -> None:
    compiled = _compiled(lambda m, x: torch.clamp(m.conv(x), 0.0, 0.5))
    (applied,) = _applied(compiled, "E2")
    assert applied.nodes == ("conv2d", "clamp")
    assert applied.preconditions[-1] == FAN_OUT


def test_nearest_upsampling_by_an_integer_becomes_a_shuffle() -> None:
    compiled = _compiled(lambda m, x: F.interpolate(m.conv(x), scale_factor=2))
    (applied,) = _applied(compiled, "E9")
    assert len(applied.nodes) == 1
    assert applied.preconditions[-1] == "equal integer scale factors on both axes"


def test_nearest_upsampling_by_unequal_factors_is_kept() -> None:
    compiled = _compiled(lambda m, x: F.interpolate(m.conv(x), scale_factor=(2.0, 3.0)))
    assert not _applied(compiled, "E9")


def test_nearest_upsampling_by_a_fraction_is_refused_and_named() -> None:
    compiled = _compiled(lambda m, x: F.interpolate(m.conv(x), scale_factor=1.5))
    assert not _applied(compiled, "E9")
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "E9"]
    assert refusal.precondition and refusal.detail


def test_sum_of_shuffles_is_one_shuffle() -> None:
    def forward(m, x):
        return F.pixel_shuffle(m.conv(x), 2) + F.pixel_shuffle(m.other(x), 2)

    compiled = _compiled(forward)
    (applied,) = _applied(compiled, "E6")
    assert applied.preconditions[-1] == "the same upscale factor on both"
    assert len(applied.nodes) == 5  # both convs, both shuffles, the sum
    # the 1×1 conv is embedded into 3×3 (R4) so that E6's shared-geometry check holds
    (embedded,) = [a for a in _applied(compiled, "R4") if a.nodes == applied.nodes[1:2]]
    assert all(c.checked == "transform" for c in embedded.checks)


def test_a_shuffle_read_twice_is_not_summed_away() -> None:
    def forward(m, x):
        shuffled = F.pixel_shuffle(m.conv(x), 2)
        return (shuffled + F.pixel_shuffle(m.other(x), 2)) * torch.sigmoid(shuffled)

    compiled = _compiled(forward)
    assert not _applied(compiled, "E6")


def test_rectifier_after_a_shuffle_moves_before_it() -> None:
    compiled = _compiled(lambda m, x: torch.relu(F.pixel_shuffle(m.conv(x), 2)))
    (applied,) = _applied(compiled, "E7")
    assert applied.preconditions[-1] == "the map is element-wise and channel-uniform"
    assert compiled.certificate.ops_after.get("pixel_shuffle.default") == 1


@pytest.mark.parametrize("dim", [1, -3])
def test_repeated_input_summed_with_a_conv_becomes_an_anchor_conv(dim: int) -> None:
    compiled = _compiled(lambda m, x: m.conv(x) + torch.repeat_interleave(x, 4, dim=dim))
    (applied,) = _applied(compiled, "E3")
    assert len(applied.nodes) == 1
    assert applied.preconditions[-1] == "PyTorch PixelShuffle (interleaved) channel order"


def test_input_repeated_along_another_axis_is_no_anchor() -> None:
    def forward(m, x):
        return m.conv(x) + torch.repeat_interleave(x, 4, dim=2)[..., ::4, :].repeat(1, 4, 1, 1)

    compiled = _compiled(forward)
    # the repeat along the rows is no anchor; the channel tiling after it is (tiled order)
    applied = _applied(compiled, "E3")
    assert [a.nodes for a in applied] == [("repeat",)]
    assert "tiled" in applied[0].preconditions[-1]


def test_one_channel_input_broadcast_onto_a_conv_becomes_an_anchor_conv() -> None:
    compiled = _compiled(lambda m, x: m.conv(x) + x, cin=1, cout=4)
    assert len(_applied(compiled, "E3")) == 1
