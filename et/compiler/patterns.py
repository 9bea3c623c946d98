"""Graph patterns written as data: what a rewrite matches, read by the ATen schema.

``Op(target, name=..., single_user=..., **arguments)`` matches a call of ``target`` (one ATen
overload or a tuple of them; or ``operator.getitem``, arguments ``self`` and ``index``). Its
arguments are read by their schema names, keywords and defaults bound
(:func:`~et.compiler.workspace.arguments`), and each named one must match its
sub-pattern: another ``Op``, a :class:`Var` (binds the value, optionally under a predicate) or a
constant (equal). **An argument the pattern does not name must hold its schema default**, so a
keyword the rewrite does not handle (``alpha = 2`` on a sum, a ``divisor_override``) makes the
pattern not match: every keyword is handled or there is no match, by construction.
``single_user=True`` is the fan-out precondition: the node's only consumer is the node matched
by the enclosing pattern. A :class:`Rewrite` pairs a pattern with the catalogue rule it applies
and the graph preconditions it declares (:class:`GraphCheck`); :func:`driver` turns it into the
``(ws, node) -> bool`` step the pipeline runs: match, then evaluate every declared check on the
graph in order (the first that fails is recorded as a refusal naming it, and the rewrite does
not run), then ``apply``, which gets the texts of the checks that held as ``found[GRAPH]``, to
record with its application (the certificate lists each as a ``"graph"`` check of the rule
applied).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from torch import fx

from et.compiler.workspace import CONV2D, CONVOLUTION, Workspace, arguments

#: the key of ``found`` under which :func:`driver` hands ``apply`` the graph checks that held
GRAPH = "graph checks"


@dataclass(frozen=True)
class Var:
    """Bind the argument's value under ``name`` (one name binds one value: a second use must
    see the same node, or an equal constant); ``when`` must accept it."""

    name: str
    when: Callable[[Any], bool] | None = None


@dataclass(frozen=True)
class Op:
    """A call of ``target`` whose named arguments match (see the module docstring)."""

    target: Any
    arguments: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    single_user: bool = False

    # ``op`` for the instance: ATen names the first argument of most ops ``self``
    def __init__(op, target, /, *, name=None, single_user=False, **arguments) -> None:
        object.__setattr__(op, "target", target if isinstance(target, tuple) else (target,))
        object.__setattr__(op, "arguments", arguments)
        object.__setattr__(op, "name", name)
        object.__setattr__(op, "single_user", single_user)


def number(value: object) -> bool:
    """A real number given as such (not a bool, not a graph value)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(a: object, b: object) -> bool:
    if isinstance(a, fx.Node) or isinstance(b, fx.Node):
        return a is b
    try:
        return bool(a == b)
    except (TypeError, RuntimeError):
        return False


def _default(value: object, default: object) -> bool:
    """Whether ``value`` is the schema default (an int for an ``int[2]`` default of equal
    entries counts as it)."""
    if isinstance(default, list) and integer(value):
        return all(value == d for d in default)
    return _same(value, default)


def _bind(bindings: dict[str, Any], name: str, value: object) -> bool:
    if name in bindings:
        return _same(bindings[name], value)
    bindings[name] = value
    return True


def _arguments(node: fx.Node) -> dict[str, Any] | None:
    """:func:`~et.compiler.workspace.arguments`, and ``operator.getitem(self, index)`` (no
    schema: both required, given positionally) for an element of an op's tuple result."""
    if node.op == "call_function" and node.target is operator.getitem:
        plain = len(node.args) == 2 and not node.kwargs
        return {"self": node.args[0], "index": node.args[1]} if plain else None
    return arguments(node)


def _match(pattern: object, value: object, user: fx.Node | None, bindings: dict) -> bool:
    if isinstance(pattern, Var):
        return (pattern.when is None or pattern.when(value)) and _bind(
            bindings, pattern.name, value
        )
    if not isinstance(pattern, Op):
        return not isinstance(value, fx.Node) and _same(pattern, value)
    if not isinstance(value, fx.Node) or value.target not in pattern.target:
        return False
    values = _arguments(value)
    if values is None or (pattern.single_user and user is not None and set(value.users) != {user}):
        return False
    schema = getattr(value.target, "_schema", None)
    defaults = {p.name: p for p in schema.arguments} if schema is not None else {}
    for name, argument in values.items():
        if name in pattern.arguments:
            if not _match(pattern.arguments[name], argument, value, bindings):
                return False
        elif name not in defaults or not defaults[name].has_default_value():
            raise ValueError(f"the pattern for {value.target} leaves out {name!r}")
        elif not _default(argument, defaults[name].default_value):
            return False  # a keyword the rewrite does not handle
    return pattern.name is None or _bind(bindings, pattern.name, value)


def match(pattern: Op, node: fx.Node) -> dict[str, Any] | None:
    """The bindings of ``pattern`` matched at ``node`` (names of :class:`Var` and of named
    :class:`Op`), or None."""
    bindings: dict[str, Any] = {}
    return bindings if _match(pattern, node, None, bindings) else None


@dataclass(frozen=True)
class GraphCheck:
    """A precondition the driver evaluates on the graph after a match: ``holds(ws, node,
    found)`` (None: it does not apply to what this alternative matched, nothing recorded).
    ``text`` is what the certificate names (the refusal's precondition when it fails, a
    ``"graph"`` check when it holds); ``detail(ws, node, found)`` says what was seen on
    failure; ``at`` names the binding the refusal is recorded on (default the anchor); ``rule``
    overrides the rewrite's rule in the refusal. ``refuses=False``: a structural condition the
    pattern cannot say without the workspace (a conv with constant weights): its failure means
    "no match here", recorded as nothing."""

    text: str
    holds: Callable[[Workspace, fx.Node, dict[str, Any]], bool | None]
    detail: Callable[[Workspace, fx.Node, dict[str, Any]], str] | None = None
    at: str | None = None
    rule: str | None = None
    refuses: bool = True


@dataclass(frozen=True)
class Rewrite:
    """One rewrite: the patterns it is anchored on (alternatives), the catalogue rule it
    applies, ``apply(ws, node, found) -> bool``, which runs the rule and records it, and the
    graph preconditions the driver evaluates between the match and ``apply``."""

    rule: str
    patterns: tuple[Op, ...]
    apply: Callable[[Workspace, fx.Node, dict[str, Any]], bool]
    checks: tuple[GraphCheck, ...] = ()


def conv(name: str, *, single_user: bool = False, input: object = None) -> Op:
    """A 2-D convolution call (``aten.conv2d``, or ``aten.convolution`` with ``transposed``
    False) bound as ``name``, every argument named (``name.weight``…; ``input`` is the pattern
    of its input, a :class:`Var` ``name.input`` by default): what it computes is read by
    :meth:`~et.compiler.workspace.Workspace.conv_site`, which :func:`is_conv` requires."""
    names = ("weight", "bias", "stride", "padding", "dilation", "groups", "output_padding")
    return Op(
        (CONV2D, CONVOLUTION),
        name=name,
        single_user=single_user,
        input=Var(f"{name}.input") if input is None else input,
        transposed=False,
        **{n: Var(f"{name}.{n}") for n in names},
    )


def is_conv(name: str) -> GraphCheck:
    """The structural check that the conv bound as ``name`` has constant weight and bias and
    numeric padding (a conv site); its failure is no match."""
    return GraphCheck(
        f"{name} is a conv with constant weight and bias",
        lambda ws, node, found: ws.conv_site(found[name]) is not None,
        refuses=False,
    )


#: every declared rewrite, in the order its module declared it (what :func:`driver` was given)
REGISTRY: list[Rewrite] = []


def evaluate(rewrite: Rewrite, ws: Workspace, node: fx.Node, found: dict[str, Any]) -> bool:
    """Evaluate ``rewrite.checks`` at ``node`` in order: the first failing one is recorded as a
    refusal (its text, its detail; nothing for ``refuses=False``) and False returned; the
    passing ones are put in ``found[GRAPH]``."""
    held: list[str] = []
    for check in rewrite.checks:
        holds = check.holds(ws, node, found)
        if holds is None:
            continue
        if not holds:
            if not check.refuses:
                return False
            where = found[check.at] if check.at is not None else node
            detail = check.detail(ws, node, found) if check.detail is not None else ""
            ws.record.refused(where, check.rule or rewrite.rule, check.text, detail)
            return False
        held.append(check.text)
    found[GRAPH] = tuple(held)
    return True


def driver(rewrite: Rewrite) -> Callable[[Workspace, fx.Node], bool]:
    """The pipeline step for ``rewrite`` (registered in :data:`REGISTRY`): the first pattern
    that matches at the node, its declared graph checks evaluated, applied."""
    REGISTRY.append(rewrite)

    def step(ws: Workspace, node: fx.Node) -> bool:
        for pattern in rewrite.patterns:
            found = match(pattern, node)
            if found is not None:
                return evaluate(rewrite, ws, node, found) and rewrite.apply(ws, node, found)
        return False

    step.__name__ = step.__qualname__ = rewrite.apply.__name__.lstrip("_")
    step.__doc__ = rewrite.apply.__doc__
    step.rewrite = rewrite  # type: ignore[attr-defined]
    return step
