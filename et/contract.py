"""The rule contract every module in :mod:`et` follows.

A *rule* is one theorem of the form "network fragment A computes exactly what fragment B
computes, provided these preconditions hold", together with the code that builds B from A.
Each rule module defines

* a docstring stating the theorem and its exact preconditions,
* ``check_*`` functions that raise :class:`PreconditionError` naming the broken condition,
* the transform itself, which calls the check first and never mutates its inputs,
* a module-level ``RULE = register(Rule(...))`` entry so converters can compose rules by
  name (:func:`apply_rule`) and users can list them (:func:`list_rules`, ``etds rules``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class PreconditionError(ValueError):
    """A rule was asked to transform input that breaks one of its preconditions.

    ``rule`` is the rule id (``"R1"``), ``condition`` the precondition as stated in the rule's
    docstring, ``detail`` what was found instead.
    """

    def __init__(self, rule: str, condition: str, detail: str) -> None:
        self.rule = rule
        self.condition = condition
        self.detail = detail
        super().__init__(f"{rule}: precondition '{condition}' does not hold: {detail}")


def require(ok: bool, rule: str, condition: str, detail: str) -> None:
    """Raise :class:`PreconditionError` unless ``ok``."""
    if not ok:
        raise PreconditionError(rule, condition, detail)


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
    preconditions: tuple[str, ...]
    transform: Callable[..., Any]
    proof: str
    module: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.transform(*args, **kwargs)


_REGISTRY: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Add ``rule`` to the catalogue; ids and names must be unique."""
    for key in (rule.id, rule.name):
        existing = _REGISTRY.get(key)
        if existing is not None and existing is not rule:
            raise ValueError(f"rule key {key!r} is already registered by {existing.module}")
    module = rule.module or getattr(rule.transform, "__module__", "")
    rule = Rule(**{**rule.__dict__, "module": module})
    _REGISTRY[rule.id] = rule
    _REGISTRY[rule.name] = rule
    return rule


def _rule_order(rule: Rule) -> tuple[str, int]:
    return (rule.id[0], int(rule.id[1:]))


def list_rules() -> list[Rule]:
    """All registered rules, R1..R15 then E1..E9."""
    unique = {id(r): r for r in _REGISTRY.values()}.values()
    return sorted(unique, key=lambda r: (r.id[0] != "R", _rule_order(r)))


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
