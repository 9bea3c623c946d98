"""Identity and average-pool branches summed with a conv, a pool after a conv, and the E4
carry's refusal (kill tests of the mutation pass; ``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import count_convs
from et.compiler.sequential import NO_COSTLIER
from et.testing import compare_outputs, probe_inputs


class Branches(nn.Module):
    def __init__(self, branch, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, groups=groups)
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.branch(x)


def _compiled(model: nn.Module, domain=(0.0, 1.0)) -> et.compiler.Compiled:
    torch.manual_seed(0)
    model = model.double().eval()
    example = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    compiled = et.compile(model, (example,), domain=domain)
    inputs = probe_inputs((3, 9, 7), domain=domain)
    report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
    assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


@pytest.mark.parametrize("groups", [1, 3])
def test_identity_branch_becomes_a_conv_of_the_same_groups(groups: int) -> None:
    compiled = _compiled(Branches(lambda x: x, groups))
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.rules_used() == {"R6": 1, "R3": 1}


POOLS = {
    "3/1/1": lambda x: F.avg_pool2d(x, 3, 1, 1),
    "kernel as list": lambda x: F.avg_pool2d(x, [3, 3], [1, 1], [1, 1]),
}


@pytest.mark.parametrize("groups", [1, 3])
def test_average_pool_branch_becomes_a_conv(groups: int) -> None:
    compiled = _compiled(Branches(POOLS["3/1/1"], groups))
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.rules_used() == {"R10": 1, "R3": 1}


def test_average_pool_branch_with_a_kernel_list_becomes_a_conv() -> None:
    compiled = _compiled(Branches(POOLS["kernel as list"]))
    assert count_convs(compiled.module) == 1


def test_pool_not_counting_the_padding_is_refused_and_named() -> None:
    pool = lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # noqa: E731
    compiled = _compiled(Branches(pool))
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.ops_after.get("avg_pool2d.default") == 1
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "R10"]
    assert refusal.precondition and refusal.detail


class PoolAfterConv(nn.Module):
    def __init__(self, shared: bool = False, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, groups=groups, bias=False)  # R7: exact with zero pad
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(self.conv(x), 3, 1, 1)
        return y * torch.sigmoid(y) if self.shared else y


def test_pool_after_a_conv_merges_into_it() -> None:
    """A depthwise 1×1 (3) under a 3×3 pool (3·9 = 27): one depthwise 3×3 (27) is cheaper."""
    compiled = _compiled(PoolAfterConv(groups=3))
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.rules_used().get("R10") == 1


def test_pool_after_a_dense_conv_stays_a_pool_when_merging_costs_more() -> None:
    """A dense 1×1 3 → 3 (9) under a 3×3 pool (27): one dense 3×3 would cost 81 > 36."""
    compiled = _compiled(PoolAfterConv(groups=1))
    assert count_convs(compiled.module) == 1
    assert compiled.certificate.ops_after.get("avg_pool2d.default") == 1
    assert [u.precondition for u in compiled.certificate.unfolded] == [NO_COSTLIER]


def test_pool_read_twice_after_a_conv_is_kept() -> None:
    compiled = _compiled(PoolAfterConv(shared=True))
    assert compiled.certificate.ops_after.get("avg_pool2d.default") == 1
    assert "R10" not in compiled.certificate.rules_used()


class Anchor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.body(x) + torch.repeat_interleave(x, 4, dim=1), 2)


def test_the_carry_on_a_signed_domain_is_refused_with_the_bound() -> None:
    compiled = _compiled(Anchor(), domain=(-1.0, 1.0))
    (refusal,) = [u for u in compiled.certificate.unfolded if u.rule == "E4"]
    assert refusal.precondition == "the carried input is ≥ 0 on the declared domain"
    assert refusal.detail == "its proven lower bound is -1.0"


def test_the_carry_on_a_shifted_domain_is_carried() -> None:
    compiled = _compiled(Anchor(), domain=(0.5, 1.0))
    assert compiled.certificate.rules_used().get("E4") == 1
    (applied,) = [a for a in compiled.certificate.applications if a.rule == "E4"]
    assert "the carried input is ≥ 0.5 on the declared domain" in applied.preconditions
    assert count_convs(compiled.module) == 2
