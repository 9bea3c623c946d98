"""The cost guard of the sequential merges (R7, R8, R9, R14; :mod:`et.compiler.sequential`).

A pair ``second ∘ first`` costs ``m₂ + s_h·s_w·m₁`` multiply-adds per pixel of the second
conv's output (``m = C_out · C_in/g · k_h · k_w``, ``(s_h, s_w)`` the second conv's stride);
the merged conv costs its own ``m``. The merge is made only when it is no costlier (or a conv
on the same input, summed with the pair, is at least as dense). Every expected cost here is
written out by hand from the layers' shapes, never read from the compiled output.
"""

from __future__ import annotations

import math

import torch
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st
from torch import nn

import et
from et.compiler import count_convs
from et.compiler.sequential import NO_COSTLIER
from et.compiler.sizes import SizeError
from et.testing import compare_outputs, probe_inputs
from tests.zoo.fastvit import ConvFFN

F64 = torch.float64
SEQUENTIAL = {"R7", "R8", "R9", "R14"}


def _compile(model: nn.Module, channels: int, size: int = 9) -> et.compiler.Compiled:
    """Compile in float64 and require float64 equality at the example's size and another."""
    torch.manual_seed(0)
    model = model.double().eval()
    example = torch.rand(1, channels, size, size, dtype=F64)
    compiled = et.compile(model, (example,))
    for shape in ((channels, size, size), (channels, size + 2, size + 1)):
        try:
            report = compare_outputs(model, compiled.module, probe_inputs(shape), dtype=F64)
        except SizeError:  # a size outside the certificate's condition is refused, by design
            if shape[1:] == (size, size):
                raise
            continue
        assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


def _weights(compiled: et.compiler.Compiled) -> list[torch.Tensor]:
    """The weights of the compiled graph's convs, in graph order."""
    module = compiled.module
    weights = []
    for node in module.graph.nodes:
        if "conv" in str(node.target):
            weights.append(getattr(module, str(node.args[1].target)))
    return weights


def _cost_refusals(compiled: et.compiler.Compiled) -> list:
    return [u for u in compiled.certificate.unfolded if u.precondition == NO_COSTLIER]


def test_a_cheaper_merge_is_still_made() -> None:
    """1×1 expansion 4 → 16 then 3×3 16 → 4: 4·16 + 4·16·9 = 640 per pixel; merged 3×3
    4 → 4: 4·4·9 = 144."""
    model = nn.Sequential(nn.Conv2d(4, 16, 1, bias=False), nn.Conv2d(16, 4, 3, padding=1))
    compiled = _compile(model, 4)
    assert count_convs(compiled.module) == 1
    (applied,) = compiled.certificate.applications
    assert applied.rule == "R7" and NO_COSTLIER in applied.preconditions
    assert [w.numel() for w in _weights(compiled)] == [4 * 4 * 9]


def test_fastvit_ffn_depthwise_and_expansion_stay_two_convs() -> None:
    """FastViT's conv FFN at width 8: the depthwise 7×7 (8·49 = 392) and the 1×1 expansion
    8 → 16 (16·8 = 128) cost 520 per pixel; R14's dense 7×7 would cost 16·8·49 = 6272."""
    model = ConvFFN(8, 16)
    compiled = _compile(model, 8, size=10)
    spatial, expansion = 8 * 49, 16 * 8
    merged = 16 * 8 * 49
    assert [w.numel() for w in _weights(compiled)][:2] == [spatial, expansion]
    (refusal,) = _cost_refusals(compiled)
    assert refusal.rule == "R14"
    separate = expansion + spatial
    assert refusal.detail.startswith(
        f"merged {merged} > separate {separate} ({expansion} + 1·{spatial})"
    ), refusal.detail


def test_a_strided_second_conv_counts_the_first_conv_per_output_pixel() -> None:
    """3×3 3 → 4 then a stride-2 1×1 4 → 5: the 3×3 runs on 4 pixels per output pixel,
    4·(4·3·9) + 5·4 = 452 ≥ 5·3·9 = 135: merged; with 3 → 12 → 2 at stride 1 the merged
    3×3 (2·3·9 = 54) is cheaper too, and 3 → 2 → 12 at stride 1 (2·3·9 + 12·2 = 78 <
    12·3·9 = 324) is left."""
    strided = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 1, stride=2))
    assert count_convs(_compile(strided, 3).module) == 1
    bottleneck = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(2, 12, 1))
    compiled = _compile(bottleneck, 3)
    assert count_convs(compiled.module) == 2
    (refusal,) = _cost_refusals(compiled)
    assert refusal.detail.startswith(f"merged {12 * 3 * 9} > separate {2 * 3 * 9 + 12 * 2}")


class SummedWithDense(nn.Module):
    """``dense(x) + depthwise(pointwise(x))``: the pair alone would cost more merged
    (4·4 + 4·9 = 52 < 4·4·9 = 144), but R3 takes the merged 3×3 into a dense 3×3 branch
    (not into a 1×1 one, which it would make a 3×3)."""

    def __init__(self, dense_kernel: int) -> None:
        super().__init__()
        self.dense = nn.Conv2d(4, 4, dense_kernel, padding=dense_kernel // 2)
        self.pointwise = nn.Conv2d(4, 4, 1, bias=False)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x) + self.depthwise(self.pointwise(x))


def test_a_pair_beside_a_dense_branch_merges_into_it() -> None:
    compiled = _compile(SummedWithDense(3), 4)
    assert [w.numel() for w in _weights(compiled)] == [4 * 4 * 9]
    assert _cost_refusals(compiled) == []


def test_a_pair_beside_a_sparser_branch_is_left() -> None:
    """The branch beside it is a 1×1: merging would make it a 3×3, so the pair stays."""
    compiled = _compile(SummedWithDense(1), 4)
    assert count_convs(compiled.module) >= 2
    (refusal,) = _cost_refusals(compiled)
    assert refusal.detail.startswith(f"merged {4 * 4 * 9} > separate {4 * 9 + 4 * 4}")


def test_a_pool_before_a_pointwise_conv_stays_a_pool() -> None:
    """avg_pool 3×3 (as a depthwise conv 3·9 = 27) then 1×1 3 → 3 (9): 36 < 3·3·9 = 81."""
    model = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.Conv2d(3, 3, 1))
    compiled = _compile(model, 3)
    assert compiled.certificate.ops_after.get("avg_pool2d.default") == 1
    assert count_convs(compiled.module) == 1
    (refusal,) = _cost_refusals(compiled)
    assert refusal.detail.startswith(f"merged {3 * 3 * 9} > separate {3 * 3 + 3 * 9}")


@st.composite
def _pairs(draw) -> tuple[nn.Conv2d, nn.Conv2d]:
    """Two convs in a row: kernels 1–5, groups dividing both channel counts, strides 1–2,
    the second valid or 'same'-padded."""
    g1, g2 = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    cin = g1 * draw(st.integers(1, 3))
    mid = math.lcm(g1, g2) * draw(st.integers(1, 3))
    cout = g2 * draw(st.integers(1, 4))
    k1, k2 = draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3]))
    s1, s2 = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    p1, p2 = draw(st.sampled_from([0, k1 // 2])), draw(st.sampled_from([0, k2 // 2]))
    depthwise = draw(st.booleans())
    if depthwise:
        cin = mid = g1 = cin * 2  # depthwise first: groups = channels
    first = nn.Conv2d(cin, mid, k1, s1, p1, groups=g1, bias=draw(st.booleans()))
    second = nn.Conv2d(mid, cout, k2, s2, p2, groups=g2)
    return first, second


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(pair=_pairs(), seed=st.integers(0, 2**16))
@example(pair=(nn.Conv2d(8, 8, 7, padding=3, groups=8), nn.Conv2d(8, 16, 1)), seed=0)
@example(pair=(nn.Conv2d(3, 12, 1), nn.Conv2d(12, 3, 3, padding=1)), seed=1)
def test_every_sequential_merge_made_is_no_costlier_and_exact(pair, seed: int) -> None:
    first, second = pair
    torch.manual_seed(seed)
    for conv in pair:
        nn.init.normal_(conv.weight)
    compiled = _compile(nn.Sequential(first, second), first.in_channels, size=11)
    s_h, s_w = second.stride
    separate = second.weight.numel() + s_h * s_w * first.weight.numel()
    merges = [a for a in compiled.certificate.applications if a.rule in SEQUENTIAL]
    if merges:
        (merged,) = _weights(compiled)
        assert merged.numel() <= separate, (merged.shape, separate)
    for refusal in _cost_refusals(compiled):
        assert f"> separate {separate} " in refusal.detail, refusal.detail


def test_a_pool_after_a_conv_stays_a_pool_when_merging_costs_more() -> None:
    """3×3 3 → 3 (81) then a valid 3×3 average pool (3·9 = 27 as a depthwise conv, though
    written as a dense one to merge): 81 + 27 = 108 < one 5×5 3 → 3, 3·3·25 = 225."""
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.AvgPool2d(3, 1))
    compiled = _compile(model, 3)
    assert compiled.certificate.ops_after.get("avg_pool2d.default") == 1
    assert count_convs(compiled.module) == 1
    (refusal,) = _cost_refusals(compiled)
    assert refusal.detail.startswith(f"merged {3 * 3 * 25} > separate {3 * 9 + 3 * 3 * 9}")


def test_a_strided_pool_after_a_pointwise_conv_merges() -> None:
    """1×1 3 → 3 (9) under a 2×2 average pool of stride 2 (3·4 = 12): the 1×1 runs on 4
    pixels per output pixel, 12 + 4·9 = 48 ≥ one 2×2 stride-2 conv 3 → 3, 3·3·4 = 36."""
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.AvgPool2d(2, 2))
    compiled = _compile(model, 3, size=10)
    assert "avg_pool2d.default" not in compiled.certificate.ops_after
    assert [w.numel() for w in _weights(compiled)] == [3 * 3 * 4]
