"""The reference model families: shapes, forward semantics against independent oracles, the
ETDS initialisation, and detection round trips (build → state dict → detect → same model)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from et.testing import first_output
from reference_models import (
    ABPN,
    ABPN_ET,
    ARCHITECTURES,
    ECBSR,
    ECBSRET,
    ECBSRT,
    ESPCN,
    ETDS,
    FSRCNN,
    Bicubic,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSForInference,
    ETDSOnlyET,
    Plain,
    SeqConv3x3,
    build_model,
    detect_architecture,
    from_state_dict,
)
from reference_models.architectures.base import aligned_outputs
from reference_models.architectures.ecbsr import LAPLACIAN, SEQ_TYPES, SOBEL_X, SOBEL_Y

COLORS = (1, 3)
SCALES = (2, 3, 4)
DUAL_STREAM = (ETDS, ETDSAblationResidual, ETDSAblationAdvancedResidual)


def small_hparams(arch: str, colors: int, scale: int) -> dict[str, Any]:
    """Small but non-trivial hyper-parameters that follow each family's conventions."""
    etds = {"num_in_ch": colors, "num_out_ch": colors, "upscale": scale, "num_block": 2}
    ecbsr = {**etds, "num_feat": 6, "act_type": "prelu"}
    table: dict[str, dict[str, Any]] = {
        "ETDS": {**etds, "num_feat": 8, "num_residual_feat": colors},
        "ETDSAblationResidual": {**etds, "num_feat": 8, "num_residual_feat": colors},
        "ETDSAblationAdvancedResidual": {**etds, "num_feat": 8, "num_residual_feat": colors},
        "ETDSOnlyET": {**etds, "num_feat": 8, "num_residual_feat": colors},
        "ETDSForInference": {**etds, "num_feat": 8, "num_residual_feat": colors, "align": None},
        "Plain": {**etds, "num_feat": 8},
        "ECBSR": {**ecbsr, "depth_multiplier": 2.0},
        "ECBSRT": ecbsr,
        "ECBSRET": {**ecbsr, "num_extra": None, "align": None},
        "ABPN": {"num_feat": 6, "num_block": 2, "scale": scale, "num_in_ch": colors},
        "ABPN_ET": {
            "num_feat": 6,
            "num_block": 2,
            "scale": scale,
            "num_in_ch": colors,
            "num_extra": None,
            "tail_feat": None,
            "align": None,
        },
        "ESPCN": {"colors": colors, "upscale": scale, "feat1": 64, "feat2": 32},
        "FSRCNN": {"upscale": scale, "colors": colors, "d": 56, "s": 12, "m": 4},
        "Bicubic": {"upscale": scale},
    }
    return table[arch]


def nearest(x: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="nearest")


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("colors", COLORS)
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_forward_shape_every_family(arch: str, colors: int, scale: int) -> None:
    torch.manual_seed(0)
    model = build_model(arch, **small_hparams(arch, colors, scale)).eval()
    x = torch.rand(2, colors, 5, 7)
    with torch.no_grad():
        out = model(x)
    outputs = out if isinstance(out, tuple) else (out,)
    assert len(outputs) == (2 if type(model) in DUAL_STREAM else 1)
    for y in outputs:
        assert y.shape == (2, colors, 5 * scale, 7 * scale)
        assert torch.isfinite(y).all()
    assert model.upscale_factor == scale
    assert model.colors == colors or arch == "Bicubic"  # bicubic takes any colour count


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_hparams_rebuild_the_same_architecture(arch: str) -> None:
    model = build_model(arch, **small_hparams(arch, 3, 3))
    assert model.arch == arch
    rebuilt = type(model)(**model.hparams)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("colors", COLORS)
@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - {"Bicubic"}))
def test_detection_round_trip(arch: str, colors: int, scale: int) -> None:
    """A state dict of a freshly built model is recognised as that model, hyper-parameters
    included (FSRCNN's scale is not in its weights and is passed in, as are the hyper-parameters
    the class declares unseen, which detection reports as unknown until given)."""
    hparams = small_hparams(arch, colors, scale)
    model = build_model(arch, **hparams)
    upscale = scale if arch == "FSRCNN" else None
    unseen = {key: model.hparams[key] for key in type(model).UNSEEN_HPARAMS}
    blind = detect_architecture(model.state_dict(), upscale=upscale)
    assert set(blind.unknown) == set(unseen)
    detected = detect_architecture(model.state_dict(), upscale=upscale, hparams=unseen)
    assert (detected.arch, detected.hparams, detected.unknown) == (arch, hparams | unseen, {})
    loaded = from_state_dict(model.state_dict(), upscale=upscale, hparams=unseen)
    x = torch.rand(1, colors, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(first_output(loaded(x)), first_output(model.eval()(x)))


@given(
    colors=st.sampled_from(COLORS),
    scale=st.integers(1, 4),
    num_block=st.integers(0, 3),
    residual_extra=st.integers(0, 2),
    width=st.integers(2, 9),
    align=st.sampled_from([None, 4, 8]),
)
def test_detection_round_trip_random_sizes(
    colors: int, scale: int, num_block: int, residual_extra: int, width: int, align: int | None
) -> None:
    """Widths, depths, scales and alignments drawn at random survive detection.

    Two documented ambiguities are excluded: with ``num_block = 0`` ETDS and its ablations are
    the same network (reported as ETDS), and an ``align`` that pads ``c·s²`` up to ``c·(s+1)²``
    or beyond reads as the larger scale."""
    residual = colors + residual_extra
    base = {"num_in_ch": colors, "num_out_ch": colors, "upscale": scale, "num_block": num_block}
    cases = [
        ETDS(**base, num_feat=residual + width, num_residual_feat=residual),
        ETDSAblationAdvancedResidual(**base, num_feat=residual + width, num_residual_feat=residual),
        ECBSRT(**base, num_feat=width, act_type="prelu"),
        ABPN(num_feat=width, num_block=num_block, scale=scale, num_in_ch=colors),
    ]
    if aligned_outputs(colors, scale, align) < colors * (scale + 1) ** 2:
        cases += [
            ETDSForInference(**base, num_feat=width, num_residual_feat=colors, align=align),
            ECBSRET(**base, num_feat=width, act_type="prelu", align=align),
            ABPN_ET(
                num_feat=width, num_block=num_block, scale=scale, num_in_ch=colors, align=align
            ),
        ]
    for model in cases:
        detected = detect_architecture(model.state_dict())
        rebuilt = build_model(detected.arch, **detected.hparams)
        if num_block == 0 and isinstance(model, DUAL_STREAM):
            assert detected.arch == "ETDS"
        else:
            assert detected.arch == model.arch
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
        assert rebuilt.upscale_factor == model.upscale_factor
        assert getattr(rebuilt, "out_channels", None) == getattr(model, "out_channels", None)


# ---------------------------------------------------------------- ETDS initialisation


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("colors", COLORS)
@pytest.mark.parametrize("cls", DUAL_STREAM)
def test_etds_initial_low_frequency_is_nearest_upsampling(cls: type, colors: int, scale: int):
    """At initialisation the residual stream is identity → repeat-interleave → PixelShuffle,
    i.e. nearest-neighbour upsampling of any input in [0, ∞)."""
    torch.manual_seed(1)
    model = cls(colors, colors, scale, 3, 4 + colors + 1, colors + 1)
    x = torch.rand(2, colors, 6, 5, dtype=torch.float64) * 3.0
    model = model.double()
    with torch.no_grad():
        total, low = model(x)
    torch.testing.assert_close(low, nearest(x, scale), rtol=0, atol=0)
    # the backbone is random, so the total is not the low-frequency part alone
    assert (total - low).abs().max() > 1e-3


def test_etds_initial_low_frequency_needs_non_negative_inputs() -> None:
    """The ReLUs of the residual stream pass only [0, ∞): a negative input breaks the identity."""
    model = ETDS(3, 3, 2, 2, 8, 3).double()
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64) - 0.5
    with torch.no_grad():
        _, low = model(x)
    assert (low - nearest(x, 2)).abs().max() > 0.1
    torch.testing.assert_close(low, nearest(x.clamp_min(0), 2), rtol=0, atol=0)


def test_etds_streams_are_coupled_only_where_the_architecture_says() -> None:
    """Perturbing the residual stream changes the backbone output in ETDS, not in the ablation."""
    torch.manual_seed(2)
    x = torch.rand(1, 3, 6, 6)
    for cls, coupled in ((ETDS, True), (ETDSAblationResidual, False)):
        model = cls(3, 3, 2, 2, 8, 3)
        with torch.no_grad():
            high_before = model(x)[0] - model(x)[1]
            model.conv_residual_first.bias.add_(0.5)
            high_after = model(x)[0] - model(x)[1]
        assert (not torch.allclose(high_before, high_after)) is coupled


# ---------------------------------------------------------------- shortcuts and tails


@pytest.mark.parametrize("colors", COLORS)
@pytest.mark.parametrize("scale", SCALES)
def test_anchor_shortcuts_are_nearest_upsampling(colors: int, scale: int) -> None:
    """With the learned tail zeroed, the ECBSR/ABPN/ETDSOnlyET shortcut (repeat-interleave,
    or a broadcast add for one colour) followed by PixelShuffle is nearest upsampling."""
    x = torch.rand(1, colors, 5, 4)
    models = [
        ECBSR(colors, colors, scale, 1, 4),
        ECBSRT(colors, colors, scale, 1, 4),
        ABPN(4, 1, scale, num_in_ch=colors),
        ETDSOnlyET(colors, colors, scale, 1, colors + 4, colors),
    ]
    with torch.no_grad():
        for model in models:
            last = list(model.parameters())
            # zero only the final layer: find the parameters that produce c·s² outputs
            for p in last:
                if p.shape[0] == colors * scale**2:
                    p.zero_()
            torch.testing.assert_close(model(x), nearest(x, scale), rtol=0, atol=0)


def test_et_tails_slice_off_the_dummy_channel() -> None:
    """At ×3 the last layer's output after c·s² never reaches the output (``[:, :-1]``)."""
    torch.manual_seed(3)
    x = torch.rand(1, 3, 5, 5)
    for model in (
        ETDSForInference(3, 3, 3, 1, 8, 3),
        ECBSRET(3, 3, 3, 1, 8),
        ABPN_ET(8, 1, 3),
    ):
        assert model(x).shape == (1, 3, 15, 15)
        last = [p for p in model.parameters() if p.shape[0] == 28]
        assert last, "the ×3 ET tail must have 28 channels"
        with torch.no_grad():
            before = model(x)
            for p in last[-2:]:  # the clip conv's weight and bias: its output 27 is the dummy
                p[27:].normal_()
            torch.testing.assert_close(model(x), before, rtol=0, atol=0)
            last[-1][:1].add_(1.0)  # a real channel's bias does reach the output
            assert not torch.equal(model(x), before)


def test_align_option_rounds_up_and_authors_layout_is_default() -> None:
    assert ETDSForInference(3, 3, 3, 1, 8, 3).conv_last.out_channels == 28
    assert ETDSForInference(3, 3, 2, 1, 8, 3).conv_last.out_channels == 12
    assert ETDSForInference(1, 1, 3, 1, 8, 1).conv_last.out_channels == 10
    assert ETDSForInference(1, 1, 3, 1, 8, 1, align=4).conv_last.out_channels == 12
    assert ETDSForInference(3, 3, 2, 1, 8, 3, align=8).conv_last.out_channels == 16
    assert ECBSRET(3, 3, 2, 1, 16).backbone[0][0].out_channels == 20  # 16 + pad + RGB
    assert ABPN_ET(28, 4, 3).backbone[0].out_channels == 32


# ---------------------------------------------------------------- ECB


def seq_oracle(x: torch.Tensor, seq: SeqConv3x3) -> torch.Tensor:
    """Independent oracle: pad the *input* with zeros, then 1×1 (whose border output is then its
    bias b₀), then an unpadded 3×3 — the same as padding the 1×1 output with b₀."""
    y0 = F.conv2d(F.pad(x, (1, 1, 1, 1)), seq.k0, seq.b0)
    if seq.type == "conv1x1-conv3x3":
        return F.conv2d(y0, seq.k1, seq.b1)
    out = torch.empty(y0.shape[0], seq.out_planes, x.shape[2], x.shape[3], dtype=x.dtype)
    for c in range(seq.out_planes):
        kernel = (seq.scale[c, 0] * seq.mask[c, 0]).view(1, 1, 3, 3)
        out[:, c : c + 1] = F.conv2d(y0[:, c : c + 1], kernel) + seq.bias[c]
    return out


@pytest.mark.parametrize("seq_type", SEQ_TYPES)
def test_seqconv_bias_padding_matches_the_oracle(seq_type: str) -> None:
    torch.manual_seed(4)
    seq = SeqConv3x3(seq_type, 3, 5, 2.0).double()
    with torch.no_grad():
        for p in seq.parameters():
            if p.requires_grad:
                p.normal_()  # make biases and scales large so the border matters
        x = torch.rand(2, 3, 6, 7, dtype=torch.float64)
        got = seq(x)
        torch.testing.assert_close(got, seq_oracle(x, seq), rtol=1e-12, atol=1e-12)
        # zero padding of the 1×1 output (the common mistake) differs on the border
        zero_padded = F.pad(F.conv2d(x, seq.k0, seq.b0), (1, 1, 1, 1))
        if seq.type == "conv1x1-conv3x3":
            wrong = F.conv2d(zero_padded, seq.k1, seq.b1)
        else:
            wrong = F.conv2d(zero_padded, seq.scale * seq.mask, seq.bias, groups=seq.out_planes)
        assert (wrong - got)[..., 0, :].abs().max() > 1e-3
        torch.testing.assert_close(wrong[..., 1:-1, 1:-1], got[..., 1:-1, 1:-1])


def test_ecb_masks_are_the_fixed_edge_filters() -> None:
    # the authors' masks (ECBSR): Sobel-x positive in the left column, Sobel-y in the top row
    assert SOBEL_X[:, 0].tolist() == [1.0, 2.0, 1.0] and SOBEL_X[:, 2].tolist() == [
        -1.0,
        -2.0,
        -1.0,
    ]
    assert LAPLACIAN[1].tolist() == [1.0, -4.0, 1.0] and LAPLACIAN[0].tolist() == [0.0, 1.0, 0.0]
    assert SOBEL_X.sum() == 0 and SOBEL_Y.sum() == 0 and LAPLACIAN.sum() == 0
    torch.testing.assert_close(SOBEL_Y, SOBEL_X.T)
    ecbsr = ECBSR(3, 3, 2, 0, 4)
    block = ecbsr.backbone[0]
    torch.testing.assert_close(block.conv1x1_sbx.mask[2, 0], SOBEL_X)
    torch.testing.assert_close(block.conv1x1_lpl.mask[0, 0], LAPLACIAN)
    assert not block.conv1x1_sby.mask.requires_grad
    assert "backbone.0.conv1x1_sby.mask" in ecbsr.state_dict()


def test_ecb_sums_five_branches_then_activation() -> None:
    torch.manual_seed(5)
    ecbsr = ECBSR(1, 1, 2, 0, 4, act_type="relu").double()
    block = ecbsr.backbone[0]
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        branches = [block.conv3x3(x)] + [
            seq_oracle(x, s)
            for s in (block.conv1x1_3x3, block.conv1x1_sbx, block.conv1x1_sby, block.conv1x1_lpl)
        ]
        torch.testing.assert_close(block(x), F.relu(sum(branches)), rtol=1e-12, atol=1e-12)
    assert isinstance(ecbsr.backbone[-1].act, torch.nn.Identity)  # the last ECB is linear


@pytest.mark.parametrize("act", ["prelu", "relu", "rrelu", "softplus", "linear"])
def test_ecbsr_activations(act: str) -> None:
    model = ECBSRT(3, 3, 2, 1, 4, act_type=act).eval()
    assert model(torch.rand(1, 3, 4, 4)).shape == (1, 3, 8, 8)


# ---------------------------------------------------------------- the other families


def test_espcn_output_is_a_sigmoid() -> None:
    model = ESPCN(3, 2)
    y = model(torch.rand(1, 3, 4, 4) * 10)
    assert (y > 0).all() and (y < 1).all()


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_fsrcnn_transposed_tail_gives_exact_size(scale: int) -> None:
    model = FSRCNN(scale, colors=1)
    assert model(torch.rand(1, 1, 7, 5)).shape == (1, 1, 7 * scale, 5 * scale)
    assert isinstance(model.last_part, torch.nn.ConvTranspose2d)
    assert all(isinstance(m, torch.nn.PReLU) for m in model.mid_part[1::2])


def cubic_weight(d: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (PyTorch uses a = -0.75; MATLAB's imresize a = -0.5)."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d**3 - (a + 3) * d**2 + 1
    if d < 2:
        return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
    return 0.0


def test_bicubic_is_pytorch_bicubic_without_corner_alignment() -> None:
    """Oracle: output column j samples x = (j + ½)/s - ½ (align_corners=False) with the
    a = -0.75 cubic kernel; away from the border no clamping is involved."""
    torch.manual_seed(6)
    row = torch.rand(10, dtype=torch.float64)
    image = row.repeat(1, 1, 4, 1)  # constant along columns, so only the x direction matters
    scale = 2
    got = Bicubic(scale)(image)[0, 0, 3]
    for j in range(6, 14):
        x = (j + 0.5) / scale - 0.5
        base = int(x // 1)
        expected = sum(cubic_weight(x - k) * float(row[k]) for k in range(base - 1, base + 3))
        assert abs(float(got[j]) - expected) < 1e-12
    # a = -0.5 (MATLAB) gives a measurably different result on the same row
    x = (7 + 0.5) / scale - 0.5
    matlab = sum(cubic_weight(x - k, -0.5) * float(row[k]) for k in range(2, 6))
    assert abs(float(got[7]) - matlab) > 1e-4
    assert Bicubic(3)(torch.rand(1, 1, 5, 4)).shape == (1, 1, 15, 12)


def test_plain_has_no_shortcut() -> None:
    model = Plain(3, 3, 2, 1, 4)
    with torch.no_grad():
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
    assert model(torch.rand(1, 3, 4, 4)).abs().max() == 0


def test_constructors_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_feat > num_residual_feat"):
        ETDS(3, 3, 2, 2, 3, 3)
    with pytest.raises(ValueError, match="num_out_ch"):
        ETDS(3, 1, 2, 2, 8, 3)
    with pytest.raises(ValueError, match="act_type"):
        ECBSRT(3, 3, 2, 1, 4, act_type="gelu")
    with pytest.raises(ValueError, match="num_block"):
        Plain(3, 3, 2, -1, 4)
    with pytest.raises(ValueError, match="unknown architecture 'VDSR'"):
        build_model("VDSR")
    with pytest.raises(ValueError, match="align"):
        ETDSForInference(3, 3, 3, 1, 8, 3, align=0)
