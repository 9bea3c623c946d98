"""Each precondition is written once: the catalogue, the checks and the docstring share it.

Static side: no rule module passes a free-text condition to a check or builds a
``PreconditionError`` itself, and every :class:`~et.contract.Precondition` a rule module holds
is one of its rule's catalogue entries. Runtime side: ``tests/rules/conftest.py`` checks every
refusal the negative tests trigger.
"""

from __future__ import annotations

import ast
import importlib
import pickle
from pathlib import Path

import pytest

import et
from et.contract import (
    Precondition,
    PreconditionError,
    Rule,
    document_preconditions,
    get_rule,
    register,
)

ORIGINAL_INIT = PreconditionError.__init__  # collected before conftest's fixture patches it
RULES_DIR = Path(et.__file__).parent / "rules"
RULE_FILES = sorted(p for p in RULES_DIR.glob("*.py") if p.name != "__init__.py")


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_no_free_text_condition_remains(path: Path) -> None:
    """No bare ``require(ok, rule, "text", …)`` and no ``PreconditionError(…)`` built by hand."""
    for call in _calls(ast.parse(path.read_text())):
        name = call.func.id if isinstance(call.func, ast.Name) else None
        assert name not in ("require", "PreconditionError"), f"{path.name}:{call.lineno}"
        if isinstance(call.func, ast.Attribute) and call.func.attr == "require":
            assert not isinstance(call.func.value, ast.Constant), f"{path.name}:{call.lineno}"
            assert len(call.args) == 2, f"{path.name}:{call.lineno}: require(ok, detail)"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_preconditions_are_built_once_at_module_level(path: Path) -> None:
    """``Precondition(...)`` is only called in module-level assignments (the constants)."""
    tree = ast.parse(path.read_text())
    top_level = {
        id(node.value) for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
    }
    for call in _calls(tree):
        if isinstance(call.func, ast.Name) and call.func.id == "Precondition":
            assert id(call) in top_level, f"{path.name}:{call.lineno}"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_every_module_precondition_is_in_its_rules_catalogue(path: Path) -> None:
    module = importlib.import_module(f"et.rules.{path.stem}")
    rule = module.RULE
    own = [v for v in vars(module).values() if isinstance(v, Precondition)]
    assert own, f"{path.stem} declares no Precondition"
    for condition in own:
        assert condition.rule == rule.id, (condition, condition.rule)
        assert any(condition is listed for listed in rule.preconditions), condition
    # ... and the catalogue lists only this module's constants, each once
    assert all(any(listed is c for c in own) for listed in rule.preconditions)
    assert len(set(map(id, rule.preconditions))) == len(rule.preconditions)


@pytest.mark.parametrize("rule", et.list_rules(), ids=lambda r: r.id)
def test_docstring_lists_the_catalogue_in_order(rule: Rule) -> None:
    doc = importlib.import_module(rule.module).__doc__
    positions = [doc.index(f"{i}. {c}") for i, c in enumerate(rule.preconditions, 1)]
    assert positions == sorted(positions)
    assert doc.count("Preconditions (") == 1  # the generated list is the only one


@pytest.fixture
def unchecked_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests of the contract raise refusals that are in no catalogue on purpose."""
    monkeypatch.setattr(PreconditionError, "__init__", ORIGINAL_INIT)


@pytest.mark.usefixtures("unchecked_refusals")
def test_precondition_is_its_text_and_refuses_under_its_rule() -> None:
    condition = Precondition("R1", "fixed_statistics", "some text", why="because")
    assert condition == "some text" and isinstance(condition, str)
    assert (condition.rule, condition.key, condition.why) == ("R1", "fixed_statistics", "because")
    condition.require(True, "unused")
    with pytest.raises(PreconditionError) as info:
        condition.require(False, "what was found")
    assert (info.value.rule, info.value.condition, info.value.detail) == (
        "R1",
        "some text",
        "what was found",
    )
    assert info.value.condition is condition
    assert str(info.value) == "R1: precondition 'some text' does not hold: what was found"
    with pytest.raises(AttributeError):
        condition.rule = "R2"  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(condition))
    assert (copy, copy.rule, copy.key, copy.why) == (condition, "R1", "fixed_statistics", "because")


@pytest.mark.usefixtures("unchecked_refusals")
def test_a_precondition_cannot_be_raised_under_another_rule() -> None:
    with pytest.raises(ValueError, match="precondition of R1 raised under R2"):
        PreconditionError("R2", get_rule("R1").preconditions[0], "detail")


def test_register_refuses_plain_strings_foreign_and_repeated_preconditions() -> None:
    mine = Precondition("R99", "a", "a")

    def rule(*conditions: str) -> Rule:
        return Rule("R99", "test_rule", "t", "s", conditions, lambda: None, "p")  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="is not a Precondition of R99"):
        register(rule("plain text"))
    with pytest.raises(ValueError, match="is not a Precondition of R99"):
        register(rule(Precondition("R98", "a", "a")))
    with pytest.raises(ValueError, match="listed twice"):
        register(rule(mine, mine))


def test_document_preconditions_numbers_them_with_their_reason() -> None:
    first = Precondition("R99", "a", "first text", why="reason one")
    second = Precondition("R99", "b", "second text")
    doc = document_preconditions("Theorem.\n", [first, second])
    assert doc.startswith("Theorem.\n\nPreconditions (")
    assert "\n1. first text — reason one\n2. second text\n" in doc
