"""The certificate: which rule rewrote which graph nodes, what was left, and the measured error.

Every application names the rule (its catalogue id, ``"R1"``, ``"E4"``, ``"G7"``…, with the
title and one-line theorem of :func:`et.contract.get_rule`: every id is a proved rule), the graph
nodes it rewrote and the preconditions that were evaluated at that site: each a :class:`Check`
saying whether the matcher tested it on the graph or the rule's own check ran it in the
transform (never the catalogue's list of what the rule would need). ``unfolded`` lists every op
the rules could not remove with the precondition that stopped them. ``max_error`` is the
compiled network against the original on :func:`et.testing.probe_inputs`, in float64 and
float32, at the ``verified_sizes``; ``timings`` is the wall time of each phase in seconds
(capture, rewrite, verify). ``sizes`` states the input sizes the compiled function holds for
(``"any"``, or the capture's guards as Python conditions on ``h`` and ``w``: the compiled module
refuses every other size); ``dtype`` is the dtype the module is returned and judged in, and for
a dtype other than float64 ``max_error`` also holds the original's own rounding in it
(``"original float32"``) and the bound the returned module met (``"bound float32"``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from et.contract import Precondition, get_rule


@dataclass(frozen=True)
class Check:
    """One precondition evaluated at one site: its rule, its text, where it was evaluated
    (``"graph"``: by the matcher on the graph; ``"transform"``: by the rule's check function
    while its transform ran) and the outcome."""

    rule: str
    precondition: str
    checked: str
    holds: bool = True


@dataclass(frozen=True)
class Application:
    """One rewrite: rule id and title, the nodes it replaced, the texts of the preconditions
    evaluated there (``checks`` has each with where it ran and its outcome), the theorem."""

    rule: str
    title: str
    nodes: tuple[str, ...]
    preconditions: tuple[str, ...]
    theorem: str
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Unfolded:
    """An op left as it was: its node, the rule that would have removed it, and why not."""

    node: str
    op: str
    rule: str
    precondition: str
    detail: str


@dataclass
class Certificate:
    """What :func:`et.compile` did and why (see the module docstring)."""

    capture: str
    domain: tuple[float, float]
    applications: list[Application] = field(default_factory=list)
    unfolded: list[Unfolded] = field(default_factory=list)
    max_error: dict[str, float] = field(default_factory=dict)
    convs_before: int = 0
    convs_after: int = 0
    ops_after: dict[str, int] = field(default_factory=dict)
    output_clamp: tuple[float, float] | None = None
    verified_sizes: list[list[int]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    sizes: str = "any"
    dtype: str = "float32"

    def rules_used(self) -> dict[str, int]:
        """How many times each rule id was applied."""
        counts: dict[str, int] = {}
        for application in self.applications:
            counts[application.rule] = counts.get(application.rule, 0) + 1
        return counts

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rules_used"] = self.rules_used()
        return data

    def to_json(self) -> str:
        """The certificate as indented JSON (an infinite bound is written ``Infinity``, as
        Python's json module writes it)."""
        return json.dumps(self.to_dict(), indent=2, default=str, allow_nan=True)


class CertificateBuilder:
    """Collects applications and refusals while the passes run."""

    def __init__(self) -> None:
        self.applications: list[Application] = []
        self._unfolded: dict[tuple[str, str], Unfolded] = {}

    def applied(self, rule: str, nodes: list, checked: Sequence[str | Check] = ()) -> None:
        """Record that ``rule`` rewrote ``nodes``: ``checked`` is what was evaluated there, a
        text for a condition the matcher tested on the graph, a :class:`Check` for one the
        rule's own code ran (:meth:`observed`). Nothing else is claimed."""
        entry = get_rule(rule)  # every id recorded is a catalogue rule with a proof
        title, theorem = entry.title, entry.statement
        checks: list[Check] = []
        for item in checked:
            check = item if isinstance(item, Check) else Check(rule, str(item), "graph")
            if check not in checks:
                checks.append(check)
        names = tuple(getattr(n, "name", str(n)) for n in nodes)
        texts = tuple(c.precondition for c in checks)
        self.applications.append(Application(rule, title, names, texts, theorem, tuple(checks)))
        for name in names:
            for key in [k for k in self._unfolded if k[0] == name]:
                del self._unfolded[key]

    @staticmethod
    def observed(seen: Sequence[tuple[Precondition, bool]]) -> tuple[Check, ...]:
        """The preconditions a rule's code evaluated (from
        :func:`et.contract.observe_preconditions`) as transform checks, each once."""
        checks: list[Check] = []
        for condition, holds in seen:
            check = Check(condition.rule, str(condition), "transform", holds)
            if check not in checks:
                checks.append(check)
        return tuple(checks)

    def refused(self, node, rule: str, precondition: str, detail: str = "") -> None:
        """Record that ``rule`` could not remove ``node`` because ``precondition`` failed."""
        op = str(getattr(node, "target", node))
        key = (node.name, rule)
        self._unfolded[key] = Unfolded(node.name, op, rule, str(precondition), str(detail))

    def unfolded(self, alive: set[str]) -> list[Unfolded]:
        """Refusals whose node is still in the final graph."""
        return [u for u in self._unfolded.values() if u.node in alive]
