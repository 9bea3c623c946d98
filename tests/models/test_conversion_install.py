"""Tests that kill the mutants of ``reference_models/conversions/install.py`` the conversion
tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the converters only ever install
layers that fit, so each refusal (wrong type on either side, another geometry, a bias the
target cannot hold, PReLU slopes of another shape) and ``like`` with a parameterless reference
were never reached.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference_models.conversions.install import install_activation, install_conv, like


def test_install_conv_refuses_what_does_not_fit() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with pytest.raises(TypeError) as raised:
        install_conv(nn.ReLU(), conv, "head")
    assert str(raised.value) == "head: expected two Conv2d, got ReLU, Conv2d"
    with pytest.raises(TypeError) as raised:
        install_conv(conv, nn.Identity(), "head")
    assert str(raised.value) == "head: expected two Conv2d, got Conv2d, Identity"
    with pytest.raises(ValueError, match=r"^tail: converted layer .* does not fit the target's "):
        install_conv(conv, nn.Conv2d(3, 5, 3, padding=1), "tail")


def test_install_conv_bias_rules() -> None:
    layer = nn.Conv2d(3, 4, 3, padding=1)
    no_bias = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        layer.bias.fill_(0.5)
    with pytest.raises(ValueError) as raised:
        install_conv(no_bias, layer, "body")
    assert str(raised.value) == "body: the target has no bias but the converted layer needs one"
    with torch.no_grad():
        layer.bias.zero_()
    install_conv(no_bias, layer, "body")  # a zero bias is no bias
    assert torch.equal(no_bias.weight, layer.weight)
    install_conv(no_bias, nn.Conv2d(3, 4, 3, padding=1, bias=False), "body")


def test_install_activation_refusals() -> None:
    with pytest.raises(TypeError) as raised:
        install_activation(nn.ReLU(), nn.PReLU(), "act")
    assert str(raised.value) == "act: activation PReLU does not fit ReLU"
    with pytest.raises(ValueError) as raised:
        install_activation(nn.PReLU(4), nn.PReLU(2), "act")
    assert str(raised.value) == "act: PReLU slopes (2,) do not fit (4,)"


def test_like_follows_the_references_dtype_or_keeps_a_parameterless_ones() -> None:
    model = nn.Conv2d(2, 2, 1).train()
    moved = like(model, nn.Conv2d(1, 1, 1, dtype=torch.float64))
    assert moved.weight.dtype == torch.float64 and not moved.training
    kept = like(nn.Conv2d(2, 2, 1).train(), nn.ReLU())
    assert kept.weight.dtype == torch.float32 and not kept.training
