"""etds: proved and fuzzed Equivalent Transformation (ET) and re-parameterization rules.

Every rule lives in its own module in this package and registers itself in the catalogue;
``list_rules()`` lists them, ``get_rule("R7")`` / ``apply_rule("merge_1x1_kxk", ...)`` find and
apply one by id or name. See :mod:`et.contract` for the contract every rule follows.
"""

from __future__ import annotations

import importlib
import pkgutil

from et.contract import PreconditionError, Rule, apply_rule, get_rule, list_rules, register
from et.domain import IMAGE_8BIT, IMAGE_UNIT, REAL, InputDomain

# Modules of this package that are infrastructure, not rules. ``testing`` and ``strategies``
# need the dev extra (hypothesis), so they are imported only on request.
_NOT_RULES = frozenset(
    {"contract", "domain", "conv_geometry", "testing", "strategies", "cli", "__main__"}
)


def _import_rule_modules() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_RULES and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_rule_modules()

__all__ = [
    "IMAGE_8BIT",
    "IMAGE_UNIT",
    "REAL",
    "InputDomain",
    "PreconditionError",
    "Rule",
    "apply_rule",
    "get_rule",
    "list_rules",
    "register",
]
