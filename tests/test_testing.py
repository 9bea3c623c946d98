"""The checker (:mod:`et.testing`) has no blind spot that the issue lists, and fails for the
right reasons: flipped kernels and permuted channels at 1 and 2 samples, TF-"same" padding
that only differs at one parity, float32 folds judged in float32, code that hard-codes
float32, train-only branches, the declared output clamp, NaN.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from et.rules.fuse_conv_bn import fuse_conv_bn
from et.testing import assert_equivalent, compare_outputs, first_output, probe_batches
from reference_models import ABPN, ECBSR, ETDS
from reference_models.architectures.ecbsr import ECBSRT
from reference_models.architectures.etds import (
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSOnlyET,
)
from reference_models.conversions import convert
from reference_models.conversions.verification import verify_models


def _conv(seed: int, cin: int = 3, cout: int = 4, **kwargs) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(cin, cout, 3, padding=kwargs.pop("padding", 1), **kwargs)
    return conv.double().eval()


@pytest.mark.parametrize("samples", [1, 2])
def test_a_flipped_kernel_is_caught_with_one_or_two_samples(samples: int) -> None:
    conv = _conv(0)
    flipped = copy.deepcopy(conv)
    with torch.no_grad():
        flipped.weight.copy_(conv.weight.flip(-1, -2))
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(conv, flipped, samples=samples)


@pytest.mark.parametrize("samples", [1, 2])
def test_permuted_input_channels_are_caught_with_one_or_two_samples(samples: int) -> None:
    conv = _conv(1)
    permuted = copy.deepcopy(conv)
    with torch.no_grad():
        permuted.weight.copy_(conv.weight[:, [2, 0, 1]])
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(conv, permuted, samples=samples)


class TFSameStride2(nn.Module):
    """TensorFlow's "same" padding for a 3×3 stride-2 conv: ``pad = max((⌈n/2⌉−1)·2+3−n, 0)``,
    the smaller half before (0 before, 1 after at even sizes; 1 and 1 at odd sizes)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n in (x.shape[-1], x.shape[-2]):
            total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.conv.weight, self.conv.bias, stride=2)


def test_tf_same_stride_2_rebuilt_with_static_padding_is_caught() -> None:
    conv = _conv(2, stride=2, padding=1)  # the static rebuild: one pixel on every side
    original = TFSameStride2(_conv(2, stride=2, padding=0))
    # the premise: at an odd size the two agree, so a one-size check at 11×11 passes
    assert_equivalent(original, conv, input_shape=(3, 11, 11), sizes=[(11, 11)])
    with pytest.raises(AssertionError, match="12×14 input"):
        assert_equivalent(original, conv, input_shape=(3, 11, 11))  # adds 12×14 by default
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(original, conv, input_shape=(3, 12, 12), samples=1)


def _conv_bn_float32(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    conv, bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return nn.Sequential(conv, bn).eval()


def test_a_float32_fold_is_judged_as_float32_not_as_float64() -> None:
    original = _conv_bn_float32(3)
    fused = fuse_conv_bn(original[0], original[1])
    assert fused.weight.dtype == torch.float32
    report = assert_equivalent(original, fused)
    assert report.dtype == torch.float32 and report.oracle_dtype == torch.float64
    assert "float32 vs a float64 oracle" in report.describe()
    # the premise: in float64 it is only rounding that fails (the old default's false alarm)
    with pytest.raises(AssertionError, match="float64 vs a float64 oracle"):
        assert_equivalent(original, fused, dtype=torch.float64)
    # and a real error of 1e-4 in float32 is still caught
    wrong = copy.deepcopy(fused)
    with torch.no_grad():
        wrong.bias[0] += 1e-4
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(original, wrong)


class HardCodedFloat32(nn.Module):
    """Third-party style: casts its input and weights to float32 inside ``forward``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.float()(x.float())


class CastsInputOnly(nn.Module):
    """Casts only its input: with float64 weights this raises a dtype mismatch."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float())


@pytest.mark.parametrize("wrapper", [HardCodedFloat32, CastsInputOnly])
def test_code_that_hard_codes_float32_neither_crashes_nor_false_alarms(wrapper) -> None:
    original = wrapper(_conv_bn_float32(4))
    fused = fuse_conv_bn(original.inner[0], original.inner[1])
    for dtype in (None, torch.float64):
        report = assert_equivalent(original, fused, dtype=dtype)
        assert report.oracle_dtype == torch.float32  # stated: the oracle could not be float64
        assert report.weights64_error is None  # and the stored-weights check did not run
        assert "stored weights in float64: not run" in report.describe64()
    with pytest.raises(AssertionError, match="not equivalent"):  # still a real checker
        assert_equivalent(original, fused, dtype=torch.float64, atol=0, rtol=0, rounding_factor=0)
    wrong = copy.deepcopy(fused)
    with torch.no_grad():
        wrong.weight[0, 0, 0, 0] += 1e-3
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(original, wrong)
    converted_hard_coded = wrapper(copy.deepcopy(fused))  # the converted side casts too
    assert_equivalent(original.inner, converted_hard_coded, dtype=torch.float64)


class TrainOnlyBranches(nn.Module):
    """As the original ECB code: the branches run only in training mode; eval mode runs a
    deployed conv that a re-parameterization would fill (here left stale, at zero)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv3x3 = nn.Conv2d(3, 4, 3, padding=1).double()
        self.conv1x1 = nn.Conv2d(3, 4, 1).double()
        self.deployed = nn.Conv2d(3, 4, 3, padding=1).double()
        nn.init.zeros_(self.deployed.weight)
        nn.init.zeros_(self.deployed.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.conv3x3(x) + self.conv1x1(x)
        return self.deployed(x)


def _merged(block: TrainOnlyBranches) -> nn.Conv2d:
    merged = copy.deepcopy(block.conv3x3)
    with torch.no_grad():
        merged.weight[:, :, 1, 1] += block.conv1x1.weight[:, :, 0, 0]
        merged.bias += block.conv1x1.bias
    return merged


def test_train_mode_is_explicit_reported_and_never_forced() -> None:
    block = TrainOnlyBranches().eval()
    merged = _merged(block)
    report = assert_equivalent(block, merged, mode="train")
    assert report.mode == "train" and "train mode" in report.describe()
    assert not block.training  # the argument is not modified
    with pytest.raises(AssertionError, match="eval mode"):
        assert_equivalent(block, merged)  # eval mode (the default) runs the stale conv
    with pytest.raises(ValueError, match="mode"):
        assert_equivalent(block, merged, mode="inference")
    assert verify_models(block, merged, colors=3, mode="train").mode == "train"


FAMILIES = {
    "ETDS": lambda: ETDS(3, 3, 4, num_block=2, num_feat=16, num_residual_feat=3),
    "ETDSAblationResidual": lambda: ETDSAblationResidual(3, 3, 3, 2, 16, 3),
    "ETDSAblationAdvancedResidual": lambda: ETDSAblationAdvancedResidual(3, 3, 2, 2, 16, 3),
    "ETDSOnlyET": lambda: ETDSOnlyET(3, 3, 2, num_block=2, num_feat=13, num_residual_feat=3),
    "ABPN": lambda: ABPN(8, 2, 3),
    "ECBSR": lambda: ECBSR(3, 3, 2, num_block=1, num_feat=8),
    "ECBSRT": lambda: ECBSRT(3, 3, 2, num_block=1, num_feat=8),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_reference_model_equals_its_conversion_without_arguments(family: str) -> None:
    torch.manual_seed(6)
    model = FAMILIES[family]().eval()  # random weights: outputs leave [0, 1]
    converted = convert(model)
    assert converted.output_clamp == (0.0, 1.0)
    report = assert_equivalent(model, converted)
    assert report.dtype == torch.float32
    # the premise: the declared clamp is what makes the comparison meaningful
    unclamped = copy.deepcopy(converted)
    unclamped.output_clamp = None
    outputs = first_output(model(torch.rand(2, 3, 12, 12)))
    if outputs.min() < 0 or outputs.max() > 1:
        with pytest.raises(AssertionError, match="not equivalent"):
            assert_equivalent(model, unclamped)


def test_two_forms_that_both_declare_the_clamp_are_compared_as_they_compute() -> None:
    """A rewrite of an inference form (e.g. the E10 INT8 layout) keeps its declared clamp; with
    random weights the clip tail does not clamp, so clamping one side only would be a false
    alarm, and clamping both would hide a broken tail."""
    torch.manual_seed(3)
    converted = convert(ABPN(8, 2, 3).eval()).double()  # float64: the copy must match exactly
    with torch.no_grad():
        for parameter in converted.parameters():
            parameter.add_(torch.randn_like(parameter))  # no longer an exact E2 clip tail
    assert (
        compare_outputs(converted, copy.deepcopy(converted), torch.rand(2, 3, 9, 9)).max_abs_error
        == 0
    )
    broken = copy.deepcopy(converted)
    with torch.no_grad():
        broken.backbone[-2].bias.add_(5.0)  # shifts every output: a broken tail is still seen
    assert (
        compare_outputs(
            converted, broken, torch.rand(2, 3, 9, 9, dtype=torch.float64)
        ).max_abs_error
        > 1
    )


class NaNAt(nn.Module):
    """``inner(x)`` with one output pixel replaced by ``value`` (NaN or ±Inf)."""

    def __init__(self, inner: nn.Module, value: float) -> None:
        super().__init__()
        self.inner, self.value = inner, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x).clone()
        y[0, 0, 0, 0] = self.value
        return y


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("side", ["original", "converted"])
def test_assert_equivalent_and_verify_agree_on_non_finite_outputs(value, side) -> None:
    conv = _conv(7, cout=3)
    bad = NaNAt(conv, value)
    original, converted = (bad, conv) if side == "original" else (conv, bad)
    with pytest.raises(AssertionError, match="NaN or Inf"):
        assert_equivalent(original, converted)
    result = verify_models(original, converted, colors=3)  # clamps: +Inf would become 1
    assert not result.within(1e9)
    assert result.max_abs_error_255 == float("inf")


def test_nan_in_both_is_not_equivalent_either() -> None:
    conv = _conv(8, cout=3)
    with pytest.raises(AssertionError, match="NaN or Inf"):
        assert_equivalent(NaNAt(conv, float("nan")), NaNAt(conv, float("nan")))
    assert not verify_models(NaNAt(conv, float("nan")), NaNAt(conv, float("nan")), colors=3).within(
        1.0
    )


def test_different_output_shapes_are_not_equivalent() -> None:
    with pytest.raises(AssertionError, match="differ in shape"):
        assert_equivalent(_conv(9), _conv(9, cout=5))


def test_first_output_takes_the_first_of_several_and_refuses_others() -> None:
    a, b = torch.zeros(1), torch.ones(1)
    assert first_output(a) is a
    assert first_output((a, b)) is a and first_output([b, a]) is b
    for bad in ((), {"y": a}, "tensor"):
        with pytest.raises(TypeError):
            first_output(bad)


def test_the_report_says_where_in_what_dtype_and_mode() -> None:
    conv = _conv(10)
    wrong = copy.deepcopy(conv)
    with torch.no_grad():
        wrong.bias[2] += 0.5
    report = compare_outputs(conv, wrong, torch.rand(2, 3, 5, 7, dtype=torch.float64))
    assert report.where[1] == 2 and report.size == (5, 7)
    assert abs(report.max_abs_error - 0.5) < 1e-12
    assert (report.dtype, report.oracle_dtype, report.mode) == (
        torch.float64,
        torch.float64,
        "eval",
    )


def _loud_float32_net() -> nn.Module:
    """A float32 net whose own float32 rounding is large (outputs ~10, weights ×4)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 3, 3, padding=1),
    ).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(4)
    return net


def test_a_bias_error_float32_noise_hides_is_caught_by_the_stored_weights_in_float64() -> None:
    """Issue 25: 16 times the original's float32 rounding let a small logic error pass; its
    stored weights run in float64 show it alone."""
    net = _loud_float32_net()
    broken = copy.deepcopy(net)
    with torch.no_grad():
        broken[-1].bias[0] += 2e-5
    net64 = copy.deepcopy(net).double()
    with torch.no_grad():  # the premise, measured here: float32 noise is above the error / 16
        noise = max((net(x.float()) - net64(x)).abs().max() for x in probe_batches(3))
    assert 16 * noise > 2e-5
    report = assert_equivalent(net, broken, weights64=False)  # the float32 figure alone: deaf
    assert report.weights64_error is None
    with pytest.raises(AssertionError, match=r"stored weights in float64: max \|difference\| 2\.0"):
        assert_equivalent(net, broken)


def test_the_stored_weights_tolerance_is_measured_on_the_original_alone() -> None:
    """ρ₆₄ comes from the original: a converted model cannot widen its own tolerance."""
    net = _loud_float32_net()
    exact = assert_equivalent(net, copy.deepcopy(net))
    assert exact.weights64_error == 0  # the same float32 weights, run in float64
    wild = copy.deepcopy(net)
    with torch.no_grad():
        wild[0].weight.mul_(1000)  # far more sensitive to its own rounding
    report = compare_outputs(net, wild, probe_batches(3))
    assert report.weights64_rounding == exact.weights64_rounding
    assert report.unit_roundoff == 2**-24
    assert not report.equivalent(atol=0.0)
