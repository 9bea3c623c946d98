"""G13: one conv written with another number of groups, so parallel branches can merge (R3).

Published blocks mix groupings on one sum: MobileOne's depthwise branches sit beside a skip
BatchNorm, which the compiler first writes as a dense (``groups=1``) identity conv. R3 needs
one grouping on every branch. :mod:`et.rules.regroup_conv` (whose transform this step runs,
its checks recorded) gives it one:

* a conv whose dense weight is zero outside the diagonal blocks of ``g`` groups *is* the
  ``g``-grouped conv with those blocks (checked on the weights, entry by entry);
* a ``g₁``-grouped conv is the ``g₂``-grouped conv (``g₂`` dividing ``g₁``) whose blocks are
  its dense weight's, with zeros elsewhere.

The group counts of the branches are tried from the most to the fewest, so a depthwise block
stays depthwise where its partners allow it, and a denser conv is written only otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from et.compiler.certificate import Check
from et.compiler.workspace import Workspace
from et.contract import PreconditionError


@dataclass(frozen=True)
class Regrouped:
    """Convs written with one number of groups: ``convs`` (in the given order), the indices
    of those G13 rewrote (the others had that count already) and the checks its code ran."""

    convs: list[nn.Conv2d]
    rewritten: tuple[int, ...]
    checks: tuple[Check, ...]


def common_grouping(ws: Workspace, convs: Sequence[nn.Conv2d]) -> Regrouped:
    """``convs`` with one number of groups: the most groups (among their own counts) that G13
    allows for every one of them. Raises the :class:`~et.contract.PreconditionError` of the
    last count tried when G13 refuses every count."""
    refusal: PreconditionError | None = None
    for groups in sorted({c.groups for c in convs}, reverse=True):
        regrouped, rewritten, checks = list(convs), [], []
        try:
            for index, conv in enumerate(convs):
                if conv.groups != groups:
                    regrouped[index], ran = ws.apply("regroup_conv", conv, groups)
                    rewritten.append(index)
                    checks.extend(ran)
        except PreconditionError as error:
            refusal = error
            continue
        return Regrouped(regrouped, tuple(rewritten), tuple(dict.fromkeys(checks)))
    assert refusal is not None  # at least two counts were tried, each refused
    raise refusal
