"""The rewrites of issue 26's expand-squeeze and partial-channel idioms, on small graphs:
R18 (``et/compiler/shifted_identity.py``), R19 (``crop_of_padding.py``), the partial-channel
concatenation (``partial_channels.py``) and the naming of joins no rule merges
(``unmerged_joins.py``). Each compiles a tiny module, checks what is left and what the
certificate says, against float64 outputs of the original."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import count_convs
from et.compiler.helpers import FAN_OUT
from et.compiler.unmerged_joins import CONSTANT_FACTOR, SAME_VALUE
from et.rules.crop_of_padding import EXACT_CROP
from et.testing import compare_outputs, probe_inputs
from tests.zoo.blocks import randomize


def _compile(model: nn.Module, channels: int, size: int = 7):
    model = randomize(model, torch.Generator().manual_seed(0)).double()
    compiled = et.compile(model, (torch.rand(1, channels, size, size, dtype=torch.float64),))
    inputs = probe_inputs((channels, size + 1, size), samples=4)
    report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


class ShiftedSum(nn.Module):
    """``conv(z + c') + z`` (the shift written as an addition), the sum in the other order."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, groups=3)
        self.shift = nn.Parameter(torch.ones(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(x)
        return z + self.conv(z + self.shift)


def test_shift_written_as_an_addition_and_the_sum_reversed_merge() -> None:
    compiled = _compile(ShiftedSum(), 3)
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.rules_used().get("R18") == 1


class OffCentreCrop(nn.Module):
    """A padded map cropped one pixel off its centre: no identity, kept and named."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, [1, 1, 1, 1], value=0.5)
        return self.conv(padded) + padded[:, :, 2:, 1:-1]


def test_crop_that_is_not_the_padding_is_refused_and_named() -> None:
    compiled = _compile(OffCentreCrop(), 2)
    refusals = [u for u in compiled.certificate.unfolded if u.rule == "R19"]
    assert [u.precondition for u in refusals] == [EXACT_CROP]
    assert "R19" not in compiled.certificate.rules_used()


class PaddedCentre(nn.Module):
    """``conv(P; valid) + P[…, 2:-2, 2:-2]`` for P zero-padded by 2: conv + identity."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, [2, 2, 2, 2])
        return self.conv(padded) + padded[:, :, 2:-2, 2:-2]


def test_zero_padded_centre_becomes_the_input_and_merges() -> None:
    compiled = _compile(PaddedCentre(), 2)
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.rules_used().get("R19") == 1


class MiddleWrite(nn.Module):
    """``x[:, 1:3] = conv(x[:, 1:3])`` on a copy: the channels on both sides are passed on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[:, 1:3] = self.conv(x[:, 1:3])
        return x


def test_conv_written_into_middle_channels_is_one_conv() -> None:
    compiled = _compile(MiddleWrite(), 5)
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.rules_used().get("R6") == 2  # the channels before and after
    assert set(compiled.certificate.ops_after) == {"conv2d.default"}


class NarrowWrite(nn.Module):
    """``x[:, :2] = conv(…)`` with a 1-channel conv: the copy broadcasts it, no concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[:, :2] = self.conv(x[:, :2])
        return x


def test_broadcast_write_is_left_as_it_is() -> None:
    compiled = _compile(NarrowWrite(), 4)
    assert "slice_scatter.default" in compiled.certificate.ops_after
    assert "R11" not in compiled.certificate.rules_used()


class PassedOnly(nn.Module):
    """A concatenation of slices alone (a channel permutation): no conv to merge into."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, 2:], x[:, :2]], 1)


def test_concatenation_without_a_conv_is_left_alone() -> None:
    compiled = _compile(PassedOnly(), 4)
    assert count_convs(compiled.module) == 0
    assert "R6" not in compiled.certificate.rules_used()


class Gated(nn.Module):
    """``relu(conv(x)) · σ(conv₂(x)) + x`` with a long skip shared by the gate's conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 2, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.a(x)) * torch.sigmoid(self.b(x)) + torch.relu(x)


def test_attention_and_a_sum_of_unrelated_values_are_named() -> None:
    compiled = _compile(Gated(), 2)
    named = {(u.op, u.rule, u.precondition) for u in compiled.certificate.unfolded}
    assert ("aten.mul.Tensor", "R13", CONSTANT_FACTOR) in named
    assert ("aten.sigmoid.default", "R13", CONSTANT_FACTOR) in named
    assert ("aten.add.Tensor", "R3", SAME_VALUE) in named


class SharedLongSkip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(2, 3, 3, padding=1)
        self.body = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return self.body(torch.relu(head)) + head


def test_long_skip_is_named_by_its_fan_out() -> None:
    compiled = _compile(SharedLongSkip(), 2)
    (skip,) = [u for u in compiled.certificate.unfolded if u.op == "aten.add.Tensor"]
    assert skip.rule == "R3" and skip.precondition == FAN_OUT
