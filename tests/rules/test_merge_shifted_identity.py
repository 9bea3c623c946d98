"""R18: ``conv(z − c) + z`` is one conv of ``z − c``. Property in float64; one negative test per
precondition (the two sides differ, and the rule refuses naming it)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.merge_shifted_identity import (
    CENTRED,
    CHANNELS,
    FINITE,
    SHIFT_SHAPE,
    STRIDE,
    TORCH_MODULES,
    merge_shifted_identity,
)
from et.strategies import ConvConfig, bias_tensors, conv2d_modules, image_batches, weight_tensors


@st.composite
def centred_convs(draw: st.DrawFn, bias: bool | None = None) -> nn.Conv2d:
    """C → C convs, stride 1, odd kernels padded by d·(K − 1)/2, any groups dividing C."""
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 3))
    kernel = (draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5])))
    dilation = draw(st.sampled_from([1, 2]))
    padding = (dilation * (kernel[0] - 1) // 2, dilation * (kernel[1] - 1) // 2)
    config = ConvConfig(channels, channels, kernel, (1, 1), padding, (dilation,) * 2, groups)
    conv = draw(conv2d_modules(config, bias=bias))
    conv.padding_mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate"]))
    return conv


def _both_sides(conv: nn.Conv2d, shift: torch.Tensor, z: torch.Tensor):
    column = shift.reshape(-1).expand(conv.in_channels).reshape(1, -1, 1, 1)
    with torch.no_grad():
        original = conv(z - column) + z
        merged = merge_shifted_identity(conv, shift)(z - column)
    return original, merged


@given(data=st.data())
def test_merge_is_exact_in_float64(data: st.DataObject) -> None:
    conv = data.draw(centred_convs())
    channels = conv.in_channels
    form = data.draw(st.sampled_from(["[C]", "[1, C, 1, 1]", "scalar"]))
    c = data.draw(bias_tensors(channels))
    shift = {"[C]": c, "[1, C, 1, 1]": c.reshape(1, channels, 1, 1), "scalar": c[0]}[form]
    # the reflect padding needs more pixels than the padding on each side
    z = data.draw(image_batches(channels, min_size=11, max_size=14))
    original, merged = _both_sides(conv, shift, z)
    scale = original.abs().max().item() + z.abs().max().item() + 1
    assert merged.dtype == torch.float64
    assert (original - merged).abs().max().item() <= 1e-12 * scale


def test_inputs_untouched_geometry_kept_and_bias_added() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, bias=False, dtype=torch.float64)
    before = copy.deepcopy(conv.state_dict())
    shift = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    merged = merge_shifted_identity(conv, shift)
    assert torch.equal(conv.weight, before["weight"]) and conv.bias is None
    assert merged.groups == 2 and merged.dilation == (2, 2) and merged.padding == (2, 2)
    assert torch.equal(merged.bias, shift)  # b = 0 plus c
    # the identity of a 2-grouped 4-channel conv: output o reads its group's channel o mod 2,
    # added at the centre tap only (w + 1 − w need not round to 1, so compare the sum itself)
    expected = conv.weight.detach().clone()
    expected[:, :, 1, 1] += torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 2, dtype=torch.float64)
    assert torch.equal(merged.weight, expected)


def test_registered_by_name_and_id() -> None:
    conv = nn.Conv2d(2, 2, 3, padding=1)
    shift = torch.tensor([0.5, 1.0])
    by_id = apply_rule("R18", conv, shift)
    assert torch.equal(by_id.weight, apply_rule("merge_shifted_identity", conv, shift).weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refusal(conv: nn.Conv2d, shift: object) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        merge_shifted_identity(conv, shift)
    assert info.value.rule == "R18"
    return info.value


def _conv(*args: object, **kwargs: object) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(*args, dtype=torch.float64, **kwargs)


def test_shift_varying_over_the_image_differs_and_is_refused() -> None:
    conv = _conv(2, 2, 3, padding=1)
    z = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    shift = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    # the best one conv can do: the shift's mean per channel as the bias
    mean = shift.mean(dim=(2, 3)).reshape(-1)
    with torch.no_grad():
        original = conv(z - shift) + z
        merged = merge_shifted_identity(conv, mean)(z - shift)
    assert (original - merged).abs().max() > 1e-3
    assert _refusal(conv, shift).condition is SHIFT_SHAPE


def test_infinite_shift_differs_and_is_refused() -> None:
    conv = _conv(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    z = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    inf = torch.tensor([float("inf")], dtype=torch.float64)
    with torch.no_grad():
        original = conv(z - inf) + z  # −∞
        merged = F.conv2d(z - inf, conv.weight + 1) + inf  # what W + I, b + c computes: NaN
    assert original.isinf().all() and merged.isnan().all()
    assert _refusal(conv, inf).condition is FINITE


def test_other_channel_count_cannot_be_summed_and_is_refused() -> None:
    conv = _conv(2, 3, 3, padding=1)
    z = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        conv(z - 1.0) + z  # the two sides of the statement do not even exist
    assert _refusal(conv, torch.ones(2)).condition is CHANNELS


def test_stride_two_cannot_be_summed_and_is_refused() -> None:
    conv = _conv(2, 2, 3, padding=1, stride=2)
    z = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        conv(z - 1.0) + z
    assert _refusal(conv, torch.ones(2)).condition is STRIDE


@pytest.mark.parametrize(
    ("kernel", "padding", "dilation"),
    [(2, 1, 2), ((3, 3), (1, 0), 1)],  # an even kernel keeping the size; a padding off-centre
)
def test_kernel_without_a_centred_tap_differs_and_is_refused(kernel, padding, dilation) -> None:
    conv = _conv(2, 2, kernel, padding=padding, dilation=dilation)
    shift = torch.tensor([0.5, -1.0], dtype=torch.float64)
    z = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    column = shift.reshape(1, 2, 1, 1)
    # what the merge would compute without the check: the Dirac kernel at index K // 2
    identity = torch.zeros_like(conv.weight)
    nn.init.dirac_(identity)
    with torch.no_grad():
        merged = F.conv2d(
            z - column, conv.weight + identity, conv.bias + shift, 1, padding, dilation
        )
        original = conv(z - column)
        if original.shape == z.shape:
            assert (original + z - merged).abs().max() > 1e-3
        else:
            assert original.shape != z.shape  # off-centre: the sum does not exist
    assert _refusal(conv, shift).condition is CENTRED


def test_overridden_forward_differs_and_is_refused() -> None:
    class AddsOne(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    conv = AddsOne(2, 2, 3, padding=1, dtype=torch.float64)
    shift = torch.tensor([0.5, -1.0], dtype=torch.float64)
    z = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    plain = _conv(2, 2, 3, padding=1)
    plain.load_state_dict(conv.state_dict())
    original, merged = _both_sides(plain, shift, z)
    with torch.no_grad():
        assert (conv(z - shift.reshape(1, 2, 1, 1)) + z - merged).abs().max() > 0.5
    assert (original - merged).abs().max() < 1e-12  # the torch class's own forward: it holds
    assert _refusal(conv, shift).condition is TORCH_MODULES


def test_float64_shift_on_a_float32_conv_gives_float32() -> None:
    conv = nn.Conv2d(3, 3, 3, padding=1)
    shift = torch.tensor([0.25, -1.0, 2.0], dtype=torch.float64)
    merged = merge_shifted_identity(conv, shift)
    assert merged.weight.dtype == torch.float32 and merged.bias.dtype == torch.float32


@given(conv=centred_convs(bias=False), shift=weight_tensors((1,)))
def test_bias_free_conv_gets_the_shift_as_bias(conv: nn.Conv2d, shift: torch.Tensor) -> None:
    merged = merge_shifted_identity(conv, shift[0])
    assert torch.equal(merged.bias, shift[0].expand(conv.out_channels))
