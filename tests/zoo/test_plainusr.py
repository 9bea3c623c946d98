"""PlainUSR (Wang et al. 2024) through et.compile: each block folds to its deploy form (issue 26).

RepMBConv (1×1 expand, K×K, 1×1 squeeze, residual; the K×K's border the 1×1's bias, written as
a zero-padded input or as a bias ring) → one K×K, also grouped, depthwise and K = 5, 7. The
partial conv (a K×K on k channels, the rest passed on, then a 1×1 mixing all channels) → one
K×K whichever side the conv is on and whether the slices are written with ``x[:, a:b]`` or
``torch.split``; with a 3×3 mix it stays two convs and the certificate names why. The network
(head, blocks, tail, PixelShuffle) keeps only its LIA attentions, named. Checked by
:func:`tests.zoo.deploy_form.check_deploy_form`: float64 (≤ 1e-9 relative) and float32 at two
sizes.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from et.compiler import count_convs
from et.compiler.sequential import NO_COSTLIER
from et.compiler.unmerged_joins import CONSTANT_FACTOR
from et.rules.merge_sequential_convs import VALID_SECOND
from tests.zoo import plainusr
from tests.zoo.blocks import randomize
from tests.zoo.deploy_form import DeployForm, check_deploy_form

QUICK = settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])

MBCONVS = {
    # (ratio, kernel, groups as a function of the wide width, border)
    "input_border": (2, 3, lambda wide: 1, "input"),
    "bias_ring": (2, 3, lambda wide: 1, "bias"),
    "grouped_k5": (2, 5, lambda wide: 2, "input"),
    "depthwise_k7": (3, 7, lambda wide: wide, "bias"),
    "depthwise_k13": (2, 13, lambda wide: wide, "input"),
}


@pytest.mark.parametrize("name", sorted(MBCONVS))
@QUICK
@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([2, 4]), size=st.integers(7, 9))
def test_rep_mbconv_folds_to_one_conv(name: str, seed: int, channels: int, size: int) -> None:
    """One K×K where that costs no more multiply-adds per pixel than expand, K×K and squeeze;
    else (a depthwise K×K on a narrow map) the three convs and the residual stay, named."""
    ratio, kernel, groups, border = MBCONVS[name]
    wide = ratio * channels
    block = plainusr.RepMBConv(channels, ratio, kernel, groups(wide), border)
    model = randomize(block, torch.Generator().manual_seed(seed))
    separate = 2 * channels * wide + wide * (wide // groups(wide)) * kernel**2
    if channels * channels * kernel**2 > separate:
        form = DeployForm(3, joins=1)
        compiled = check_deploy_form(model, (channels, size, size), form, (size + 1, size + 2))
        assert count_convs(compiled.module) == 3
        assert NO_COSTLIER in [u.precondition for u in compiled.certificate.unfolded]
        return
    compiled = check_deploy_form(
        model, (channels, size, size), DeployForm(1), (size + 1, size + 2), exact=True
    )
    assert compiled.certificate.unfolded == []


PARTIALS = {
    # (channels, part, kernel, out channels of the 1×1 mix, slicing, conv first)
    "slice_first_quarter": (8, 2, 3, 8, "slice", True),
    "split_half_out_ne_in": (4, 2, 3, 6, "split", True),
    "split_conv_last_k5": (5, 2, 5, 3, "split", False),
    "chunk_odd_width": (5, 3, 3, 5, "chunk", True),
    "inplace_write": (6, 2, 3, 4, "inplace", True),
}


@pytest.mark.parametrize("name", sorted(PARTIALS))
@QUICK
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(6, 9))
def test_partial_conv_and_mix_fold_to_one_conv(name: str, seed: int, size: int) -> None:
    """The partial conv widened to all channels (R6 + G5 + R11) and merged with the 1×1 mix:
    the authors' one plain conv. Where the mix widens the map (``out > C``), that conv would
    cost more than the widened conv and the mix (``out·C·K² > C·C·K² + out·C``): the
    partial conv, its concatenation and the mix stay as they are, named."""
    channels, part, kernel, out, slicing, conv_first = PARTIALS[name]
    block = plainusr.PartialConv(channels, part, kernel, 1, out, slicing, conv_first)
    model = randomize(block, torch.Generator().manual_seed(seed))
    if out * channels * kernel**2 > channels * channels * kernel**2 + out * channels:
        form = DeployForm(2, joins=1)
        compiled = check_deploy_form(model, (channels, size, size), form, (size + 1, size + 2))
        assert count_convs(compiled.module) == 2
        (refusal,) = [u for u in compiled.certificate.unfolded if u.precondition == NO_COSTLIER]
        assert refusal.rule == "R11"
        return
    compiled = check_deploy_form(
        model, (channels, size, size), DeployForm(1), (size + 1, size + 2), exact=True
    )
    used = compiled.certificate.rules_used()
    assert used.get("R6") == 1 and used.get("R11") == 1
    assert not {"cat.default", "slice.Tensor", "getitem"} & set(compiled.certificate.ops_after)


def test_partial_conv_then_a_3x3_mix_stays_two_convs_and_names_why() -> None:
    """Two padded 3×3s in a row are no one conv (the second's zero ring reads the first's
    border outputs, not zeros): the partial conv becomes one conv, the mix stays."""
    block = plainusr.PartialConv(4, 1, 3, mix_kernel=3, out_channels=5)
    model = randomize(block, torch.Generator().manual_seed(2))
    compiled = check_deploy_form(model, (4, 7, 7), DeployForm(2), (8, 9), exact=True)
    assert VALID_SECOND in [u.precondition for u in compiled.certificate.unfolded]


@QUICK
@given(seed=st.integers(0, 2**31 - 1), border=st.sampled_from(["input", "bias"]))
def test_plainusr_network_folds_to_its_deploy_conv_count(seed: int, border: str) -> None:
    model = randomize(plainusr.PlainUSR(border=border), torch.Generator().manual_seed(seed))
    # head, 3 per block (RepMBConv, partial conv with its 1×1, the LIA's conv), tail
    compiled = check_deploy_form(
        model, (3, 7, 7), DeployForm(model.deploy_convs), (8, 9), exact=True
    )
    assert model.deploy_convs == 8
    ops = compiled.certificate.ops_after
    assert ops.get("mul.Tensor") == ops.get("sigmoid.default") == 2
    named = [u.op for u in compiled.certificate.unfolded if u.precondition == CONSTANT_FACTOR]
    assert sorted(named) == ["aten.mul.Tensor"] * 2 + ["aten.sigmoid.default"] * 2


class SharedPart(torch.nn.Module):
    """A partial conv whose conv output is also read by the next layer's product: merging it
    into the concatenation would drop that reader."""

    def __init__(self) -> None:
        super().__init__()
        self.partial = plainusr.PartialConv(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        touched = self.partial.conv(x[:, :2])
        mixed = self.partial.mix(torch.cat([touched, x[:, 2:]], 1))
        return mixed[:, :2] + touched


def test_shared_conv_part_is_kept_and_named() -> None:
    model = randomize(SharedPart(), torch.Generator().manual_seed(4))
    compiled = check_deploy_form(model, (4, 6, 6), DeployForm(2, 2), (7, 8), exact=True)
    refusals = [u for u in compiled.certificate.unfolded if u.op == "aten.cat.default"]
    assert [u.rule for u in refusals] == ["R11"] and "fan-out" in refusals[0].precondition
