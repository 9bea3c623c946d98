"""Rules never trust a class name: a module that may compute something else is refused.

For every rule that takes modules, each module it takes is swapped in turn for

* a subclass of the same torch class that overrides ``forward`` (or ``_conv_forward``): first
  shown to compute something else, then shown to be refused with a ``PreconditionError`` naming
  the subclass and the torch class;
* the same module with a forward hook: refused;
* a subclass that only adds attributes and methods: accepted, with the same result as the plain
  torch module.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from et.contract import PreconditionError, get_rule, torch_semantics_violation
from et.rules.avg_pool_as_conv import avg_pool_as_conv
from et.rules.carry_identity import carry_identity_first, extend_activation, extend_prelu
from et.rules.clip_as_relu import clip_as_relu
from et.rules.collapse_depthwise_separable import collapse_depthwise_separable
from et.rules.concat_convs import concat_convs
from et.rules.embed_kernel import embed_kernel
from et.rules.fold_channel_scale import fold_channel_scale
from et.rules.fuse_bn_conv import fuse_bn_conv
from et.rules.fuse_bn_linear import fuse_bn_linear
from et.rules.fuse_bn_max_pool_linear import fuse_bn_max_pool_linear
from et.rules.fuse_bn_token_linear import fuse_bn_token_linear
from et.rules.fuse_conv_bn import fuse_conv_bn
from et.rules.merge_1x1_kxk import merge_1x1_kxk
from et.rules.merge_asymmetric import merge_asymmetric
from et.rules.merge_dual_stream import merge_activations, merge_dual_stream
from et.rules.merge_grouped_branches import merge_grouped_branches
from et.rules.merge_kxk_1x1 import merge_kxk_1x1
from et.rules.merge_parallel_convs import merge_parallel_convs
from et.rules.merge_parallel_linears import merge_parallel_linears
from et.rules.merge_sequential_convs import merge_sequential_convs
from et.rules.merge_shifted_identity import merge_shifted_identity
from et.rules.merge_summed_convs import merge_summed_convs
from et.rules.move_elementwise_before_pixel_shuffle import (
    move_elementwise_after_pixel_shuffle,
    move_elementwise_before_pixel_shuffle,
)
from et.rules.negate_nonnegative_channels import negate_nonnegative_channels
from et.rules.pad_output_channels import pad_output_channels
from et.rules.prelu_as_relu_pair import prelu_as_relu_pair
from et.rules.remove_passthrough_activation import remove_passthrough_activation
from et.rules.repeat_interleave_conv import add_repeat_interleave_anchor
from et.rules.rescale_channels import rescale_channels
from et.rules.scale_linear_outputs import scale_linear_outputs
from et.rules.split_channel import split_channel
from et.rules.transposed_conv_as_pixel_shuffle import transposed_conv_as_pixel_shuffle

DTYPE = torch.float64


# --- subclasses that override what the torch class computes -------------------------------


class TFSameConv2d(nn.Conv2d):
    """TensorFlow "same" padding computed per input in forward (asymmetric for even totals)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            x.shape[-2:], self.kernel_size, self.stride, self.dilation, strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class FlippedConv2d(nn.Conv2d):
    """Overrides only ``_conv_forward``: the input is mirrored before the convolution."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        return super()._conv_forward(x.flip(-1), weight, bias)


class BatchNormReLU(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class ReluAfterConvTranspose2d(nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        return F.relu(super().forward(x, output_size))


class MaxInsteadOfAvgPool2d(nn.AvgPool2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class ChannelReversedPixelShuffle(nn.PixelShuffle):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(x.flip(1), self.upscale_factor)


class BatchNorm1dReLU(nn.BatchNorm1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class ShiftedLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1


class DoubledReLU(nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * F.relu(x)


class DoubledPReLU(nn.PReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * F.prelu(x, self.weight)


OVERRIDING: dict[type[nn.Module], list[type[nn.Module]]] = {
    nn.Conv2d: [TFSameConv2d, FlippedConv2d],
    nn.BatchNorm2d: [BatchNormReLU],
    nn.BatchNorm1d: [BatchNorm1dReLU],
    nn.Linear: [ShiftedLinear],
    nn.ConvTranspose2d: [ReluAfterConvTranspose2d],
    nn.AvgPool2d: [MaxInsteadOfAvgPool2d],
    nn.PixelShuffle: [ChannelReversedPixelShuffle],
    nn.ReLU: [DoubledReLU],
    nn.PReLU: [DoubledPReLU],
}


def tagged(base: type[nn.Module]) -> type[nn.Module]:
    """A subclass of ``base`` that adds an attribute and a method but keeps torch's forward."""
    return type(f"Tagged{base.__name__}", (base,), {"tag": "ours", "describe": lambda self: "x"})


def retyped(module: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """A copy of ``module`` (same parameters and settings) whose class is ``cls``."""
    clone = copy.deepcopy(module)
    clone.__class__ = cls
    return clone


# --- every rule that takes modules, with the modules it takes -----------------------------


def _conv(cin: int, cout: int, k: int | tuple[int, int] = 3, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, dtype=DTYPE, **kwargs)


def _bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, dtype=DTYPE)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
    return bn.eval()


def _bn1d(channels: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(channels, dtype=DTYPE)
    bn.load_state_dict(_bn(channels).state_dict())
    return bn.eval()


def _nonnegative_row_conv(cin: int, cout: int) -> nn.Conv2d:
    """A 3×3 conv whose output channel 1 is ≥ 0 on inputs in [0, 1] (weights and bias ≥ 0)."""
    conv = _conv(cin, cout, padding=1)
    with torch.no_grad():
        conv.weight[1] = conv.weight[1].abs()
        conv.bias[1] = conv.bias[1].abs()
    return conv


def _tensor(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=DTYPE)


@dataclass(frozen=True)
class Case:
    rule: str
    label: str
    build: Callable[[], list[nn.Module]]
    apply: Callable[[list[nn.Module]], object]


CASES = [
    Case(
        "R1", "fuse_conv_bn", lambda: [_conv(3, 4, padding=1), _bn(4)], lambda m: fuse_conv_bn(*m)
    ),
    Case("R2", "fuse_bn_conv", lambda: [_bn(3), _conv(3, 4)], lambda m: fuse_bn_conv(*m)),
    Case(
        "R3",
        "merge_parallel_convs",
        lambda: [_conv(3, 4, padding=1), _conv(3, 4, 1)],
        merge_parallel_convs,
    ),
    Case("R4", "embed_kernel", lambda: [_conv(3, 4, 1)], lambda m: embed_kernel(m[0], 3)),
    Case(
        "R5",
        "merge_asymmetric",
        lambda: [
            _conv(3, 4, 3, padding=1),
            _conv(3, 4, (1, 3), padding=(0, 1)),
            _conv(3, 4, (3, 1), padding=(1, 0)),
        ],
        lambda m: merge_asymmetric(*m),
    ),
    Case("R7", "merge_1x1_kxk", lambda: [_conv(3, 5, 1), _conv(5, 4)], lambda m: merge_1x1_kxk(*m)),
    Case(
        "R8",
        "merge_sequential_convs",
        lambda: [_conv(3, 5, padding=1), _conv(5, 4)],
        lambda m: merge_sequential_convs(*m),
    ),
    Case("R9", "merge_kxk_1x1", lambda: [_conv(3, 5), _conv(5, 4, 1)], lambda m: merge_kxk_1x1(*m)),
    Case(
        "R10",
        "avg_pool_as_conv",
        lambda: [nn.AvgPool2d(2)],
        lambda m: avg_pool_as_conv(m[0], 3, dtype=DTYPE),
    ),
    Case("R11", "concat_convs", lambda: [_conv(3, 4), _conv(3, 2)], concat_convs),
    Case(
        "R13",
        "fold_channel_scale",
        lambda: [_conv(3, 4)],
        lambda m: fold_channel_scale(m[0], torch.linspace(0.5, 2, 4, dtype=DTYPE)),
    ),
    Case(
        "R14",
        "collapse_depthwise_separable",
        lambda: [_conv(3, 3, padding=1, groups=3), _conv(3, 4, 1)],
        lambda m: collapse_depthwise_separable(*m),
    ),
    Case(
        "R15",
        "transposed_conv_as_pixel_shuffle",
        lambda: [nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1, dtype=DTYPE)],
        lambda m: transposed_conv_as_pixel_shuffle(m[0]),
    ),
    Case(
        "R16",
        "fuse_bn_linear",
        lambda: [_bn1d(4), nn.Linear(4, 3, dtype=DTYPE)],
        lambda m: fuse_bn_linear(*m),
    ),
    Case(
        "R17",
        "merge_parallel_linears",
        lambda: [nn.Linear(4, 3, dtype=DTYPE), nn.Linear(4, 3, dtype=DTYPE)],
        lambda m: merge_parallel_linears(m, [0.5, 0.5]),
    ),
    Case(
        "R18",
        "merge_shifted_identity",
        lambda: [_conv(4, 4, padding=1)],
        lambda m: merge_shifted_identity(m[0], torch.linspace(-1, 1, 4, dtype=DTYPE)),
    ),
    Case(
        "R20",
        "merge_grouped_branches",
        lambda: [_conv(4, 4, padding=1, groups=2), _conv(4, 4, 1, groups=4)],
        lambda m: merge_grouped_branches(m),
    ),
    Case(
        "R21",
        "fuse_bn_token_linear",
        lambda: [_bn(4), nn.Linear(4, 3, dtype=DTYPE)],
        lambda m: fuse_bn_token_linear(*m),
    ),
    Case(
        "R22",
        "fuse_bn_max_pool_linear",
        lambda: [_bn(4), nn.Linear(4, 3, dtype=DTYPE)],
        lambda m: fuse_bn_max_pool_linear(*m, nn.AdaptiveMaxPool2d(1)),
    ),
    Case(
        "R23",
        "scale_linear_outputs",
        lambda: [nn.Linear(4, 3, dtype=DTYPE)],
        lambda m: scale_linear_outputs(m[0], torch.tensor([0.5, -1.0, 2.0], dtype=DTYPE)),
    ),
    Case(
        "E1",
        "remove_passthrough_activation (ReLU)",
        lambda: [nn.ReLU()],
        lambda m: remove_passthrough_activation(m[0]),
    ),
    Case(
        "E1",
        "remove_passthrough_activation (PReLU)",
        lambda: [nn.PReLU(dtype=DTYPE)],
        lambda m: remove_passthrough_activation(m[0]),
    ),
    Case("E2", "clip_as_relu", lambda: [_conv(3, 4)], lambda m: clip_as_relu(m[0])),
    Case(
        "E3",
        "add_repeat_interleave_anchor",
        lambda: [_conv(7, 12, padding=1)],
        lambda m: add_repeat_interleave_anchor(m[0], 4, 3, 4),
    ),
    Case(
        "E4",
        "carry_identity_first",
        lambda: [_conv(3, 8, padding=1)],
        lambda m: carry_identity_first(m[0]),
    ),
    Case(
        "E4",
        "extend_activation",
        lambda: [nn.ReLU()],
        lambda m: extend_activation(m[0], 3, real_channels=8),
    ),
    Case(
        "E4",
        "extend_prelu",
        lambda: [nn.PReLU(8, dtype=DTYPE)],
        lambda m: extend_prelu(m[0], 3),
    ),
    Case(
        "E5",
        "merge_dual_stream",
        lambda: [_conv(3, 4, padding=1), _conv(3, 2, padding=1)],
        lambda m: merge_dual_stream(*m),
    ),
    Case(
        "E5",
        "merge_activations",
        lambda: [nn.ReLU(), nn.ReLU()],
        lambda m: merge_activations(*m),
    ),
    Case(
        "E6",
        "merge_summed_convs",
        lambda: [_conv(4, 3, padding=1), _conv(2, 3, padding=1)],
        lambda m: merge_summed_convs(*m),
    ),
    Case(
        "E7",
        "move_elementwise_before_pixel_shuffle",
        lambda: [nn.PixelShuffle(2), nn.ReLU()],
        lambda m: move_elementwise_before_pixel_shuffle(nn.Sequential(*m)),
    ),
    Case(
        "E7",
        "move_elementwise_after_pixel_shuffle",
        lambda: [nn.ReLU(), nn.PixelShuffle(2)],
        lambda m: move_elementwise_after_pixel_shuffle(nn.Sequential(*m)),
    ),
    Case(
        "E8", "pad_output_channels", lambda: [_conv(3, 5)], lambda m: pad_output_channels(m[0], 4)
    ),
    Case(
        "E10",
        "rescale_channels",
        lambda: [_conv(3, 4, padding=1), nn.ReLU(), _conv(4, 2, padding=1)],
        lambda m: rescale_channels(*m, torch.tensor([0.5, 2.0, 3.0, 1.0], dtype=DTYPE)),
    ),
    Case(
        "R24",
        "prelu_as_relu_pair",
        lambda: [
            _conv(3, 4, padding=1),
            nn.PReLU(4, init=-0.4, dtype=DTYPE),
            _conv(4, 2, padding=1),
        ],
        lambda m: prelu_as_relu_pair(*m),
    ),
    Case(
        "R25",
        "split_channel",
        lambda: [_conv(3, 4, padding=1), nn.ReLU(), _conv(4, 2, padding=1)],
        lambda m: split_channel(*m, 1, torch.ones(2, 3, 3, dtype=DTYPE)),
    ),
    Case(
        "E11",
        "negate_nonnegative_channels",
        lambda: [_nonnegative_row_conv(3, 4), nn.PReLU(dtype=DTYPE), _conv(4, 2, padding=1)],
        lambda m: negate_nonnegative_channels(
            *m,
            [1],
            _tensor(2.0),
            _tensor(0.5),
            torch.zeros(3, dtype=DTYPE),
            torch.ones(3, dtype=DTYPE),
        ),
    ),
]

MODULE_RULES = sorted({case.rule for case in CASES})


def _torch_base(module: nn.Module) -> type[nn.Module]:
    return type(module)  # the cases build plain torch modules


SWAPS = [
    pytest.param(case, index, id=f"{case.rule}-{case.label}-{index}")
    for case in CASES
    for index in range(len(case.build()))
]

OVERRIDE_SWAPS = [
    pytest.param(case, index, subclass, id=f"{case.rule}-{case.label}-{index}-{subclass.__name__}")
    for case in CASES
    for index, module in enumerate(case.build())
    for subclass in OVERRIDING[_torch_base(module)]
]


def _example_input(module: nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    channels = {
        nn.Conv2d: lambda m: m.in_channels,
        nn.ConvTranspose2d: lambda m: m.in_channels,
        nn.BatchNorm2d: lambda m: m.num_features,
        nn.PReLU: lambda m: m.num_parameters,
    }.get(_torch_base(module), lambda m: 4)(module)
    if isinstance(module, nn.BatchNorm1d):  # (N, C, L)
        return torch.randn(2, module.num_features, 6, dtype=DTYPE)
    return torch.randn(2, channels, 6, 6, dtype=DTYPE)


def _flat(result: object) -> list[torch.Tensor]:
    """Every tensor in the state of a rule's result (a module, or a tuple of modules)."""
    if isinstance(result, nn.Module):
        return list(result.state_dict().values())
    return [t for part in result for t in _flat(part)]  # type: ignore[union-attr]


def _refusal(case: Case, modules: list[nn.Module]) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        case.apply(modules)
    error = info.value
    assert error.rule == case.rule
    assert any(error.condition is c for c in get_rule(case.rule).preconditions)
    return error


def test_every_rule_that_takes_modules_is_covered() -> None:
    """The 32 rules whose transforms take torch modules (R6, R12, E9 take numbers/tensors)."""
    expected = ["R1", "R2", "R3", "R4", "R5", "R7", "R8", "R9", "R10", "R11", "R13", "R14"]
    expected += ["R15", "R16", "R17", "R18", "R20", "R21", "R22", "R23", "R24", "R25"]
    expected += ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E10", "E11"]
    assert sorted(expected) == MODULE_RULES


# A torch module of each class on which its overriding subclasses are seen to differ (a
# TF-"same" conv only differs where its padding is asymmetric: stride 2 on an even size).
DEMONSTRATION = {
    nn.Conv2d: lambda: _conv(3, 4, stride=2),
    nn.BatchNorm2d: lambda: _bn(4),
    nn.BatchNorm1d: lambda: _bn1d(4),
    nn.Linear: lambda: nn.Linear(6, 3, dtype=DTYPE),
    nn.ConvTranspose2d: lambda: nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, dtype=DTYPE),
    nn.AvgPool2d: lambda: nn.AvgPool2d(2),
    nn.PixelShuffle: lambda: nn.PixelShuffle(2),
    nn.ReLU: nn.ReLU,
    nn.PReLU: lambda: nn.PReLU(dtype=DTYPE),
}


@pytest.mark.parametrize(
    ("base", "subclass"), [(b, s) for b, subs in OVERRIDING.items() for s in subs]
)
def test_each_overriding_subclass_really_computes_something_else(base, subclass) -> None:
    module = DEMONSTRATION[base]()
    x = _example_input(module)
    with torch.no_grad():
        original, overridden = module(x), retyped(module, subclass)(x)
    assert original.shape != overridden.shape or not torch.allclose(original, overridden)


@pytest.mark.parametrize(("case", "index", "subclass"), OVERRIDE_SWAPS)
def test_an_overriding_subclass_is_refused(case: Case, index: int, subclass: type) -> None:
    modules = case.build()
    base = type(modules[index])
    modules[index] = retyped(modules[index], subclass)
    error = _refusal(case, modules)
    assert subclass.__name__ in error.detail
    assert f"torch.nn.{base.__name__}" in error.detail


@pytest.mark.parametrize(("case", "index"), SWAPS)
def test_a_module_with_a_forward_hook_is_refused(case: Case, index: int) -> None:
    modules = case.build()
    modules[index].register_forward_hook(lambda module, args, output: output + 1)
    assert "forward hooks" in _refusal(case, modules).detail


@pytest.mark.parametrize(("case", "index"), SWAPS)
def test_a_subclass_that_only_adds_attributes_is_accepted(case: Case, index: int) -> None:
    modules = case.build()
    plain = case.apply(copy.deepcopy(modules))
    modules[index] = retyped(modules[index], tagged(type(modules[index])))
    result = case.apply(modules)
    for got, want in zip(_flat(result), _flat(plain), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_pre_hooks_instance_forwards_and_global_hooks_are_refused() -> None:
    case = CASES[0]  # R1
    modules = case.build()
    modules[0].register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    assert "forward hooks" in _refusal(case, modules).detail

    modules = case.build()
    modules[1].forward = lambda x: x  # type: ignore[method-assign]
    assert "has its own forward" in _refusal(case, modules).detail

    handle = nn.modules.module.register_module_forward_hook(lambda m, a, out: out)
    try:
        assert "global forward hooks" in _refusal(case, case.build()).detail
    finally:
        handle.remove()
    case.apply(case.build())  # accepted again once the hook is gone


def test_violation_names_the_class_and_the_expected_torch_class() -> None:
    assert torch_semantics_violation(nn.ReLU(), nn.Conv2d) == ("got ReLU, expected torch.nn.Conv2d")
    assert torch_semantics_violation(nn.ReLU(), (nn.Conv2d, nn.ConvTranspose2d)) == (
        "got ReLU, expected torch.nn.Conv2d or torch.nn.ConvTranspose2d"
    )
    module = retyped(_conv(3, 4), TFSameConv2d)
    assert torch_semantics_violation(module, nn.Conv2d) == (
        "TFSameConv2d overrides forward of torch.nn.Conv2d, so it may compute something else"
    )
    module = retyped(_conv(3, 4), FlippedConv2d)
    assert torch_semantics_violation(module, nn.Conv2d) == (
        "FlippedConv2d overrides _conv_forward of torch.nn.Conv2d, so it may compute something else"
    )
    assert torch_semantics_violation(retyped(_conv(3, 4), tagged(nn.Conv2d)), nn.Conv2d) is None
    assert torch_semantics_violation(_conv(3, 4), nn.Conv2d) is None
