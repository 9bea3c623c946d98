"""ECBSR → ECBSRT (re-parameterization, exact for every input) and ECBSR/ECBSRT → ECBSRET
(equivalent transformation, exact for inputs ≥ 0), for 1 and 3 colours; the authors' ECBSRT
checkpoint reproduces their own ET checkpoint."""

from __future__ import annotations

import pytest
import torch
from conversion_strategies import (
    clamped_gap,
    ecbsr_models,
    ecbsrt_models,
    randomize_,
    set5_lr_images,
    unit_images,
)
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError
from et.testing import probe_inputs
from reference_models import (
    ECBSR,
    ECBSRET,
    ECBSRT,
    CheckpointError,
    detect_architecture,
    from_state_dict,
    load_checkpoint,
)
from reference_models.conversions import convert, converted_arch, reparameterize_ecbsr

F32_BOUND = 0.01 / 255


def _unclamped_gap(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return (ya - yb).abs().max().item(), ya.abs().max().item()


@given(data=st.data())
def test_reparameterization_exact_for_any_input(data: st.DataObject) -> None:
    model = data.draw(ecbsr_models(act_types=("prelu", "relu", "softplus", "linear")))
    low, high = data.draw(st.sampled_from([(0.0, 1.0), (-3.0, 3.0)]))
    x = probe_inputs((model.colors, 5, 6), domain=(low, high), samples=7, seed=0)
    folded = reparameterize_ecbsr(model)
    assert isinstance(folded, ECBSRT)
    # R3/R7/R12 are exact everywhere, so compare the raw (unclamped) outputs
    gap, magnitude = _unclamped_gap(model, folded, x)
    assert gap <= 1e-11 * max(1.0, magnitude)


@given(data=st.data())
def test_ecbsr_to_et_exact_in_float64(data: st.DataObject) -> None:
    model = data.draw(ecbsr_models())
    x = data.draw(unit_images(model.colors))
    converted = convert(model)
    assert isinstance(converted, ECBSRET)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= 1e-11 * max(1.0, magnitude)


@given(data=st.data())
def test_ecbsrt_to_et_float32_within_bound(data: st.DataObject) -> None:
    model = data.draw(ecbsrt_models(dtype=torch.float32, profile="trained"))
    x = data.draw(unit_images(model.colors, dtype=torch.float32, highs=(1.0,)))
    gap, _ = clamped_gap(model, convert(model), x)
    assert gap <= F32_BOUND


@pytest.mark.parametrize("colors", [1, 3])
def test_identity_channels_get_prelu_slope_zero(colors: int) -> None:
    model = randomize_(ECBSRT(colors, colors, 2, 2, 8), seed=colors, profile="trained")
    converted = convert(model)
    slopes = converted.backbone[0][1].weight.detach()
    assert torch.equal(slopes[:8], model.backbone[0][1].weight.detach())
    assert torch.all(slopes[8:] == 0)


def test_refuses_an_activation_that_is_not_a_rectifier() -> None:
    model = ECBSRT(3, 3, 2, 1, 4, act_type="softplus").double()
    model = randomize_(model, seed=0, profile="trained")
    with pytest.raises(PreconditionError, match="ReLU, LeakyReLU or PReLU"):
        convert(model)
    # the refusal is needed: softplus would not pass the carried image through unchanged
    x = probe_inputs((3, 4, 4), samples=7, seed=0)
    assert (model.backbone[0][1](x) - x).abs().max() > 0.1


def test_refuses_a_signed_domain_and_the_refusal_is_needed() -> None:
    model = randomize_(ECBSRT(1, 1, 3, 2, 4).double(), seed=1, profile="trained")
    with pytest.raises(PreconditionError, match="non-negative"):
        convert(model, domain=(-1.0, 1.0))
    converted = convert(model)
    x = probe_inputs((1, 6, 6), domain=(-1.0, 0.0), samples=8, seed=0)
    gap, _ = clamped_gap(model, converted, x)
    assert gap > 1e-3


def test_convert_twice_equals_once() -> None:
    model = randomize_(ECBSR(3, 3, 2, 1, 4), seed=3, profile="trained")
    assert converted_arch(model) == "ECBSRET"
    once = convert(model)
    twice = convert(once)
    a, b = once.state_dict(), twice.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("scale, last", [(2, 12), (3, 28), (4, 48)])
def test_layout_loads_into_the_authors_class(scale: int, last: int) -> None:
    converted = convert(randomize_(ECBSRT(3, 3, scale, 2, 16), seed=scale, profile="trained"))
    authors = ECBSRET(3, 3, scale, 2, 16)  # hidden 16 + 4, last c·s² (+1 at ×3)
    authors.load_state_dict(converted.state_dict(), strict=True)
    assert authors.backbone[-1][0].out_channels == last


# ---------------------------------------------------------------- the authors' checkpoints


@pytest.mark.shared
def test_authors_ecbsrt_converts_to_their_et_checkpoint(shared_dir, checkpoints_dir) -> None:
    model = load_checkpoint(checkpoints_dir / "ECBSR_M4C16_x2.pth")
    assert isinstance(model, ECBSRT)
    authors_et = load_checkpoint(checkpoints_dir / "ECBSR_ET_M4C16_x2.pth")
    converted = convert(model)
    assert type(from_state_dict(converted.state_dict())) is ECBSRET
    ECBSRET(3, 3, 2, 4, 16).load_state_dict(converted.state_dict(), strict=True)
    inputs = [probe_inputs((3, 24, 24), samples=10, seed=0, dtype=torch.float32)]
    inputs += set5_lr_images(shared_dir, 2)
    for x in inputs:
        gap_authors, _ = clamped_gap(authors_et, converted, x)
        gap_original, _ = clamped_gap(model, converted, x)
        assert gap_authors <= F32_BOUND
        assert gap_original <= F32_BOUND


@given(data=st.data())
def test_ecbsr_with_identity_branches_converts_exactly(data: st.DataObject) -> None:
    """``with_idt = 1``: the identity folds in as a Dirac kernel (R6 + R3), exact in float64."""
    model = data.draw(ecbsr_models(with_idt=(1,)))
    x = data.draw(unit_images(model.colors))
    converted = convert(model)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= 1e-11 * max(1.0, magnitude)


def _ecbsr_with_identity(seed: int = 0) -> ECBSR:
    torch.manual_seed(seed)
    model = ECBSR(3, 3, 2, 2, 8, with_idt=1)  # float32 weights: the state dict holds them exactly
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(0.0, 0.2)
    return model.eval()


def test_identity_branch_is_in_the_middle_blocks_only() -> None:
    model = _ecbsr_with_identity().double()
    assert [block.with_idt for block in model.backbone] == [False, True, True, False]
    without = ECBSR(3, 3, 2, 2, 8, with_idt=0).double().eval()
    without.load_state_dict(model.state_dict())
    x = probe_inputs((3, 7, 6), domain=(0.0, 1.0), samples=3, seed=1).double()
    with torch.no_grad():
        assert (model(x) - without(x)).abs().max().item() > 1e-3  # the flag changes the function


def test_with_idt_is_never_guessed_from_a_state_dict() -> None:
    """The identity branch stores nothing: a bare state dict is refused with one line naming the
    flag; told the value, it loads as that model and converts exactly."""
    model = _ecbsr_with_identity()
    state = model.state_dict()
    model = model.double()
    with pytest.raises(CheckpointError, match=r"--hparam with_idt=") as refused:
        from_state_dict(state)
    assert "\n" not in str(refused.value)
    assert detect_architecture(state).unknown.keys() == {"with_idt"}
    loaded = from_state_dict(state, hparams={"with_idt": 1}).double()
    assert loaded.hparams["with_idt"] == 1
    x = probe_inputs((3, 9, 8), domain=(0.0, 1.0), samples=5, seed=2).double()
    converted = convert(loaded)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= 1e-11 * max(1.0, magnitude)
    wrong = convert(from_state_dict(state, hparams={"with_idt": 0}).double())
    assert clamped_gap(model, wrong, x)[0] > 1e-3  # what guessing 0 used to give
