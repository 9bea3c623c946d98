"""Tests that kill the mutants of ``et/contract.py`` the rules' tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): every rule registers itself at
import time, before any test runs, so ``register`` was never exercised by a test; the catalogue's
look-up refusal, the order of ``list_rules``, keyword arguments through ``apply_rule`` and
positional ones through ``Rule.__call__``, and the generated precondition list were matched
loosely or not at all.
"""

from __future__ import annotations

import pytest

import et.contract as contract
from et.contract import (
    Precondition,
    Rule,
    apply_rule,
    document_preconditions,
    get_rule,
    list_rules,
    register,
)


def _echo(*args, **kwargs):
    return args, kwargs


def _rule(rule_id: str = "E99", name: str = "echo_for_tests", module: str = "") -> Rule:
    return Rule(
        rule_id, name, "Echo", "x = x", (Precondition(rule_id, "k", "x ≥ 0"),), _echo, "", module
    )


@pytest.fixture
def registry(monkeypatch) -> dict:
    copy = dict(contract._REGISTRY)
    monkeypatch.setattr(contract, "_REGISTRY", copy)
    return copy


def test_register_files_a_rule_under_its_id_and_name(registry) -> None:
    registered = register(_rule())
    assert registered.module == __name__  # the transform's module, when none is given
    assert get_rule("E99") is registered and get_rule("echo_for_tests") is registered
    assert register(registered) is not None  # registering the same entry again is allowed
    assert register(_rule("E97", "echo_elsewhere", module="somewhere")).module == "somewhere"


def test_register_leaves_the_module_empty_for_a_transform_without_one(registry) -> None:
    # a method-wrapper (``f.__call__``) is callable and has no ``__module__``
    rule = Rule("E96", "wrapped_echo", "Echo", "x = x", (), _echo.__call__, "")
    registered = register(rule)
    assert registered.module == ""
    assert registered(5) == ((5,), {})


def test_register_refuses_a_second_rule_under_a_taken_key(registry) -> None:
    first = register(_rule())
    with pytest.raises(ValueError) as raised:
        register(_rule(name="another_name"))
    assert str(raised.value) == f"rule key 'E99' is already registered by {first.module}"
    with pytest.raises(ValueError) as raised:
        register(_rule("E98", "echo_for_tests"))
    assert str(raised.value) == f"rule key 'echo_for_tests' is already registered by {first.module}"


def test_get_rule_refusal_lists_every_rule() -> None:
    with pytest.raises(KeyError) as raised:
        get_rule("R0")
    known = ", ".join(f"{r.id}={r.name}" for r in list_rules())
    assert raised.value.args[0] == f"unknown rule 'R0'; known rules: {known}"
    assert known.startswith("R1=fuse_conv_bn, R2=")


def test_list_rules_puts_r_before_e_before_g_in_numeric_order() -> None:
    ids = [rule.id for rule in list_rules()]
    r_ids = [i for i in ids if i.startswith("R")]
    e_ids = [i for i in ids if i.startswith("E")]
    g_ids = [i for i in ids if i.startswith("G")]
    assert ids == r_ids + e_ids + g_ids
    assert r_ids[:2] == ["R1", "R2"] and "R10" in r_ids[9:]
    for family in (r_ids, e_ids, g_ids):
        numbers = [int(i[1:]) for i in family]
        assert numbers == sorted(numbers)


def test_arguments_reach_the_transform(registry) -> None:
    rule = register(_rule())
    assert apply_rule("E99", 1, 2, option="value") == ((1, 2), {"option": "value"})
    assert rule(3, other=4) == ((3,), {"other": 4})


def test_document_preconditions_appends_a_numbered_list() -> None:
    first = Precondition("E99", "k", "x ≥ 0", why="because")
    second = Precondition("E99", "j", "y")
    heading = "Preconditions (``RULE.preconditions``, in order; each refusal names one):"
    assert document_preconditions("Doc.  ", [first, second]) == (
        f"Doc.\n\n{heading}\n\n1. x ≥ 0 — because\n2. y\n"
    )
    assert document_preconditions(None, [second]) == f"\n\n{heading}\n\n1. y\n"
