"""etds: proved and fuzzed Equivalent Transformation (ET) and re-parameterization rules.

Every rule lives in its own module in :mod:`et.rules`, named after the rule, and registers itself
in the catalogue;
``list_rules()`` lists them, ``get_rule("R7")`` / ``apply_rule("merge_1x1_kxk", ...)`` find and
apply one by id or name. See :mod:`et.contract` for the contract every rule follows.
"""

from __future__ import annotations

import importlib
import pkgutil

from et.contract import (
    Precondition,
    PreconditionError,
    Rule,
    apply_rule,
    get_rule,
    list_rules,
    register,
)
from et.domain import IMAGE_8BIT, IMAGE_UNIT, REAL, InputDomain


def _import_rule_modules() -> None:
    # Every module of et.rules is one rule that registers itself on import.
    from et import rules

    for info in pkgutil.iter_modules(rules.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{rules.__name__}.{info.name}")


_import_rule_modules()

from et.compiler import compile  # noqa: E402  (the compiler uses the registered rules)

__all__ = [
    "IMAGE_8BIT",
    "IMAGE_UNIT",
    "REAL",
    "InputDomain",
    "Precondition",
    "PreconditionError",
    "Rule",
    "apply_rule",
    "compile",
    "get_rule",
    "list_rules",
    "register",
]
