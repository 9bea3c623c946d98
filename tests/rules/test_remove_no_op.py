"""G7: ops that change no value, and ``aten.pad`` in constant mode. Properties over shapes,
axes and memory formats; negative tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.remove_no_op import (
    CONSTANT_MODE,
    END_OF_ANY_AXIS,
    FULL_RANGE,
    OPERATION,
    SAME_TYPE,
    UNIT_STEP,
    remove_no_op,
)
from et.strategies import image_batches

aten = torch.ops.aten


@given(data=st.data())
def test_each_no_op_returns_its_source(data: st.DataObject) -> None:
    x = data.draw(image_batches(data.draw(st.integers(1, 3)), max_size=5))
    x = x.contiguous(
        memory_format=data.draw(st.sampled_from([torch.contiguous_format, torch.channels_last]))
    )
    kind = (list(x.shape), x.dtype)
    dim = data.draw(st.integers(0, 3))
    end = data.draw(st.sampled_from([None, x.shape[dim], x.shape[dim] + 3, END_OF_ANY_AXIS]))
    base = torch.zeros_like(x)
    cases = [
        (aten.clone.default(x, memory_format=torch.channels_last), remove_no_op("clone")),
        (aten.alias.default(x), remove_no_op("alias")),
        (aten.contiguous.default(x), remove_no_op("contiguous")),
        (aten.copy.default(base, x), remove_no_op("copy", source=kind, base=kind)),
        (
            aten.slice.Tensor(x, dim, 0, end, 1),
            remove_no_op("slice", start=0, end=end, step=1, length=x.shape[dim]),
        ),
        (
            aten.slice_scatter.default(base, x, dim, None, end, 1),
            remove_no_op("slice_scatter", source=kind, base=kind, end=end, length=x.shape[dim]),
        ),
    ]
    for expected, module in cases:
        assert isinstance(module, nn.Identity)
        assert expected.dtype == x.dtype and torch.equal(expected, module(x))


@given(data=st.data())
def test_a_constant_mode_pad_is_constant_pad_nd(data: st.DataObject) -> None:
    x = data.draw(image_batches(2, max_size=5))
    widths = data.draw(st.lists(st.integers(0, 3), min_size=4, max_size=4))
    value = data.draw(st.one_of(st.none(), st.floats(-4, 4, allow_nan=False)))
    module = remove_no_op("pad", widths=widths, mode="constant", value=value)
    expected = aten.pad.default(x, widths, "constant", value)
    assert torch.equal(module(x), expected)


def test_registered_by_id_and_name() -> None:
    assert isinstance(apply_rule("G7", "clone"), nn.Identity)
    assert apply_rule("remove_no_op", "pad", widths=(1, 1), value=2).value == 2.0


# Negative tests: each precondition broken → the two sides differ and the rule refuses.

X = torch.arange(12.0, dtype=torch.float64).reshape(1, 1, 3, 4)
KIND = (list(X.shape), X.dtype)


def _refused(condition: str, op: str, **arguments: object) -> None:
    with pytest.raises(PreconditionError) as info:
        remove_no_op(op, **arguments)
    assert info.value.rule == "G7" and info.value.condition is condition


def test_another_op_differs_and_is_refused() -> None:
    assert not torch.equal(aten.neg.default(X), X)
    _refused(OPERATION, "neg")


def test_a_copy_onto_a_bigger_base_broadcasts_and_is_refused() -> None:
    bigger = aten.copy.default(torch.zeros(2, 1, 3, 4, dtype=torch.float64), X)
    assert bigger.shape != X.shape
    _refused(SAME_TYPE, "copy", source=KIND, base=([2, 1, 3, 4], torch.float64))
    # a scatter cannot broadcast: torch itself refuses a source of another shape
    with pytest.raises(RuntimeError, match="size equal to the slice"):
        aten.slice_scatter.default(torch.zeros(2, 1, 3, 4, dtype=torch.float64), X)


def test_a_copy_onto_another_dtype_rounds_and_is_refused() -> None:
    third = X / 3
    halved = aten.copy.default(torch.zeros(X.shape, dtype=torch.float16), third)
    assert (halved.double() - third).abs().max() > 0
    _refused(SAME_TYPE, "copy", source=KIND, base=(KIND[0], torch.float16))
    _refused(SAME_TYPE, "copy", source=KIND, base=(KIND[0], None))  # unknown: refused
    scattered = aten.slice_scatter.default(torch.zeros(X.shape, dtype=torch.float16), third)
    assert (scattered.double() - third).abs().max() > 0
    _refused(SAME_TYPE, "slice_scatter", source=KIND, base=(KIND[0], torch.float16))


@pytest.mark.parametrize(
    ("start", "end", "length"),
    [(1, None, 4), (0, 3, 4), (0, 3, None), (0, END_OF_ANY_AXIS - 1, None)],
    ids=["later start", "earlier end", "end against an unknown length", "end below 2^62"],
)
def test_a_partial_slice_drops_entries_and_is_refused(start, end, length) -> None:
    if length is not None:
        assert aten.slice.Tensor(X, 3, start, end, 1).shape != X.shape
    _refused(FULL_RANGE, "slice", start=start, end=end, step=1, length=length)


def test_a_slice_with_step_two_differs_and_is_refused() -> None:
    assert aten.slice.Tensor(X, 3, 0, None, 2).shape != X.shape
    _refused(UNIT_STEP, "slice", start=0, end=None, step=2)
    _refused(UNIT_STEP, "slice_scatter", source=KIND, base=KIND, step=2)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_a_non_constant_pad_differs_and_is_refused(mode: str) -> None:
    assert not torch.equal(F.pad(X, (1, 1, 1, 1), mode), F.pad(X, (1, 1, 1, 1)))
    _refused(CONSTANT_MODE, "pad", widths=(1, 1, 1, 1), mode=mode)


def test_a_pad_value_that_is_no_number_is_refused() -> None:
    _refused(CONSTANT_MODE, "pad", widths=(1, 1), value="0")
    _refused(CONSTANT_MODE, "pad", widths=(1, 1), value=True)
