"""G9: a pure, deterministic op on constants equals its value. Property over ops and constants;
negative tests (each refusal read from the op's schema and tags, never its name)."""

from __future__ import annotations

import operator

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError, apply_rule
from et.rules.evaluate_constant_subgraph import (
    DEFINED,
    DETERMINISTIC,
    HAS_SCHEMA,
    NOT_MUTABLE,
    RETURNS_TENSORS,
    evaluate_constant_subgraph,
)
from et.strategies import weight_tensors

aten = torch.ops.aten


@given(data=st.data())
def test_the_value_of_a_pure_op_on_constants_is_its_result(data: st.DataObject) -> None:
    """ECB's kernel (a conv of parameters), a scaled mask, a product and a permute: the stored
    value is what the call computes, and the constants are left as they were."""
    mid, cin, cout = (data.draw(st.integers(1, 3)) for _ in range(3))
    first = data.draw(weight_tensors((mid, cin, 1, 1)))
    second = data.draw(weight_tensors((cout, mid, 3, 3)))
    kept = (first.clone(), second.clone())
    kernel = evaluate_constant_subgraph(aten.conv2d.default, (second, first.permute(1, 0, 2, 3)))
    expected = torch.einsum("omuv,mc->ocuv", second, first[:, :, 0, 0])
    assert torch.allclose(kernel, expected, rtol=1e-12, atol=1e-12)
    scaled = evaluate_constant_subgraph(aten.mul.Tensor, (second, 2.5))
    assert torch.equal(scaled, second * 2.5)
    pieces = evaluate_constant_subgraph(aten.split.Tensor, (second, 1))
    assert evaluate_constant_subgraph(operator.getitem, (pieces, 0)).shape == (1, mid, 3, 3)
    assert torch.equal(first, kept[0]) and torch.equal(second, kept[1])


def test_registered_by_id_and_name() -> None:
    c = torch.tensor([1.0, 2.0])
    assert torch.equal(apply_rule("G9", aten.neg.default, (c,)), -c)
    assert torch.equal(
        apply_rule("evaluate_constant_subgraph", aten.add.Tensor, (c, c), {"alpha": 2}), 3 * c
    )


# Negative tests: each precondition broken → two runs (or the two sides) differ and the rule
# refuses naming it.


def _refused(condition: str, op, *args: object) -> None:
    with pytest.raises(PreconditionError) as info:
        evaluate_constant_subgraph(op, args)
    assert info.value.rule == "G9" and info.value.condition is condition


def test_a_python_callable_differs_between_runs_and_is_refused() -> None:
    calls = []

    def counted(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return t + len(calls)

    c = torch.zeros(1)
    assert not torch.equal(counted(c), counted(c))  # a stored value would be the first
    _refused(HAS_SCHEMA, counted, c)
    _refused(HAS_SCHEMA, torch.add, c, c)  # the Python binding, not the ATen overload


def test_an_in_place_op_changes_its_constant_and_is_refused() -> None:
    c = torch.zeros(2)
    first = aten.add_.Tensor(c, 1.0).clone()
    second = aten.add_.Tensor(c, 1.0).clone()
    assert not torch.equal(first, second)
    _refused(NOT_MUTABLE, aten.add_.Tensor, torch.zeros(2), 1.0)
    _refused(NOT_MUTABLE, aten.add.out, torch.zeros(2), 1.0)


@pytest.mark.parametrize(
    ("op", "args"),
    [
        (aten.bernoulli.default, (torch.full((64,), 0.5),)),
        (aten.bernoulli.p, (torch.zeros(64), 0.5)),
        (aten.normal.Tensor_float, (torch.zeros(64),)),
        (aten.randn_like.default, (torch.zeros(64),)),
        (aten.rand_like.default, (torch.zeros(64),)),
        (aten.native_dropout.default, (torch.ones(64), 0.5, True)),
    ],
    ids=["bernoulli", "bernoulli.p", "normal", "randn_like", "rand_like", "dropout in train"],
)
def test_a_random_op_draws_anew_and_is_refused(op, args) -> None:
    torch.manual_seed(0)
    first = op(*args)
    second = op(*args)
    first, second = (v[0] if isinstance(v, tuple) else v for v in (first, second))
    assert not torch.equal(first, second)
    _refused(DETERMINISTIC, op, *args)


def test_uninitialised_memory_is_refused() -> None:
    """``empty_like(c)`` reads only c's shape and dtype: its values are whatever the memory
    held, so there is no value to compare (and none to store)."""
    for op in (aten.empty_like.default, aten.empty.memory_format, aten.new_empty.default):
        with pytest.raises(PreconditionError) as info:
            evaluate_constant_subgraph(op, ())
        assert info.value.condition is DEFINED


def test_an_assertion_or_a_size_query_is_refused() -> None:
    with pytest.raises(RuntimeError):
        aten._assert_async.msg(torch.tensor(False), "checked at every run")
    _refused(RETURNS_TENSORS, aten._assert_async.msg, torch.tensor(True), "once only")
    _refused(RETURNS_TENSORS, aten.sym_size.int, torch.zeros(3), 0)
