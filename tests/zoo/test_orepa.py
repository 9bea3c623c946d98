"""OREPA through et.compile: a kernel built from parameters in every forward folds to one conv.

The kernel sub-graph (einsums, pads, products, sums and, for the large kernel, convs of kernels)
reads parameters and buffers only: the compiler evaluates it once (G9) and the conv-BN pair
folds (R1). Checked at kernels 3, 5, 7 and 13, dense, grouped and depthwise, stride 1 and 2,
in ≠ out channels; no op on constants alone may be left.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tests.zoo import blocks
from tests.zoo.deploy_form import DeployForm, check_deploy_form
from tests.zoo.orepa import OREPAConv, OREPALargeConv, OREPANet, dct_basis

ONE_CONV = DeployForm(convs=1)

# (cin, cout, k, stride, groups, internal, identity as a plain tensor attribute)
SETTINGS = {
    "dense_3x3": (3, 5, 3, 1, 1, None, False),
    "dense_3x3_identity_attribute": (4, 5, 3, 1, 1, None, True),
    "dense_5x5_wide_internal": (3, 4, 5, 1, 1, 6, False),
    "grouped_7x7_stride2": (4, 6, 7, 2, 2, 3, False),
    "grouped_5x5_identity_attribute": (4, 6, 5, 1, 2, None, True),
    "depthwise_7x7": (4, 4, 7, 1, 4, None, False),
    "depthwise_13x13_stride2": (3, 3, 13, 2, 3, None, False),
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(14, 18))
def test_orepa_conv_folds_to_one_conv(name: str, seed: int, size: int) -> None:
    cin, cout, k, stride, groups, internal, attribute = SETTINGS[name]
    model = OREPAConv(cin, cout, k, stride, groups, internal, identity_attribute=attribute)
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    compiled = check_deploy_form(model, (cin, size, size), ONE_CONV)
    assert compiled.certificate.rules_used().get("R1") == 1


@pytest.mark.parametrize(("groups", "stride"), [(1, 1), (4, 2)])
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), layers=st.integers(2, 3))
def test_large_kernel_composed_by_convs_of_kernels_folds(
    groups: int, stride: int, seed: int, layers: int
) -> None:
    """A 5×5 or 7×7 kernel written as convs of 3×3 kernels: no conv on parameters left."""
    cout = 4 if groups > 1 else 5
    model = OREPALargeConv(4, cout, layers, stride, groups)
    blocks.randomize(model, torch.Generator().manual_seed(seed))
    check_deploy_form(model, (4, 15, 15), ONE_CONV)


@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**31 - 1), k=st.sampled_from([5, 7]), size=st.integers(16, 20))
def test_orepa_net_folds_to_one_conv_per_orepa_conv(seed: int, k: int, size: int) -> None:
    model = blocks.randomize(OREPANet(3, 4, k), torch.Generator().manual_seed(seed))
    check_deploy_form(model, (3, size, size), DeployForm(convs=OREPANet.DEPLOY_CONVS))


def test_the_zoo_kernel_is_the_sum_of_its_branches_as_convs() -> None:
    """Guard on the zoo code itself: the built kernel equals running each branch as its own
    conv (1×1 then K×K, depthwise then pointwise, a 1×1 on an average pool, …) and summing,
    so the fold above is tested on OREPA's function, not on a kernel of our own invention."""
    torch.manual_seed(0)
    cin, cout, k, g = 4, 6, 5, 2
    model = blocks.randomize(OREPAConv(cin, cout, k, 1, g, 3), torch.Generator().manual_seed(1))
    model = model.double()
    x = torch.rand(2, cin, 11, 12, dtype=torch.float64)
    r, s = k // 2, model.scales

    def scaled(i: int, y: torch.Tensor) -> torch.Tensor:
        return y * s[i].view(1, -1, 1, 1)

    reduce = model.reduce + model.reduce_identity
    # the separable branch: input channel c filtered by D[c], then the grouped 1×1
    separable = F.conv2d(
        F.conv2d(x, model.depthwise, padding=r, groups=cin), model.pointwise, groups=g
    )
    # the model's 1/K² is a float32 buffer cast to float64: pool with that very number
    uniform = model.avg_kernel
    assert torch.allclose(uniform, torch.full_like(uniform, 1 / (k * k)), rtol=1e-7, atol=0)
    average = F.conv2d(x, uniform.expand(cin, 1, k, k), padding=r, groups=cin)
    basis = dct_basis(k).double()[: model.prior.shape[2]]
    prior_kernel = torch.einsum("oib,bhw->oihw", model.prior, basis)
    branches = [
        F.conv2d(x, model.origin, padding=r, groups=g),
        F.conv2d(x, model.one, groups=g),
        F.conv2d(average, model.avg, groups=g),
        F.conv2d(x, prior_kernel, padding=r, groups=g),
        F.conv2d(F.pad(F.conv2d(x, reduce, groups=g), [r] * 4), model.expand, groups=g),
        separable,
    ]
    expected = sum(scaled(i, y) for i, y in enumerate(branches))
    got = F.conv2d(x, model.kernel(), None, 1, r, 1, g)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_dct_basis_is_orthonormal() -> None:
    basis = dct_basis(5).double().reshape(25, 25)
    assert torch.allclose(basis @ basis.T, torch.eye(25, dtype=torch.float64), atol=1e-6)
