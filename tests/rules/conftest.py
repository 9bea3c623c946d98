"""Rule-suite fixture: every refusal raised in these tests names a catalogue precondition.

Each negative test of every rule triggers a refusal; this fixture checks, for all of them, that
the ``PreconditionError``'s ``condition`` is one of the preconditions its rule lists in the
catalogue (``get_rule(rule).preconditions``), the same object the rule declares once.
"""

from __future__ import annotations

import pytest

import et
from et.contract import PreconditionError, get_rule

original_init = PreconditionError.__init__


def _checked_init(self: PreconditionError, rule: str, condition: str, detail: str) -> None:
    catalogue = get_rule(rule).preconditions
    assert any(condition is listed for listed in catalogue), (
        f"{rule} refused under {condition!r}, which is not one of its catalogue preconditions"
    )
    original_init(self, rule, condition, detail)


@pytest.fixture(autouse=True)
def _refusals_name_catalogue_preconditions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert et.list_rules()  # every rule module is imported, so get_rule knows every id
    monkeypatch.setattr(PreconditionError, "__init__", _checked_init)
