"""ETDS family → ETDSForInference: whole-model equivalence of the clamped outputs.

Dual-stream forms (ETDS and the two residual ablations) convert exactly for *every* input (E5,
E6, E7, E8, E2 need no range assumption); ETDSOnlyET needs inputs ≥ 0 (E4). Float64 is the
oracle; float32 gets the stated bound 0.01/255 with trained-magnitude weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conversion_strategies import (
    clamped_gap,
    etds_models,
    randomize_,
    unit_images,
)
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError
from et.testing import probe_inputs
from reference_models import (
    ECB,
    ETDS,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSForInference,
    ETDSOnlyET,
    from_state_dict,
    load_checkpoint,
)
from reference_models.conversions import convert, converted_arch

DUAL_STREAM = (ETDS, ETDSAblationResidual, ETDSAblationAdvancedResidual)
F32_BOUND = 0.01 / 255


def _tight(magnitude: float) -> float:
    return 1e-12 * max(1.0, magnitude)


@pytest.mark.parametrize("cls", DUAL_STREAM, ids=lambda c: c.__name__)
@given(data=st.data())
def test_dual_stream_exact_in_float64_for_any_input(cls: type, data: st.DataObject) -> None:
    model = data.draw(etds_models(cls))
    colors = model.colors
    # E5/E6/E2 hold for every real input: images in [0, 1] and signed values alike
    low, high = data.draw(st.sampled_from([(0.0, 1.0), (-2.0, 3.0)]))
    size = data.draw(st.integers(3, 6))
    x = probe_inputs((colors, size, size + 1), domain=(low, high), samples=7, seed=size)
    converted = convert(model)
    assert isinstance(converted, ETDSForInference)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= _tight(magnitude)


@given(data=st.data())
def test_only_et_exact_in_float64_on_non_negative_inputs(data: st.DataObject) -> None:
    reference = data.draw(etds_models(ETDS))
    hp = reference.hparams
    model = ETDSOnlyET(**hp).double()
    randomize_(model, seed=data.draw(st.integers(0, 2**31 - 1)), profile="trained")
    x = data.draw(unit_images(model.colors))
    converted = convert(model)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= _tight(magnitude)


@pytest.mark.parametrize("cls", DUAL_STREAM, ids=lambda c: c.__name__)
@given(data=st.data())
def test_dual_stream_float32_within_bound(cls: type, data: st.DataObject) -> None:
    model = data.draw(etds_models(cls, dtype=torch.float32))
    randomize_(model, seed=data.draw(st.integers(0, 2**31 - 1)), profile="trained")
    x = data.draw(unit_images(model.colors, dtype=torch.float32, highs=(1.0,)))
    converted = convert(model)
    assert converted.conv_first.weight.dtype == torch.float32
    gap, _ = clamped_gap(model, converted, x)
    assert gap <= F32_BOUND


def test_trained_profile_is_not_vacuous() -> None:
    # most outputs of a trained-magnitude model lie strictly inside (0, 1): the clamp does not
    # hide differences there
    model = randomize_(ETDS(3, 3, 3, 4, 12, 3).double(), seed=1, profile="trained")
    with torch.no_grad():
        y = model(torch.rand(2, 3, 8, 8, dtype=torch.float64))[0]
    assert ((y > 0) & (y < 1)).double().mean() > 0.3


@pytest.mark.parametrize("scale, width", [(2, 12), (3, 28), (4, 48)])
def test_layout_is_the_authors(scale: int, width: int) -> None:
    model = randomize_(ETDS(3, 3, scale, 2, 16, 3), seed=0, profile="trained")
    converted = convert(model)
    assert converted_arch(model) == "ETDSForInference"
    assert converted.conv_last.out_channels == width
    assert converted.conv_clip.weight.shape == (width, width, 1, 1)
    # the state dict loads strictly into the inference class with the authors' defaults
    authors = ETDSForInference(3, 3, scale, 2, 16, 3)
    authors.load_state_dict(converted.state_dict(), strict=True)


def test_ablation_residual_links_fill_the_block_matrix() -> None:
    model = randomize_(
        ETDSAblationAdvancedResidual(3, 3, 2, 2, 8, 3).double(), seed=3, profile="trained"
    )
    merged = convert(model).backbone_convs[0].weight
    # backbone → residual block (rows of the residual stream, columns of the backbone) is
    # the advanced link, non-zero; for plain ETDS the same block is zero
    assert merged[5:, :5].abs().max() > 0
    plain = convert(randomize_(ETDS(3, 3, 2, 2, 8, 3).double(), seed=3, profile="trained"))
    assert plain.backbone_convs[0].weight[5:, :5].abs().max() == 0


def test_re_parameterizable_backbone_blocks_are_folded_first() -> None:
    model = ETDS(3, 3, 2, 2, 8, 3).double()
    model.backbone_convs[1] = ECB(5, 5, 2.0, act_type="linear").double()  # a drop-in 3×3
    randomize_(model, seed=8, profile="trained")
    converted = convert(model)
    x = probe_inputs((3, 6, 7), samples=8, seed=0)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= _tight(magnitude)
    # a block with its own nonlinearity is not a conv and is refused
    model.backbone_convs[1] = ECB(5, 5, 2.0, act_type="prelu").double()
    with pytest.raises(ValueError, match="linear"):
        convert(model)


def test_conversion_does_not_touch_the_source() -> None:
    model = randomize_(ETDS(3, 3, 2, 2, 8, 3), seed=4, profile="trained")
    before = copy.deepcopy(model.state_dict())
    convert(model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_convert_twice_equals_once() -> None:
    once = convert(randomize_(ETDS(1, 1, 3, 2, 6, 2), seed=5, profile="trained"))
    twice = convert(once)
    assert type(twice) is type(once)
    a, b = once.state_dict(), twice.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_only_et_refuses_a_signed_domain() -> None:
    model = randomize_(ETDSOnlyET(3, 3, 2, 2, 8, 3).double(), seed=6, profile="trained")
    with pytest.raises(PreconditionError, match="non-negative"):
        convert(model, domain=(-1.0, 1.0))
    # and the refusal is needed: on negative inputs the carried channels are cut by ReLU
    converted = convert(model)
    x = probe_inputs((3, 6, 6), domain=(-1.0, 0.0), samples=8, seed=0)
    gap, _ = clamped_gap(model, converted, x)
    assert gap > 1e-3


# ---------------------------------------------------------------- the authors' checkpoints


@pytest.mark.shared
@pytest.mark.parametrize(
    "name",
    [
        "ETDS_M6C32_x4_normal_loss.pth",
        "ETDS_M6C32_x4_only_residual.pth",
        "ETDS_M6C32_x4_advance_residual.pth",
        "ETDS_M6C32_x4_only_ET.pth",
    ],
)
def test_shared_ablations_convert_to_their_clamped_originals(checkpoints_dir, name: str) -> None:
    model = load_checkpoint(checkpoints_dir / name)
    converted = convert(model)
    # the written form is the authors' ETDSForInference M6C32 ×4 layout
    ETDSForInference(3, 3, 4, 6, 32, 3).load_state_dict(converted.state_dict(), strict=True)
    reloaded = from_state_dict(converted.state_dict())
    assert type(reloaded) is ETDSForInference
    x = probe_inputs((3, 20, 20), samples=10, seed=0, dtype=torch.float32)
    gap32, _ = clamped_gap(model, converted, x)
    assert gap32 <= F32_BOUND
    gap64, _ = clamped_gap(model.double(), converted.double(), x.double())
    # float64 oracle: the converted weights were rounded to float32 once, nothing more
    assert gap64 <= 1e-3 / 255


@pytest.mark.shared
@pytest.mark.parametrize("name", ["ETDS_M4C32_x4.pth", "ETDS_M5C16_x3.pth"])
def test_shared_inference_forms_convert_to_themselves(checkpoints_dir, name: str) -> None:
    model = load_checkpoint(checkpoints_dir / name)
    converted = convert(model)
    a, b = model.state_dict(), converted.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
