"""G9: an op whose inputs are all constants is replaced by its value.

Theorem (referential transparency). Let ``f`` be a function of its arguments alone: it reads
no state the graph does not pass to it, writes none, and returns the same value for the same
arguments. For constants ``c₁ … c_k`` (parameters, buffers, values folded before), the program
that calls ``f(c₁, …, c_k)`` at every run computes, at every input, what the program with the
stored value ``v = f(c₁, …, c_k)`` in its place computes: the call's result is the same ``v``
at every run, and nothing else in the program sees the call. (ECB's and OREPA's kernels built
in ``forward`` from parameters, ``scale · mask``, a ``Linear`` on a parameter: all such.)

An ATen operator states in its schema what the theorem needs, so the check reads the schema,
never the op's name: a *mutable* schema writes an argument (``add_``, ``out=``), the tag
``nondeterministic_seeded`` marks a draw from the random generator (``bernoulli``, ``normal``,
``rand*``, ``dropout``, ``rrelu``…), and a schema that returns no tensor is an assertion or a
size query. The ``empty`` family returns uninitialised memory (no value is defined; the
schema has no tag for it, so the overload packets are listed). A Python callable has no schema
and may read or change anything: it is refused, except ``operator.getitem``, which picks one
output of a tuple the graph already holds.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from et.contract import Precondition, Rule, document_preconditions, register

RULE_ID = "G9"

aten = torch.ops.aten

#: ATen ops whose result is uninitialised memory: a value no argument defines
UNINITIALISED = frozenset(
    {
        aten.empty,
        aten.empty_like,
        aten.empty_strided,
        aten.empty_permuted,
        aten.new_empty,
        aten.new_empty_strided,
    }
)

HAS_SCHEMA = Precondition(
    RULE_ID,
    "has_schema",
    "the op is an ATen operator with a schema (or operator.getitem of a folded tuple)",
    why="a Python callable may read or change state that the graph does not show",
)
NOT_MUTABLE = Precondition(
    RULE_ID,
    "not_mutable",
    "the schema writes none of its arguments (no in-place or out= op)",
    why="a write to a constant changes it for every later run; a folded op runs once",
)
DETERMINISTIC = Precondition(
    RULE_ID,
    "deterministic",
    "the op is not tagged nondeterministic_seeded (bernoulli, normal, rand*, dropout, rrelu…)",
    why="a random op draws new values at every run; its folded value is one draw",
)
DEFINED = Precondition(
    RULE_ID,
    "defined",
    "the op's value is defined by its arguments (not empty, empty_like, new_empty…)",
    why="uninitialised memory has no value to store",
)
RETURNS_TENSORS = Precondition(
    RULE_ID,
    "returns_tensors",
    "the schema returns tensors only (no assertion, no size query)",
    why="an op returning nothing is there for its effect; a size is no tensor to store",
)
CONSTANT_INPUTS = Precondition(
    RULE_ID,
    "constant_inputs",
    "every tensor the op reads is a constant (a parameter, buffer or folded value)",
    why="the value at one input is no value at another; the caller checks it on the graph",
)


def check_foldable(op: Callable[..., Any]) -> None:
    """Refuse an op whose call the theorem does not cover, from its schema and tags."""
    if op is operator.getitem:
        HAS_SCHEMA.require(True, "operator.getitem")
        return
    schema = getattr(op, "_schema", None)
    HAS_SCHEMA.require(
        isinstance(op, torch._ops.OpOverload) and schema is not None,
        f"{getattr(op, '__name__', op)!s} is no ATen operator",
    )
    NOT_MUTABLE.require(not schema.is_mutable, f"{op} writes an argument ({schema})")
    DETERMINISTIC.require(
        torch.Tag.nondeterministic_seeded not in op.tags, f"{op} is tagged nondeterministic_seeded"
    )
    DEFINED.require(op.overloadpacket not in UNINITIALISED, f"{op} returns uninitialised memory")
    returns = [str(r.type) for r in schema.returns]
    RETURNS_TENSORS.require(
        bool(returns) and all(t in ("Tensor", "List[Tensor]") for t in returns),
        f"{op} returns ({', '.join(returns)})",
    )


def evaluate_constant_subgraph(
    op: Callable[..., Any], args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> Any:
    """The value of ``op(*args, **kwargs)`` on the constants it is given (computed once,
    without autograd), after the op is checked; the arguments are not changed."""
    check_foldable(op)
    with torch.no_grad():
        return op(*args, **(kwargs or {}))


RULE = register(
    Rule(
        id=RULE_ID,
        name="evaluate_constant_subgraph",
        title="Constant sub-graph evaluated once",
        statement="a pure, deterministic op whose inputs are all constants equals its value",
        preconditions=(
            HAS_SCHEMA,
            NOT_MUTABLE,
            DETERMINISTIC,
            DEFINED,
            RETURNS_TENSORS,
            CONSTANT_INPUTS,
        ),
        transform=evaluate_constant_subgraph,
        proof="proofs.rules.evaluate_constant_subgraph",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
