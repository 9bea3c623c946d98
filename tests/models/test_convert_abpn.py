"""ABPN → ABPN_ET: equivalence of the clamped outputs for inputs ≥ 0, the authors' layout, and
the authors' own ET checkpoint reproduced from their training-layout checkpoint."""

from __future__ import annotations

import pytest
import torch
from conversion_strategies import (
    abpn_models,
    clamped_gap,
    randomize_,
    set5_lr_images,
    unit_images,
)
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError
from et.testing import probe_inputs
from reference_models import ABPN, ABPN_ET, from_state_dict, load_checkpoint
from reference_models.conversions import convert, converted_arch

F32_BOUND = 0.01 / 255


@given(data=st.data())
def test_exact_in_float64_on_non_negative_inputs(data: st.DataObject) -> None:
    model = data.draw(abpn_models())
    x = data.draw(unit_images(model.colors))
    converted = convert(model)
    assert isinstance(converted, ABPN_ET)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= 1e-12 * max(1.0, magnitude)


@given(data=st.data())
def test_float32_within_bound(data: st.DataObject) -> None:
    model = data.draw(abpn_models(dtype=torch.float32, profile="trained"))
    x = data.draw(unit_images(model.colors, dtype=torch.float32, highs=(1.0,)))
    gap, _ = clamped_gap(model, convert(model), x)
    assert gap <= F32_BOUND


@pytest.mark.parametrize("scale, tail, last", [(2, 16, 12), (3, 30, 28), (4, 52, 48)])
def test_layout_loads_into_the_authors_class(scale: int, tail: int, last: int) -> None:
    model = randomize_(ABPN(28, 2, scale), seed=scale, profile="trained")
    converted = convert(model)
    assert converted_arch(model) == "ABPN_ET"
    # the authors' ABPN_ET: hidden 28 + 4, first tail conv c·s² + 3 (+1 dummy off ×3)
    authors = ABPN_ET(28, 2, scale)
    authors.load_state_dict(converted.state_dict(), strict=True)
    assert authors.backbone[4].out_channels == tail
    assert authors.backbone[6].out_channels == last


def test_refuses_a_signed_domain_and_the_refusal_is_needed() -> None:
    model = randomize_(ABPN(4, 2, 2).double(), seed=1, profile="trained")
    with pytest.raises(PreconditionError, match="non-negative"):
        convert(model, domain=(-0.5, 1.0))
    converted = convert(model)
    x = probe_inputs((3, 6, 6), domain=(-1.0, 0.0), samples=8, seed=0)
    gap, _ = clamped_gap(model, converted, x)
    assert gap > 1e-3


def test_convert_twice_equals_once() -> None:
    once = convert(randomize_(ABPN(5, 1, 3, num_in_ch=1), seed=2, profile="trained"))
    twice = convert(once)
    a, b = once.state_dict(), twice.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- the authors' checkpoints


@pytest.mark.shared
def test_authors_abpn_converts_to_their_et_checkpoint(shared_dir, checkpoints_dir) -> None:
    model = load_checkpoint(checkpoints_dir / "ABPN_M4C28_x3.pth")
    authors_et = load_checkpoint(checkpoints_dir / "ABPN_ET_M4C28_x3.pth")
    converted = convert(model)
    assert type(from_state_dict(converted.state_dict())) is ABPN_ET
    # same layout as the authors' file, loadable by their class with strict=True
    ABPN_ET(28, 4, 3).load_state_dict(converted.state_dict(), strict=True)
    inputs = [probe_inputs((3, 24, 24), samples=10, seed=0, dtype=torch.float32)]
    inputs += set5_lr_images(shared_dir, 3)
    for x in inputs:
        gap_authors, _ = clamped_gap(authors_et, converted, x)
        gap_original, _ = clamped_gap(model, converted, x)
        assert gap_authors <= F32_BOUND
        assert gap_original <= F32_BOUND
