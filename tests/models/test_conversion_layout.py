"""Tests that kill the mutants of ``reference_models/conversions/layout.py`` the conversion tests
let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): every model the conversion tests
convert has widths where the authors' literal layout (``align=None``: one hidden dummy) and
``align=4`` agree, so a layout that ignored ``align`` or the authors' single dummy passed.
"""

from __future__ import annotations

from et.rules.carry_identity import IdentityLayout
from reference_models.conversions.layout import hidden_layout


def test_authors_layout_has_exactly_one_dummy_even_where_alignment_needs_none() -> None:
    # 17 real + 3 carried = 20 channels: aligned to 4 already, yet the authors add one dummy
    assert hidden_layout(17, 3, None) == IdentityLayout(17, 1, 3)
    assert hidden_layout(17, 3, 4) == IdentityLayout(17, 0, 3)


def test_alignment_other_than_four_is_honoured() -> None:
    # 16 + 3 = 19 → 24 at align 8 (5 dummies), 20 at align 4 (1), 19 at align 1 (0)
    assert hidden_layout(16, 3, 8) == IdentityLayout(16, 5, 3)
    assert hidden_layout(16, 3, 1) == IdentityLayout(16, 0, 3)
