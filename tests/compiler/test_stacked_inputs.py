"""stack_inputs: ``conv_a(u) + conv_b(v)`` on different inputs is one conv on ``[u; v]``.

Positive: different kernel sizes (R4 first), a 1×1 tiled-image anchor (SESR); each compiled
module is checked against the original in float64. Negative, each named in the certificate and
still verified: a conv that also feeds something else (fan-out), grouped convs and differing
dilations (E6's own checks), inputs of different spatial sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import count_convs
from et.compiler.helpers import FAN_OUT
from et.compiler.stacked_inputs import SAME_SIZE
from et.rules.merge_summed_convs import SHARED_GEOMETRY, SINGLE_GROUP
from et.testing import compare_outputs, probe_inputs


class TwoInputs(nn.Module):
    """``conv_a(ReLU(conv_u(x))) + conv_b(ReLU(conv_v(x)))``: the summed convs read two
    different values of one size (or not, with ``crop``)."""

    def __init__(self, a: nn.Conv2d, b: nn.Conv2d, fan_out: bool = False, crop: bool = False):
        super().__init__()
        self.u = nn.Conv2d(3, a.in_channels, 3, padding=1)
        self.v = nn.Conv2d(3, b.in_channels, 1)
        self.a, self.b, self.fan_out, self.crop = a, b, fan_out, crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = F.relu(self.u(x)), F.relu(self.v(x))
        if self.crop:
            v = v[:, :, 1:, 1:]
        a = self.a(u)
        y = a + self.b(v)
        return y + a.mean() if self.fan_out else y


def _compile(model: nn.Module, size: int = 8):
    torch.manual_seed(0)
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, size, size, dtype=torch.float64),))
    for shape in ((size, size), (size + 3, size + 2)):
        report = compare_outputs(
            model, compiled.module, probe_inputs((3, *shape)), dtype=torch.float64
        )
        assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


def _refusals(compiled, rule: str = "E6") -> list[str]:
    return [u.precondition for u in compiled.certificate.unfolded if u.rule == rule]


def test_summed_convs_on_two_inputs_become_one_conv_on_the_stack() -> None:
    torch.manual_seed(1)
    model = TwoInputs(nn.Conv2d(4, 5, 3, padding=1), nn.Conv2d(2, 5, 1))
    compiled = _compile(model)
    assert count_convs(compiled.module) == 3  # u, v and the stacked one
    assert compiled.certificate.ops_after.get("add.Tensor") is None
    assert compiled.certificate.ops_after.get("cat.default") == 1
    used = compiled.certificate.rules_used()
    assert used.get("E6") == 1 and used.get("R4") == 1, used


def test_a_conv_that_also_feeds_something_else_is_not_stacked() -> None:
    torch.manual_seed(2)
    model = TwoInputs(nn.Conv2d(4, 5, 3, padding=1), nn.Conv2d(2, 5, 3, padding=1), fan_out=True)
    compiled = _compile(model)
    assert count_convs(compiled.module) == 4
    assert FAN_OUT in _refusals(compiled)


def test_grouped_convs_are_not_stacked() -> None:
    torch.manual_seed(3)
    model = TwoInputs(nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Conv2d(2, 4, 3, padding=1))
    compiled = _compile(model)
    assert count_convs(compiled.module) == 4
    assert str(SINGLE_GROUP) in _refusals(compiled)


def test_convs_of_different_dilations_are_not_stacked() -> None:
    torch.manual_seed(4)
    model = TwoInputs(nn.Conv2d(4, 5, 3, padding=1), nn.Conv2d(2, 5, 3, padding=2, dilation=2))
    compiled = _compile(model)
    assert count_convs(compiled.module) == 4
    assert str(SHARED_GEOMETRY) in _refusals(compiled)


def test_inputs_of_different_sizes_are_not_stacked() -> None:
    """A stride-2 1×1 gives the same output size for H and H − 1 when H is even: the two
    inputs' channels cannot be stacked, whatever the convs."""
    torch.manual_seed(5)
    model = TwoInputs(nn.Conv2d(4, 5, 1, stride=2), nn.Conv2d(2, 5, 1, stride=2), crop=True)
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 8, 8, dtype=torch.float64),))
    report = compare_outputs(model, compiled.module, probe_inputs((3, 8, 8)), dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    assert count_convs(compiled.module) == 4
    assert SAME_SIZE in _refusals(compiled)
