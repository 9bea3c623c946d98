"""The rule contract every module in :mod:`et` follows.

A *rule* is one theorem of the form "network fragment A computes exactly what fragment B
computes, provided these preconditions hold", together with the code that builds B from A.
Each rule module defines

* a docstring stating the theorem,
* its preconditions, each written once as a module-level :class:`Precondition` constant: the
  catalogue (``Rule.preconditions``), the checks (:meth:`Precondition.require`) and the
  docstring's precondition list (:func:`document_preconditions`) all use that one object,
* ``check_*`` functions that raise :class:`PreconditionError` naming the broken condition,
* the transform itself, which calls the check first and never mutates its inputs,
* a module-level ``RULE = register(Rule(...))`` entry so converters can compose rules by
  name (:func:`apply_rule`) and users can list them (:func:`list_rules`, ``etds rules``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from torch import nn
from torch.nn.modules import module as _torch_module


class PreconditionError(ValueError):
    """A rule was asked to transform input that breaks one of its preconditions.

    ``rule`` is the rule id (``"R1"``), ``condition`` the broken :class:`Precondition` (one of
    ``get_rule(rule).preconditions``), ``detail`` what was found instead.
    """

    def __init__(self, rule: str, condition: str, detail: str) -> None:
        if isinstance(condition, Precondition) and condition.rule != rule:
            raise ValueError(f"precondition of {condition.rule} raised under {rule}")
        self.rule = rule
        self.condition = condition
        self.detail = detail
        super().__init__(f"{rule}: precondition '{condition}' does not hold: {detail}")


class Precondition(str):
    """One precondition of one rule, written once.

    It *is* its text (a ``str``), so catalogues, proofs and tables that treat preconditions as
    strings keep working, and it carries the rule id (``.rule``), a short identifier (``.key``)
    and an optional explanation of why the theorem needs it (``.why``, used in the docstring).
    :meth:`require` is the check: it raises :class:`PreconditionError` whose ``condition`` is
    this very text.
    """

    rule: str
    key: str
    why: str

    def __new__(cls, rule: str, key: str, text: str, *, why: str = "") -> Precondition:
        self = super().__new__(cls, text)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "why", why)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Precondition is frozen; cannot set {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_precondition, (self.rule, self.key, str(self), self.why))

    @property
    def text(self) -> str:
        """The precondition as a plain ``str``."""
        return str(self)

    def require(self, ok: bool, detail: str) -> None:
        """Raise :class:`PreconditionError` for this precondition unless ``ok``."""
        if not ok:
            self.refuse(detail)
        for seen in _OBSERVERS:
            seen.append((self, True))

    def refuse(self, detail: str) -> NoReturn:
        """Raise :class:`PreconditionError` for this precondition (``detail``: what was found)."""
        for seen in _OBSERVERS:
            seen.append((self, False))
        raise PreconditionError(self.rule, self, detail)


#: open :func:`observe_preconditions` lists; every evaluated precondition is appended to each
_OBSERVERS: list[list[tuple[Precondition, bool]]] = []


@contextmanager
def observe_preconditions() -> Iterator[list[tuple[Precondition, bool]]]:
    """Collect ``(precondition, holds)`` for every :meth:`Precondition.require` (and
    :meth:`Precondition.refuse`) evaluated inside the block, in order: what a certificate can
    claim was checked is what ran, never the catalogue's list."""
    seen: list[tuple[Precondition, bool]] = []
    _OBSERVERS.append(seen)
    try:
        yield seen
    finally:
        # by identity: two open lists may be equal (both empty)
        del _OBSERVERS[next(i for i, o in enumerate(_OBSERVERS) if o is seen)]


def _rebuild_precondition(rule: str, key: str, text: str, why: str) -> Precondition:
    return Precondition(rule, key, text, why=why)


def document_preconditions(doc: str | None, preconditions: Sequence[Precondition]) -> str:
    """``doc`` completed with the numbered list of ``preconditions`` (and why each is needed).

    Rule modules call it on their own ``__doc__`` so the docstring's list is generated from the
    same constants the catalogue and the checks use.
    """
    lines = ["Preconditions (``RULE.preconditions``, in order; each refusal names one):", ""]
    for index, condition in enumerate(preconditions, 1):
        entry = f"{index}. {condition}"
        lines.append(f"{entry} — {condition.why}" if condition.why else entry)
    return (doc or "").rstrip() + "\n\n" + "\n".join(lines) + "\n"


# Methods whose override changes what a torch module computes. ``_conv_forward`` is where
# Conv2d applies its padding; the call machinery is where hooks run.
_SEMANTIC_METHODS = ("forward", "_conv_forward", "__call__", "_call_impl", "_wrapped_call_impl")


def _class_name(cls: type) -> str:
    return f"torch.nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") else cls.__qualname__


def torch_semantics_violation(module: object, expected: type | tuple[type, ...]) -> str | None:
    """Why ``module`` may not compute what its torch class ``expected`` computes, or None.

    A rule reasons about the function a torch class defines, never about a class name: a
    subclass that overrides ``forward`` (or ``_conv_forward``, or the call machinery), an
    instance with its own ``forward``, and forward hooks or pre-hooks (the module's own or global
    ones) all can change the function, so each is reported. A subclass that only adds attributes
    or methods computes the same function and passes.
    """
    expected_types = expected if isinstance(expected, tuple) else (expected,)
    names = " or ".join(_class_name(t) for t in expected_types)
    cls = type(module)
    base = next((t for t in expected_types if isinstance(module, t)), None)
    if base is None:
        return f"got {cls.__qualname__}, expected {names}"
    for method in _SEMANTIC_METHODS:
        if getattr(base, method, None) is not None and getattr(cls, method) is not getattr(
            base, method
        ):
            return (
                f"{cls.__qualname__} overrides {method} of {_class_name(base)}, "
                "so it may compute something else"
            )
    assert isinstance(module, nn.Module)
    if "forward" in vars(module):
        return (
            f"this {cls.__qualname__} instance has its own forward, not torch.nn.{base.__name__}'s"
        )
    if module._forward_hooks or module._forward_pre_hooks:
        return f"{cls.__qualname__} has forward hooks that may change its output"
    if _torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks:
        return "global forward hooks are registered; they may change every module's output"
    return None


def require_torch_semantics(
    module: object, expected: type | tuple[type, ...], condition: Precondition
) -> None:
    """Refuse (under ``condition``) unless ``module`` computes what torch's ``expected`` does.

    See :func:`torch_semantics_violation` for what is refused.
    """
    violation = torch_semantics_violation(module, expected)
    condition.require(violation is None, violation or "")


@dataclass(frozen=True)
class Rule:
    """Catalogue entry for one rule.

    ``transform`` checks the preconditions and returns the transformed object;
    ``statement`` is the theorem in one line; ``preconditions`` the exact conditions under which
    it holds; ``proof`` the dotted name of the sympy derivation in :mod:`proofs`.
    """

    id: str
    name: str
    title: str
    statement: str
    preconditions: tuple[Precondition, ...]
    transform: Callable[..., Any]
    proof: str
    module: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.transform(*args, **kwargs)


_REGISTRY: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Add ``rule`` to the catalogue; ids and names must be unique.

    Every precondition must be a :class:`Precondition` of this rule, listed once.
    """
    for condition in rule.preconditions:
        if not isinstance(condition, Precondition) or condition.rule != rule.id:
            raise ValueError(f"{rule.id}: {condition!r} is not a Precondition of {rule.id}")
    if len(set(rule.preconditions)) != len(rule.preconditions):
        raise ValueError(f"{rule.id}: a precondition is listed twice")
    for key in (rule.id, rule.name):
        existing = _REGISTRY.get(key)
        if existing is not None and existing is not rule:
            raise ValueError(f"rule key {key!r} is already registered by {existing.module}")
    module = rule.module or getattr(rule.transform, "__module__", "")
    rule = Rule(**{**rule.__dict__, "module": module})
    _REGISTRY[rule.id] = rule
    _REGISTRY[rule.name] = rule
    return rule


#: the id families, in catalogue order: re-parameterizations, ET rules, graph canonicalisations
ID_FAMILIES = ("R", "E", "G")


def _rule_order(rule: Rule) -> tuple[int, str, int]:
    family = rule.id[0]
    rank = ID_FAMILIES.index(family) if family in ID_FAMILIES else len(ID_FAMILIES)
    return (rank, family, int(rule.id[1:]))


def list_rules() -> list[Rule]:
    """All registered rules: the R rules, then E1..E11, then the graph rules G…, each by number."""
    unique = {id(r): r for r in _REGISTRY.values()}.values()
    return sorted(unique, key=_rule_order)


def get_rule(key: str) -> Rule:
    """Look a rule up by id (``"R7"``) or name (``"merge_1x1_kxk"``)."""
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(f"{r.id}={r.name}" for r in list_rules())
        raise KeyError(f"unknown rule {key!r}; known rules: {known}") from None


def apply_rule(key: str, *args: Any, **kwargs: Any) -> Any:
    """Apply the rule named ``key`` (id or name) to ``args``."""
    return get_rule(key).transform(*args, **kwargs)
