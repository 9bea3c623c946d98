"""A corpus of realistic wrong conversions (and harmless edits) of real converted models.

Each case starts from a reference model with trained-magnitude weights, converts it with the
library (:func:`reference_models.conversions.convert`), and applies one *wrong* transformation
the way a buggy converter would (a BatchNorm folded with batch statistics, a merge whose bias
sees a zero-padded image, the anchor in TensorFlow's channel order, …). The oracle is the
original model: ``etds verify`` and :func:`et.testing.assert_equivalent` must flag every
harmful case and accept every harmless one. Nothing here hand-picks outputs.

Trained-like weights: ``N(0, 1/fan_in)`` kernels and biases ``0.05·N(0, 1) + 0.01``, with the
layer that writes the output scaled by 0.1 and (ETDS) the paper's residual-stream
initialisation kept, so the output is the upsampled input plus a small learned correction, as
in a trained model. That keeps the outputs mostly inside [0, 1], where the clamp of ``etds
verify`` hides nothing; random weights everywhere saturate most outputs at 0 or 1 and hide
small errors (measured: a 1e-4 bias error then shows as 1e-5/255 on mid-grey inputs).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import torch
from torch import nn

from et.rules.fuse_conv_bn import fuse_conv_bn
from et.rules.merge_1x1_kxk import merge_1x1_kxk
from et.rules.merge_sequential_convs import dense_weight
from et.rules.repeat_interleave_conv import add_repeat_interleave_anchor
from reference_models import ABPN, ECBSR, ETDS
from reference_models.conversions import convert


@dataclass(frozen=True)
class SeededCase:
    """An original model and a (possibly wrong) conversion of it.

    ``harmful``: the two compute different images on the declared ``domain``.
    ``domain``: the inputs on which :func:`et.testing.assert_equivalent` compares them.
    ``verify_catches``: what ``etds verify`` (inputs in [0, 1], default settings) is expected
    to say; ``False`` for a harmful case documents a blind spot (see ``why``).
    ``samples`` and ``mode``: how :func:`et.testing.assert_equivalent` is called (a check at
    one or two samples must still feed non-constant images; ECB-style blocks need ``"train"``).
    ``checkpoint``: a reference model that ``etds verify`` can load from a state dict.
    """

    name: str
    original: nn.Module
    broken: nn.Module
    harmful: bool
    domain: tuple[float, float] = (0.0, 1.0)
    verify_catches: bool = True
    input_shape: tuple[int, int, int] = (3, 12, 12)
    why: str = ""
    samples: int = 8
    mode: str = "eval"
    checkpoint: bool = True


def trained(model: nn.Module, seed: int, last: nn.Module | None = None) -> nn.Module:
    """Trained-magnitude weights: ``N(0, 1/fan_in)`` kernels, small non-zero biases/slopes;
    the parameters of ``last`` (the layer that writes the output) scaled by 0.1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.dim() == 4:
                param.copy_(noise / param[0].numel() ** 0.5)
            else:
                param.copy_(0.05 * noise + 0.01)
        for param in last.parameters() if last is not None else ():
            param.mul_(0.1)
    # float64 throughout, so a right conversion is exact to ~1e-15 and assert_equivalent's
    # 1e-9 tolerance separates rounding from every seeded error
    return model.double().eval()


def _etds_x3(seed: int = 0) -> ETDS:
    model = ETDS(3, 3, 3, num_block=2, num_feat=16, num_residual_feat=3)
    trained(model, seed, last=model.conv_last)
    model.init_weights()  # the residual stream: identity, zero couplings, repeat anchor
    return model.double().eval()


def _abpn_x3(seed: int) -> ABPN:
    model = ABPN(8, 2, 3)
    return trained(model, seed, last=model.backbone[-1])


def _ecbsr_x2(seed: int) -> ECBSR:
    model = ECBSR(3, 3, 2, num_block=1, num_feat=8)
    return trained(model, seed, last=model.backbone[-1])


# --------------------------------------------------------------------------- harmful cases


def bn_folded_with_batch_statistics() -> SeededCase:
    """R1 applied with the statistics of one calibration batch instead of the running ones.

    The training model has ``conv_first → BN`` (eval mode, non-default running statistics);
    the original keeps the exact fold, the buggy converter folds the BN as it was in training
    mode on a batch of images.
    """
    model = _etds_x3(seed=1)
    conv = model.conv_first
    bn = nn.BatchNorm2d(conv.out_channels, dtype=torch.float64)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        bn.running_mean.copy_(0.1 * torch.randn(conv.out_channels, generator=generator))
        bn.running_var.copy_(0.5 + torch.rand(conv.out_channels, generator=generator))
        bn.weight.copy_(1 + 0.1 * torch.randn(conv.out_channels, generator=generator))
        bn.bias.copy_(0.05 * torch.randn(conv.out_channels, generator=generator))
    bn.eval()
    original = copy.deepcopy(model)
    original.conv_first = fuse_conv_bn(conv, bn)  # the exact fold: BN(conv(x)) in eval mode

    calibration = torch.rand(8, 3, 16, 16, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        features = conv(calibration)
    batch_bn = copy.deepcopy(bn)
    with torch.no_grad():  # what train-mode BN normalises with: this batch's mean and variance
        batch_bn.running_mean.copy_(features.mean(dim=(0, 2, 3)))
        batch_bn.running_var.copy_(features.var(dim=(0, 2, 3), unbiased=False))
    wrong = copy.deepcopy(model)
    wrong.conv_first = fuse_conv_bn(conv, batch_bn)
    return SeededCase("bn_batch_statistics", original.eval(), convert(wrong), harmful=True)


def _merge_with_zero_padded_bias(pointwise: nn.Conv2d, conv: nn.Conv2d, border="bias"):
    """R7 done wrong: b₁ pushed through the K×K as a 1×1 image padded with *zeros*.

    ``b = b₂ + Σ_m W₂[o, m, centre]·b₁[m]`` (only the centre tap sees b₁) instead of the sum
    over every tap that bias padding gives. The weights are right.
    """
    merged = merge_1x1_kxk(pointwise, conv, border=border)
    b1 = pointwise.bias.detach().to(torch.float64)
    w2 = conv.weight.detach().to(torch.float64)
    kh, kw = w2.shape[2:]
    centre_only = conv.bias.detach().to(torch.float64) + w2[:, :, kh // 2, kw // 2] @ b1
    with torch.no_grad():
        merged.bias.copy_(centre_only.to(merged.bias.dtype))
    return merged


def zero_instead_of_bias_padding() -> SeededCase:
    """ECBSR's 1×1→3×3 branches merged as if the 1×1 output were padded with zeros."""
    original = _ecbsr_x2(seed=2)
    with mock.patch(
        "reference_models.conversions.ecbsr.merge_1x1_kxk", _merge_with_zero_padded_bias
    ):
        broken = convert(original)
    return SeededCase("zero_padding_in_1x1_3x3_merge", original, broken, harmful=True)


def zero_padded_sequence_merged_as_bias_padded() -> SeededCase:
    """The converse mistake: a *zero*-padded ``1×1 → 3×3`` merged with the bias-padding formula.

    Only the border ring differs (the interior sees ``b₁`` everywhere either way), so this is
    the case where a border-blind check would pass. ``assert_equivalent`` only: the sequence is
    no reference architecture that ``etds verify`` can load.
    """
    generator = torch.Generator().manual_seed(3)
    pointwise = nn.Conv2d(3, 6, 1)
    kxk = nn.Conv2d(6, 4, 3, padding=1)
    for module in (pointwise, kxk):
        trained(module, seed=int(torch.randint(0, 1000, (1,), generator=generator)))
    original = nn.Sequential(pointwise, kxk).eval()
    broken = merge_1x1_kxk(pointwise, kxk, border="bias")  # wrong: the original pads with 0
    return SeededCase(
        "zero_padded_sequence_merged_as_bias_padded",
        original,
        broken,
        harmful=True,
        verify_catches=False,
        why="not a checkpoint: assert_equivalent only",
        checkpoint=False,
    )


def pixel_shuffle_order_confused() -> SeededCase:
    """E3's anchor in TensorFlow's tiled order (``x.repeat``) instead of ``repeat_interleave``."""
    original = _abpn_x3(seed=4)
    tiled = functools.partial(add_repeat_interleave_anchor, order="tiled")
    with mock.patch("et.rules.carry_identity.add_repeat_interleave_anchor", tiled):
        broken = convert(original)
    return SeededCase("pixel_shuffle_tiled_anchor", original, broken, harmful=True)


def identity_channel_slightly_off() -> SeededCase:
    """One Dirac tap of a carried colour in a middle ECBSRET conv: 1 → 1.001."""
    original = _ecbsr_x2(seed=5)
    broken = convert(original)
    middle = broken.backbone[1][0]
    carried_out = middle.out_channels - 2  # the middle (green) carried colour
    carried_in = middle.in_channels - 2
    with torch.no_grad():
        if middle.weight[carried_out, carried_in, 1, 1] != 1:
            raise AssertionError("the layout changed: no Dirac tap where E4 writes it")
        middle.weight[carried_out, carried_in, 1, 1] = 1.001
    return SeededCase("identity_tap_1.001", original, broken, harmful=True)


def bias_error_in_hidden_layer() -> SeededCase:
    """A bias off by 1e-4 in one channel of one hidden layer of ETDSForInference."""
    original = _etds_x3(seed=6)
    broken = convert(original)
    with torch.no_grad():
        broken.backbone_convs[1].bias[2] += 1e-4
    return SeededCase(
        "bias_1e-4_hidden_layer",
        original,
        broken,
        harmful=True,
        why="the layers after it attenuate 1e-4 to ~0.002/255 at the output, for every input: "
        "under the float32 figure's 0.01/255, caught by the stored weights run in float64",
    )


def bias_error_in_last_layer() -> SeededCase:
    """A bias off by 1e-4 in one output channel of the last conv (before the clip)."""
    original = _etds_x3(seed=7)
    broken = convert(original)
    with torch.no_grad():
        broken.conv_last.bias[10] += 1e-4
    return SeededCase("bias_1e-4_last_layer", original, broken, harmful=True)


def relu_on_identity_channels_negative_inputs() -> SeededCase:
    """ABPN_ET carries the input through ReLUs: exact on x ≥ 0 only (E1/E4's precondition).

    On a domain with negative values the shortcut of ABPN adds x < 0 while the carried
    channels were clipped to 0: a real difference ``assert_equivalent`` must find. ``etds
    verify`` feeds [0, 1] only, where the two are equal by the theorem; it cannot see this,
    and must not (the conversion is right for images); the guard is E4 refusing the domain.
    """
    original = _abpn_x3(seed=8)
    return SeededCase(
        "relu_on_identity_channels_negative_inputs",
        original,
        convert(original),
        harmful=True,
        domain=(-1.0, 1.0),
        verify_catches=False,
        why="verify's inputs lie in [0, 1], where the conversion is exact",
    )


def _dense_by_tiling(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """A grouped weight made dense the wrong way: every output reads every group's inputs."""
    return weight.repeat(1, groups, 1, 1)


def grouped_conv_merged_as_dense() -> SeededCase:
    """A 2-group backbone conv made dense by tiling instead of block-diagonal placement."""
    model = _etds_x3(seed=9)
    grouped = nn.Conv2d(13, 13, 3, padding=1, dtype=torch.float64)  # 16 − 3 residual channels
    generator = torch.Generator().manual_seed(9)
    # a 2-group conv needs an even width; use the first 12 channels as two groups of 6 and let
    # channel 12 read nothing, which is still a grouped (block-diagonal) layer
    weight = torch.randn(12, 6, 3, 3, generator=generator, dtype=torch.float64) / 54**0.5
    right = torch.zeros(13, 13, 3, 3, dtype=torch.float64)
    right[:12, :12] = dense_weight(weight, 2)
    wrong = torch.zeros_like(right)
    wrong[:12, :12] = _dense_by_tiling(weight, 2)
    original = copy.deepcopy(model)
    broken_source = copy.deepcopy(model)
    for target, dense in ((original, right), (broken_source, wrong)):
        conv = copy.deepcopy(grouped)
        with torch.no_grad():
            conv.weight.copy_(dense)
            conv.bias.copy_(model.backbone_convs[0].bias)
        target.backbone_convs[0] = conv
    return SeededCase("grouped_conv_as_dense", original.eval(), convert(broken_source), True)


def _block(seed: int, cin: int = 3, cout: int = 4, **kwargs) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=kwargs.pop("padding", 1), **kwargs)
    return trained(conv, seed)


def _bare(name: str, original: nn.Module, broken: nn.Module, harmful: bool, **more) -> SeededCase:
    """A case on bare blocks: ``assert_equivalent`` only (``etds verify`` loads checkpoints)."""
    return SeededCase(
        name,
        original,
        broken,
        harmful,
        verify_catches=False,
        why="not a checkpoint: assert_equivalent only",
        checkpoint=False,
        **more,
    )


def kernel_flipped_one_sample() -> SeededCase:
    """A converter that flips the kernel (convolution vs correlation), checked at samples=1."""
    conv = _block(20)
    flipped = copy.deepcopy(conv)
    with torch.no_grad():
        flipped.weight.copy_(conv.weight.flip(-1, -2))
    return _bare("kernel_flipped_samples_1", conv, flipped, True, samples=1)


def input_channels_permuted_two_samples() -> SeededCase:
    """RGB read as BGR by the converted conv, checked at samples=2."""
    conv = _block(21)
    permuted = copy.deepcopy(conv)
    with torch.no_grad():
        permuted.weight.copy_(conv.weight[:, [2, 1, 0]])
    return _bare("input_channels_bgr_samples_2", conv, permuted, True, samples=2)


class _TFSamePadding(nn.Module):
    """TensorFlow "same" padding then a stride-2 3×3 conv (0 before, 1 after at even sizes)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n in (x.shape[-1], x.shape[-2]):
            total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
            pads += [total // 2, total - total // 2]
        return self.conv(torch.nn.functional.pad(x, pads))


def tf_same_stride_2_as_static_padding() -> SeededCase:
    """The TF port rebuilt with ``padding=1``: right at odd sizes only; checked from 11×11."""
    conv = _block(22, stride=2, padding=0)
    static = copy.deepcopy(conv)
    static.padding = (1, 1)
    return _bare(
        "tf_same_stride_2_static_padding",
        _TFSamePadding(conv),
        static,
        True,
        input_shape=(3, 11, 11),
    )


# --------------------------------------------------------------------------- harmless cases


def x3_dummy_channel_changed() -> SeededCase:
    """E8's ×3 dummy output (27 → 28, sliced off before PixelShuffle) given random weights.

    Only what reaches channel 27 and nothing else: its row of ``conv_last`` (its column of
    ``conv_clip`` is zero, so that row feeds nothing kept) and its row of ``conv_clip``.
    """
    original = _etds_x3(seed=10)
    broken = convert(original)
    dummy = 27
    if broken.conv_last.out_channels != 28 or broken.conv_clip.weight[:dummy, dummy].any():
        raise AssertionError("the ×3 layout changed: no isolated dummy output 27")
    generator = torch.Generator().manual_seed(10)
    with torch.no_grad():
        for conv in (broken.conv_last, broken.conv_clip):
            conv.weight[dummy] = torch.randn(
                conv.weight[dummy].shape, generator=generator, dtype=torch.float64
            )
            conv.bias[dummy] = 5.0
    return SeededCase("x3_dummy_channel_changed", original, broken, harmful=False)


def x3_dummy_column_changed() -> SeededCase:
    """The contrast to the harmless case: the dummy's *column* of ``conv_clip`` feeds real
    outputs; with a non-zero dummy activation that is a real error."""
    original = _etds_x3(seed=10)
    broken = convert(original)
    dummy = 27
    with torch.no_grad():
        broken.conv_last.bias[dummy] = 0.5  # the dummy now carries relu(0.5 + …) > 0
        broken.conv_clip.weight[4, dummy] = 0.01
    return SeededCase("x3_dummy_column_changed", original, broken, harmful=True)


def _conv_bn_float32(seed: int) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    conv, bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) / 27**0.5)
        bn.running_mean.copy_(0.3 * torch.randn(8, generator=generator))
        bn.running_var.copy_(0.5 + torch.rand(8, generator=generator))
        bn.weight.copy_(1 + 0.2 * torch.randn(8, generator=generator))
    return nn.Sequential(conv, bn).eval()


def float32_fold() -> SeededCase:
    """A BatchNorm folded in float32 (R1): right, only rounded; judged as float32."""
    original = _conv_bn_float32(30)
    return _bare("float32_fold", original, fuse_conv_bn(original[0], original[1]), False)


class _HardCodedFloat32(nn.Module):
    """Third-party code that casts its input to float32 inside ``forward``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float())


def hard_coded_float32_fold() -> SeededCase:
    """The same fold of a block whose code hard-codes float32 (no float64 oracle possible)."""
    inner = _conv_bn_float32(31)
    fused = fuse_conv_bn(inner[0], inner[1])
    return _bare("hard_coded_float32_fold", _HardCodedFloat32(inner), fused, False)


class _TrainOnlyBranches(nn.Module):
    """As the original ECB code: branches in training mode, a deployed conv (stale) in eval."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.conv3x3, self.conv1x1 = _block(seed), trained(nn.Conv2d(3, 4, 1), seed + 1)
        self.deployed = nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
        nn.init.zeros_(self.deployed.weight)
        nn.init.zeros_(self.deployed.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.conv3x3(x) + self.conv1x1(x)
        return self.deployed(x)


def train_only_branches_merged() -> SeededCase:
    """R3 merged the training-mode branches right; only a train-mode check can see it."""
    block = _TrainOnlyBranches(32)
    merged = copy.deepcopy(block.conv3x3)
    with torch.no_grad():
        merged.weight[:, :, 1, 1] += block.conv1x1.weight[:, :, 0, 0]
        merged.bias += block.conv1x1.bias
    return _bare("train_only_branches_merged", block.eval(), merged, False, mode="train")


BUILDERS: tuple[Callable[[], SeededCase], ...] = (
    bn_folded_with_batch_statistics,
    zero_instead_of_bias_padding,
    zero_padded_sequence_merged_as_bias_padded,
    pixel_shuffle_order_confused,
    identity_channel_slightly_off,
    bias_error_in_hidden_layer,
    bias_error_in_last_layer,
    relu_on_identity_channels_negative_inputs,
    grouped_conv_merged_as_dense,
    x3_dummy_channel_changed,
    x3_dummy_column_changed,
    kernel_flipped_one_sample,
    input_channels_permuted_two_samples,
    tf_same_stride_2_as_static_padding,
    float32_fold,
    hard_coded_float32_fold,
    train_only_branches_merged,
)
