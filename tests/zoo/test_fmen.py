"""FMEN (Du et al. 2022) through et.compile: each block folds to its deploy form (issue 26).

RRRB: 1×1 expand, bias ring, 3×3 with the inner residual, 1×1 squeeze, outer residual → one
3×3 (R18 merges the inner residual, G3 the shift, R7 the 1×1, R9 the squeeze, R6 + R3 the
outer residual). The linear chain in general (stride 2, groups, depthwise, kernels 5, 7, 13,
C_in ≠ C_out) folds to one K×K. HFAB keeps its attention product and gate, named in
``certificate.unfolded``; the whole network keeps its long skip, named too. Hypothesis draws the
weights and BatchNorm statistics (a seed), widths and sizes; every case is checked in float64
(≤ 1e-9 relative) at two sizes and in float32 at two sizes (one other than the example's).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from et.compiler import count_convs
from et.compiler.helpers import FAN_OUT
from et.compiler.sequential import NO_COSTLIER
from et.compiler.unmerged_joins import CONSTANT_FACTOR
from et.rules.merge_1x1_kxk import BORDER_CONDITION
from tests.zoo import fmen
from tests.zoo.blocks import randomize
from tests.zoo.deploy_form import DeployForm, check_deploy_form

aten = torch.ops.aten


def _refusals(compiled, rule: str) -> list:
    return [u for u in compiled.certificate.unfolded if u.rule == rule]


QUICK = settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])


@pytest.mark.parametrize(
    ("padding", "kernel", "crop"),
    [("strips", 3, False), ("shift", 3, False), ("shift", 5, False), ("strips", 3, True)],
)
@QUICK
@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([1, 3, 4]), size=st.integers(6, 9))
def test_rrrb_folds_to_one_conv(
    padding: str, kernel: int, crop: bool, seed: int, channels: int, size: int
) -> None:
    block = fmen.RRRB(channels, kernel=kernel, padding=padding, centre_crop=crop)
    model = randomize(block, torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(
        model, (channels, size, size), DeployForm(1), (size + 1, size + 2), exact=True
    )
    used = compiled.certificate.rules_used()
    assert used.get("R18") == 1 and used.get("R7") == 1
    assert used.get("R19") == (1 if crop else None)
    assert compiled.certificate.unfolded == []


CHAINS = {
    # (cin, cout, wide, kernel, stride, groups, inner identity)
    "stride2_in_ne_out": (3, 5, 6, 3, 2, 1, False),
    "grouped_k5": (4, 2, 6, 5, 1, 2, True),
    "depthwise_k7": (2, 3, 4, 7, 1, 4, True),
    "depthwise_stride2": (3, 3, 6, 3, 2, 6, False),
    "depthwise_k13": (2, 3, 4, 13, 1, 4, True),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
@QUICK
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(7, 10))
def test_expand_squeeze_chain_folds_to_one_conv(name: str, seed: int, size: int) -> None:
    """One K×K where that costs no more multiply-adds per output pixel than the chain (the
    expansion counted s² times under a stride-s K×K); else the three convs stay, named."""
    cin, cout, wide, kernel, stride, groups, identity = CHAINS[name]
    chain = fmen.ExpandSqueezeChain(cin, cout, wide, kernel, stride, groups, identity)
    model = randomize(chain, torch.Generator().manual_seed(seed))
    separate = stride**2 * cin * wide + wide * (wide // groups) * kernel**2 + wide * cout
    if cout * cin * kernel**2 > separate:  # the depthwise chains at these narrow widths
        compiled = check_deploy_form(model, (cin, size, size), DeployForm(3), (size + 1, size + 2))
        assert count_convs(compiled.module) == 3
        assert NO_COSTLIER in [u.precondition for u in compiled.certificate.unfolded]
        return
    compiled = check_deploy_form(
        model, (cin, size, size), DeployForm(1), (size + 1, size + 2), exact=True
    )
    (conv,) = [n for n in compiled.module.graph.nodes if n.target == aten.conv2d.default]
    assert list(conv.args[3]) == [stride, stride]


@QUICK
@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([2, 4]), size=st.integers(6, 8))
def test_hfab_keeps_its_attention_and_names_it(seed: int, channels: int, size: int) -> None:
    # the bias ring as a shift (the strips form is the RRRB cases' and the slow whole net's)
    block = fmen.HFAB(channels, 3, padding="shift")
    model = randomize(block, torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(
        model,
        (channels, size, size),
        DeployForm(model.deploy_convs),
        (size + 1, size + 2),
        exact=True,
    )
    assert compiled.certificate.ops_after.get("mul.Tensor") == 1
    named = {u.op for u in _refusals(compiled, "R13") if u.precondition == CONSTANT_FACTOR}
    assert named == {"aten.mul.Tensor", "aten.sigmoid.default"}


@pytest.mark.parametrize("padding", [pytest.param("strips", marks=pytest.mark.slow), "shift"])
def test_fmen_folds_to_its_deploy_conv_count(padding: str) -> None:
    model = randomize(fmen.FMEN(padding=padding), torch.Generator().manual_seed(7))
    # head, 2 per ERB, 2 + 2 per HFAB, warp, tail: 15; the long skip stays
    compiled = check_deploy_form(
        model, (3, 7, 7), DeployForm(model.deploy_convs, 1), (8, 9), exact=True
    )
    assert model.deploy_convs == 15
    (skip,) = _refusals(compiled, "R3")
    assert skip.op == "aten.add.Tensor" and skip.precondition == FAN_OUT
    assert compiled.certificate.ops_after.get("mul.Tensor") == 2


# Negative twins: the two sides are not one conv; the compiler keeps the ops and names why.


def test_zero_padded_rrrb_is_not_one_conv_and_names_the_border() -> None:
    model = randomize(fmen.ZeroPaddedRRRB(3), torch.Generator().manual_seed(3)).double()
    deploy_like = randomize(fmen.RRRB(3), torch.Generator().manual_seed(3)).double()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():  # same weights: only the ring differs, and it shows
        assert (model(x) - deploy_like(x)).abs().max() > 1e-3
    compiled = check_deploy_form(model, (3, 6, 6), DeployForm(2, 1), (7, 8), exact=True)
    (refusal,) = _refusals(compiled, "R7")
    assert refusal.precondition == BORDER_CONDITION


class SharedBody(torch.nn.Module):
    """An RRRB whose 3×3 output is also returned beside the block: R18 would drop it."""

    def __init__(self) -> None:
        super().__init__()
        self.block = fmen.RRRB(2, padding="shift")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block
        expanded = block.expand(x)
        body = block.body(fmen.pad_with_bias(expanded, block.expand.bias, 1, "shift"))
        return torch.cat([body + expanded, body], 1)


def test_shared_inner_conv_is_kept_and_named() -> None:
    model = randomize(SharedBody(), torch.Generator().manual_seed(5))
    # the 1×1 and the 3×3 stay, with the inner sum, the shift and the concatenation
    compiled = check_deploy_form(model, (2, 6, 6), DeployForm(2, 3), (7, 8), exact=True)
    assert [u.precondition for u in _refusals(compiled, "R18")] == [FAN_OUT]
    # the shift stays too: the 1×1 it would fold into is also added back
    (shift,) = _refusals(compiled, "G3")
    assert shift.op == "aten.sub.Tensor" and shift.precondition == FAN_OUT
