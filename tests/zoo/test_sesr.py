"""SESR through et.compile: collapsible linear blocks, the long residual and the image anchor.

Each linear block (K×K to ``p`` channels, 1×1 back, short residual) collapses to one K×K (R9,
R6, R3); the anchor (the image at each sub-pixel position: ``cat`` tiling for one colour,
``repeat_interleave`` for three) is written as a 1×1 conv (E3) and, since E4 cannot carry the
image through the long residual, stacked into the last conv's input (E6's identity), so the
net keeps exactly the authors' m + 2 convs. Settings: 5×5 outer and 3×3 inner kernels, the
paper's p = 256 and smaller, in ≠ out channels (1 or 3 colours to 16 features, features to
colours·s²), ×2 and ×4, PReLU and ReLU, and blocks that collapse their kernel in every
``forward`` (SESR's efficient training: an impulse through the two convs; G9 evaluates it).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from et.compiler import count_convs
from et.compiler.sequential import NO_COSTLIER
from tests.zoo import blocks
from tests.zoo.deploy_form import DeployForm, check_deploy_form
from tests.zoo.sesr import SESR, CollapsedInForward, CollapsibleLinearBlock


def fan_in_scaled(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights with each conv's kernel divided by √fan-in, so a 256-wide linear block
    keeps the signal's scale (the float32 check then measures rounding, not overflow)."""
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for sub in model.modules():
            if isinstance(sub, torch.nn.Conv2d):
                fan_in = sub.weight[0].numel()
                sub.weight.mul_(2.0 / fan_in**0.5)
    return model


@pytest.mark.parametrize(("cin", "cout", "k"), [(3, 3, 3), (4, 4, 5), (1, 6, 5), (6, 12, 5)])
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    seed=st.integers(0, 2**31 - 1), expand=st.sampled_from([8, 64, 256]), size=st.integers(6, 10)
)
def test_linear_block_collapses_to_one_conv(
    cin: int, cout: int, k: int, seed: int, expand: int, size: int
) -> None:
    """One K×K where that costs no more multiply-adds per pixel than the K×K to ``expand``
    channels and the 1×1 (the paper's p = 256); else the two convs stay, named."""
    model = fan_in_scaled(CollapsibleLinearBlock(cin, cout, k, expand), seed)
    if cout * cin * k * k > expand * cin * k * k + cout * expand:  # 6 → 8 → 12 at 5×5
        compiled = check_deploy_form(model, (cin, size, size), DeployForm(convs=2))
        assert count_convs(compiled.module) == 2
        assert NO_COSTLIER in [u.precondition for u in compiled.certificate.unfolded]
        return
    check_deploy_form(model, (cin, size, size), DeployForm(convs=1))


@pytest.mark.parametrize(("cin", "cout", "k"), [(3, 3, 3), (2, 5, 5)])
def test_collapsing_in_forward_computes_the_block_it_collapses(cin: int, cout: int, k: int):
    """Guard on the zoo code: the impulse-response kernel is the two-conv block's function."""
    block = fan_in_scaled(CollapsibleLinearBlock(cin, cout, k, 8), seed=cin).double()
    collapsing = CollapsedInForward(cin, cout, k, 8).double()
    collapsing.load_state_dict(block.state_dict())
    x = torch.rand(2, cin, 9, 10, dtype=torch.float64)
    assert torch.allclose(collapsing(x), block(x), rtol=1e-12, atol=1e-12)


# (colours, scale, blocks, expand, activation, collapsed in forward)
NETS = {
    "y_x2_prelu_p256": (1, 2, 3, 256, "prelu", False),
    "y_x4_relu": (1, 4, 2, 32, "relu", False),
    "rgb_x2_prelu": (3, 2, 2, 16, "prelu", False),
    # p = 64, not 32: the last block (16 → p → 48 at 5×5) collapses only where that costs no
    # more, 25·16·48 = 19200 ≤ 25·16·p + 48·p (p = 32: 14336, left by the cost guard)
    "rgb_x4_relu": (3, 4, 3, 64, "relu", False),
    "rgb_x2_collapsed_in_forward": (3, 2, 2, 16, "prelu", True),
}


@pytest.mark.parametrize("name", sorted(NETS))
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(7, 11))
def test_sesr_net_folds_to_m_plus_2_convs(name: str, seed: int, size: int) -> None:
    colors, scale, count, expand, activation, collapsed = NETS[name]
    model = fan_in_scaled(SESR(colors, scale, 16, count, expand, activation, collapsed), seed)
    # the authors keep two joins: the long residual and the image anchor
    compiled = check_deploy_form(model, (colors, size, size), DeployForm(count + 2, joins=2))
    assert compiled.certificate.ops_after.get("pixel_shuffle.default") == 1
    assert compiled.certificate.rules_used().get("E6") == 1  # the anchor in the last conv
