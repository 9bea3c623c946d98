"""What the appendix says, independent of its format: order, headings, reach, the rule map.

Shared by :mod:`proofs.appendix_markdown` and :mod:`proofs.appendix_latex`, so that the two
versions cannot drift apart in substance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import sympy as sp

from proofs.contract import EXHAUSTIVE, GENERAL, GENERAL_IN_PART, Counterexample, ProofResult, Step

# Corollaries in the order the paper discusses the models; unknown ones follow alphabetically.
_COROLLARY_ORDER = ("C-ETDS", "C-ABPN", "C-ECBSR")
_THEOREM_PREFIX_ORDER = ("R", "E", "G")

TITLE = "Appendix: theorems and proofs"
REGENERATE = (
    "`python -m etds prove` reruns every derivation and rewrites `docs/appendix/appendix.md`, "
    "`appendix.tex` (and `appendix.pdf` when pdflatex is installed) and `appendix-cases.json`, "
    "the full list of exhaustive cases; the files are byte-identical on every run. "
    "`python -m etds prove --only R7 --out DIR` checks one proof and writes to DIR."
)
CHECKED = (
    f"Checked means that the step held when the proof ran (sympy {sp.__version__}): for an "
    "identity, sympy simplified the difference of its two sides to 0, and the displayed line is "
    "sympy's own rendering of the expressions it checked; for an exhaustive family, every case "
    "(each an array of such differences) simplified to 0; for a computed check, a test computed "
    "by the proof returned true, among them the run of the library's own transform in `et/` "
    "(float64) over every branch of its code. A step in prose is an argument in words and is not "
    "machine-checked. A proof whose step fails is not printed: `etds prove` then writes nothing."
)
REACH_MEANING = (
    ("general", "sympy checked the statement for symbolic sizes and values"),
    ("general in part", "the named part is checked in general, the rest exhaustively"),
    ("exhaustive over small sizes", "every case of the stated grid, nothing beyond it"),
)


def rule_order(rule: str, corollary: bool = False) -> tuple[int, int, int, str]:
    """Sort key of a proof id: theorems R1…R15, then E1…E11, then G1…G14 (numerically), then
    corollaries."""
    if corollary or rule.startswith("C-"):
        position = (
            _COROLLARY_ORDER.index(rule) if rule in _COROLLARY_ORDER else len(_COROLLARY_ORDER)
        )
        return (1, position, 0, rule)
    match = re.fullmatch(r"([A-Za-z]+)(\d+)", rule)
    if match is None:
        return (0, len(_THEOREM_PREFIX_ORDER), 0, rule)
    prefix, number = match.group(1).upper(), int(match.group(2))
    rank = (
        _THEOREM_PREFIX_ORDER.index(prefix)
        if prefix in _THEOREM_PREFIX_ORDER
        else len(_THEOREM_PREFIX_ORDER)
    )
    return (0, rank, number, rule)


def order_key(result: ProofResult) -> tuple[int, int, int, str]:
    return rule_order(result.rule, result.kind == "corollary")


def ordered(results: Iterable[ProofResult]) -> list[ProofResult]:
    return sorted(results, key=order_key)


def heading(result: ProofResult) -> str:
    word = "Corollary" if result.kind == "corollary" else "Theorem"
    return f"{word} {result.rule}"


def reach_text(result: ProofResult) -> str:
    """The one-glance label: general / general in part (which part) / exhaustive."""
    if result.reach == GENERAL_IN_PART:
        return f"general in part: {result.reach_detail}"
    if result.reach in (GENERAL, EXHAUSTIVE):
        return result.reach
    return "not stated"


def tally(result: ProofResult) -> str:
    """``"2 identities, 64 exhaustive cases, 1 computed check; 1 prose step"``."""
    counts = {kind: sum(1 for s in result.steps if s.kind == kind) for kind in _KIND_WORDS}
    parts = [f"{n} {_plural(_KIND_WORDS[k], n)}" for k, n in counts.items() if n and k != "prose"]
    prose = counts["prose"]
    text = ", ".join(parts) + (" checked" if parts else "")
    if prose:
        text += f"; {prose} {_plural('step', prose)} in prose, not machine-checked"
    return text


_KIND_WORDS = {
    "identity": "identity",
    "case": "exhaustive case",
    "check": "computed check",
    "prose": "prose step",
}


def _plural(word: str, n: int) -> str:
    if n == 1:
        return word
    return word[:-1] + "ies" if word.endswith("ty") else word + "s"


def hypotheses(result: ProofResult) -> list[tuple[str, str, list[Counterexample]]]:
    """``(label, precondition, counterexamples)``: H1, H2, … for the preconditions in order,
    then any counterexample naming a condition outside the list (labelled ``*``)."""
    rows = [
        (f"H{i}", condition, [c for c in result.counterexamples if c.precondition == condition])
        for i, condition in enumerate(result.preconditions, 1)
    ]
    listed = set(result.preconditions)
    extra: dict[str, list[Counterexample]] = {}
    for counterexample in result.counterexamples:
        if counterexample.precondition not in listed:
            extra.setdefault(counterexample.precondition, []).append(counterexample)
    rows += [("*", condition, found) for condition, found in extra.items()]
    return rows


def rule_map(results: Sequence[ProofResult]) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(corollary id, title, theorems in the converter's order)`` for every corollary."""
    return [(r.rule, r.title, r.composes) for r in ordered(results) if r.kind == "corollary"]


def step_mark(step: Step) -> str:
    if not step.verified:
        return "did not check"
    return {"prose": "prose", "check": "computed"}.get(step.kind, "sympy")
