"""RepGhost through et.compile: the BN-only feature-reuse branch folds into the cheap
depthwise conv, and a RepGhost net keeps exactly its deploy form's convs (or fewer).

``cheap(x₁) + BN'(x₁)`` is one depthwise conv (R1 on the conv-BN, R6 for the BN-only identity
branch, R3 for the sum); squeeze-and-excitation (mean, two 1×1 convs, hard sigmoid, product)
is kept, as in the authors' deploy form. Settings: 3×3 and 5×5 cheap kernels, stride 2, in ≠
out channels, identity and conv shortcuts, with and without SE.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import et
from tests.zoo import blocks
from tests.zoo.deploy_form import DeployForm, check_deploy_form
from tests.zoo.repghost import RepGhostBottleneck, RepGhostModule, RepGhostNet


@pytest.mark.parametrize(
    ("k", "relu", "reuse"), [(3, True, "bn"), (5, False, "bn"), (3, False, "identity")]
)
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    seed=st.integers(0, 2**31 - 1),
    cin=st.integers(1, 4),
    cout=st.integers(2, 6),
    size=st.integers(6, 12),
)
def test_ghost_module_reuse_branch_folds_into_the_cheap_conv(
    k: int, relu: bool, reuse: str, seed: int, cin: int, cout: int, size: int
) -> None:
    model = RepGhostModule(cin, cout, k, relu, reuse)
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(model, (cin, size, size), DeployForm(RepGhostModule.DEPLOY_CONVS))
    assert compiled.certificate.rules_used().get("R6") == 1  # the reuse branch: an identity


# (cin, mid, cout, k, stride, se): the authors' deploy joins are the shortcut's sum
BOTTLENECKS = {
    "identity_shortcut": (4, 8, 4, 3, 1, False),
    "identity_shortcut_se": (4, 8, 4, 3, 1, True),
    "stride2_5x5_se_wider": (4, 6, 6, 5, 2, True),
    "stride1_conv_shortcut": (3, 6, 5, 3, 1, False),
}


@pytest.mark.parametrize("name", sorted(BOTTLENECKS))
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(8, 13))
def test_bottleneck_folds_to_its_deploy_form(name: str, seed: int, size: int) -> None:
    cin, mid, cout, k, stride, se = BOTTLENECKS[name]
    model = RepGhostBottleneck(cin, mid, cout, k, stride, se)
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    check_deploy_form(model, (cin, size, size), DeployForm(model.deploy_convs, joins=1))


@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(16, 20))
def test_repghost_net_folds_to_its_deploy_form(seed: int, size: int) -> None:
    model = blocks.randomize(RepGhostNet(), torch.Generator().manual_seed(seed))
    # one shortcut sum per bottleneck
    compiled = check_deploy_form(model, (3, size, size), DeployForm(model.deploy_convs, joins=3))
    assert compiled.certificate.ops_after.get("linear.default") == 1


def test_reuse_branch_with_batch_statistics_is_kept_and_named() -> None:
    """Negative twin: a fusion BatchNorm without running statistics (batch statistics in eval
    mode) is no fixed per-channel map: it stays, and the certificate names the precondition."""
    model = blocks.randomize(RepGhostModule(3, 4, 3, relu=False), torch.Generator().manual_seed(0))
    model.fusion_bn = torch.nn.BatchNorm2d(4, track_running_stats=False)
    model = model.double().eval()
    compiled = et.compile(model, (torch.rand(2, 3, 8, 8, dtype=torch.float64),))
    names = " ".join(compiled.certificate.ops_after)
    assert "batch_norm" in names
    assert any("statistics" in u.precondition for u in compiled.certificate.unfolded), (
        compiled.certificate.unfolded
    )
