"""G8: cancelling constants. Properties over constants and shapes; negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError, apply_rule
from et.rules.cancel_constants import NO_BROADCAST, OPPOSITE, SAME_CONSTANT, cancel_constants
from et.strategies import image_batches, weight_tensors


@given(data=st.data())
def test_constants_cancel_up_to_float64_rounding(data: st.DataObject) -> None:
    channels = data.draw(st.integers(1, 4))
    x = data.draw(image_batches(channels, max_size=6))
    shape = data.draw(st.sampled_from([(), (1, channels, 1, 1), (channels, 1, 1), (1,)]))
    c = data.draw(weight_tensors(shape)) if shape else torch.tensor(3.5, dtype=torch.float64)
    ops = data.draw(st.sampled_from([("add", "sub"), ("sub", "add")]))
    first, second = (torch.add, torch.sub) if ops == ("add", "sub") else (torch.sub, torch.add)
    identity = cancel_constants(x.shape, c, c.clone(), ops)
    expected = second(first(x, c), c)
    scale = x.abs().max().item() + c.abs().max().item() + 1
    assert identity(x).shape == expected.shape
    assert (identity(x) - expected).abs().max().item() <= 1e-9 * scale


def test_registered_by_id_and_name() -> None:
    assert isinstance(apply_rule("G8", (1, 2, 3, 3), 1.0, 1.0), torch.nn.Identity)
    assert isinstance(
        apply_rule("cancel_constants", (2, 2), 1.0, 1.0, ("sub", "add")), torch.nn.Identity
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.

X = torch.rand(1, 1, 3, 3, dtype=torch.float64)


def _refused(condition: str, *args: object, **kwargs: object) -> None:
    with pytest.raises(PreconditionError) as info:
        cancel_constants(*args, **kwargs)
    assert info.value.rule == "G8" and info.value.condition is condition


def test_two_additions_or_other_alphas_differ_and_are_refused() -> None:
    assert ((X + 1.0 + 1.0) - X).abs().max() > 1.0
    assert ((torch.add(X, 1.0, alpha=2.0) - 1.0) - X).abs().max() > 0.5
    _refused(OPPOSITE, X.shape, 1.0, 1.0, ("add", "add"))
    _refused(OPPOSITE, X.shape, 1.0, 1.0, ("add", "sub"), (2.0, 1.0))


def test_different_constants_differ_and_are_refused() -> None:
    assert ((X + 1.0 - 2.0) - X).abs().max() > 0.5
    _refused(SAME_CONSTANT, X.shape, 1.0, 2.0)
    _refused(SAME_CONSTANT, X.shape, torch.ones(1, 1, 1, 1), torch.ones(1))


def test_a_widening_constant_differs_and_is_refused() -> None:
    c = torch.tensor([0.0, 5.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    assert ((X + c) - c).shape != X.shape
    _refused(NO_BROADCAST, X.shape, c, c.clone())


def test_an_unknown_size_of_x_admits_only_size_one_in_c() -> None:
    """x of shape (n, 3, h, w) with n, h, w not known (symbolic): c of shape (1, 3, 1, 1) or
    (3, 1, 1) keeps x's shape for every n, h, w; a c of width 5 widens an x of width 1 (one
    value w may take), so it is refused."""
    c = torch.linspace(-1.0, 1.0, 3, dtype=torch.float64).reshape(1, 3, 1, 1)
    for constant in (c, c.reshape(3, 1, 1)):
        identity = cancel_constants((None, 3, None, None), constant, constant.clone())
        assert isinstance(identity, torch.nn.Identity)
    wide = torch.ones(1, 1, 1, 5, dtype=torch.float64)
    narrow = torch.rand(2, 3, 4, 1, dtype=torch.float64)
    assert ((narrow + wide) - wide).shape != narrow.shape
    _refused(NO_BROADCAST, (None, 3, None, None), wide, wide.clone())
    assert isinstance(cancel_constants((None, 3, None, 5), wide, wide.clone()), torch.nn.Identity)
