"""Exhaustive evidence, summarised: the cases of a grid become one line, the list goes to JSON.

A proof records each case of an exhaustive grid as a ``case`` step whose claim names its
parameters (``"grid case k=(1, 1) s=2 d=1 g=1 p=0"``). Cases of one *family* (the same claim
with other parameter values) are summarised where the family first appears, as
"exhaustive over N cases: k ∈ {…}; (s, d) ∈ {(1, 1), (2, 1)}": the parameters are split into
the finest blocks whose value sets multiply to exactly the cases checked, so a grid reads as
one set per parameter and parameters that vary together (a model configuration) read as the
list of their tuples. :func:`cases_document` keeps every case for ``appendix-cases.json``.
Claims without ``name=value`` pairs (``"mask sobel_x, channels 2, padding 1"``) form families by
their numbers, listed as n₁ ∈ {…}, n₂ ∈ {…}. A computed check (``check`` step) whose claim names
parameters is grouped the same way when the same check ran for several parameter values; a
family of one case is printed as its claim.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from proofs.contract import ProofResult, Step, StepKind

# name=value, where the value is a parenthesised tuple, a/b or a,b pair, or one token.
_PARAMETER = re.compile(r"([^\W\d][\w']*)\s*=\s*(\([^()]*\)|[^\s,;:()]+(?:,\d+)?)")
_NUMBER = re.compile(r"\d+")
_SUBSCRIPT_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
# Parameters that vary together are listed as tuples up to this many; beyond it each parameter's
# values are listed and the count of combinations says that not all of them were checked.
MAX_LISTED_TUPLES = 8
# Above this many parameters the search for the finest product blocks is skipped.
_MAX_FACTORED_NAMES = 7


@dataclass
class CaseFamily:
    """Cases that differ only in their parameter values (``kind``: the steps' kind)."""

    template: str
    names: list[str]
    cases: list[dict[str, str]] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    kind: StepKind = "case"

    def summary(self) -> str:
        """``"<template>: exhaustive over N cases: k ∈ {…}; (s, d) ∈ {…}"``; the claim itself
        for a family of one case."""
        if len(self.claims) == 1 and len(self.cases) == 1:
            return f"{self.claims[0]} (1 case)"
        head = f"{self.template}: " if self.template else ""
        count = len(self.cases)
        noun = "case" if count == 1 else "cases"
        distinct = list(dict.fromkeys(tuple(case[n] for n in self.names) for case in self.cases))
        notes = []
        if len(distinct) != count:
            notes.append(f"{len(distinct)} distinct")
        ranges, complete = _factored_ranges(self.names, distinct)
        if not complete:
            # Not every combination of the listed values was checked; the list is in JSON.
            combinations = math.prod(
                len(dict.fromkeys(t[i] for t in distinct)) for i in range(len(self.names))
            )
            notes.append(f"of {combinations} combinations")
        note = f" ({'; '.join(notes)})" if notes else ""
        tail = f": {'; '.join(ranges)}" if ranges else ""
        return f"{head}exhaustive over {count} {noun}{note}{tail}"


def _factored_ranges(names: list[str], tuples: list[tuple[str, ...]]) -> tuple[list[str], bool]:
    """The value ranges of ``names`` over ``tuples``, one per block of the finest partition of
    the names whose blocks' value sets multiply to exactly ``tuples``, and True; or, when a
    block has too many tuples to list, each name's values in order, and False (the ranges then
    span more combinations than were checked)."""
    blocks = _finest_product_blocks(len(names), tuples)
    projections = [
        list(dict.fromkeys(tuple(t[i] for i in block) for t in tuples)) for block in blocks
    ]
    if any(
        len(b) > 1 and len(p) > MAX_LISTED_TUPLES for b, p in zip(blocks, projections, strict=True)
    ):
        blocks = [[i] for i in range(len(names))]
        projections = [list(dict.fromkeys((t[i],) for t in tuples)) for i in range(len(names))]
        complete = False
    else:
        complete = True
    ranges = []
    for block, values in zip(blocks, projections, strict=True):
        if len(block) == 1:
            ranges.append(f"{names[block[0]]} ∈ {{{', '.join(v[0] for v in values)}}}")
        else:
            listed = ", ".join(f"({', '.join(v)})" for v in values)
            ranges.append(f"({', '.join(names[i] for i in block)}) ∈ {{{listed}}}")
    return ranges, complete


def _finest_product_blocks(size: int, tuples: list[tuple[str, ...]]) -> list[list[int]]:
    """The partition of the positions ``0 … size − 1`` into the most blocks such that the
    distinct ``tuples`` are exactly the product of their projections on the blocks (a full grid
    gives one block per position; no structure gives one block of all)."""
    distinct = set(tuples)

    def is_product(partition: list[list[int]]) -> bool:
        projections = [{tuple(t[i] for i in block) for t in distinct} for block in partition]
        return math.prod(len(p) for p in projections) == len(distinct)

    singletons = [[i] for i in range(size)]
    if size <= 1 or is_product(singletons):
        return singletons
    best = [list(range(size))]
    if size > _MAX_FACTORED_NAMES:
        return best
    for partition in _partitions(list(range(size))):
        if len(partition) > len(best) and is_product(partition):
            best = partition
    return sorted(best, key=min)


def _partitions(items: list[int]) -> Iterator[list[list[int]]]:
    """Every set partition of ``items`` (Bell(n) of them: 877 for 7 items); the blocks come in
    no particular order, so the caller sorts the one it keeps."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for i in range(len(partition)):
            yield [*partition[:i], [first, *partition[i]], *partition[i + 1 :]]


def parameters(claim: str) -> tuple[str, dict[str, str]]:
    """The family template of a case claim and its parameter values, in order."""
    found = _PARAMETER.findall(claim)
    if found:
        template = _PARAMETER.sub(lambda m: m.group(1), claim).strip(" ,:")
        return template, {name: value for name, value in found}
    numbers = _NUMBER.findall(claim)
    names = [
        f"n{str(i + 1).translate(_SUBSCRIPT_DIGITS)}" if len(numbers) > 1 else "n"
        for i in range(len(numbers))
    ]
    template = claim
    for name in names:
        template = _NUMBER.sub(name, template, count=1)
    return template, dict(zip(names, numbers, strict=True))


def grouped(steps: Sequence[Step]) -> list[Step | CaseFamily]:
    """The steps in order, each family of ``case`` steps replaced by one :class:`CaseFamily`
    at its first appearance; so is each family of parameterised ``check`` steps (a check
    without ``cases`` whose claim names ``name=value`` parameters) of two or more members."""
    keys = [_family_key(step) for step in steps]
    members: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for key in keys:
        if key is not None:
            members[key] = members.get(key, 0) + 1
    out: list[Step | CaseFamily] = []
    families: dict[tuple[str, str, tuple[str, ...]], CaseFamily] = {}
    for step, key in zip(steps, keys, strict=True):
        if key is None or (step.kind == "check" and members[key] < 2):
            out.append(step)
            continue
        template, values = parameters(step.claim)
        if key not in families:
            families[key] = CaseFamily(template, list(values), kind=step.kind)
            out.append(families[key])
        families[key].cases.append(values)
        families[key].claims.append(step.claim)
    return out


def _family_key(step: Step) -> tuple[str, str, tuple[str, ...]] | None:
    """The family a step belongs to (kind, template, parameter names), or None for a step
    that stands alone (prose, an identity, a failed step, a check naming no parameters)."""
    if not step.verified:
        return None
    if step.kind == "case" or (
        step.kind == "check" and not step.cases and _PARAMETER.search(step.claim) and not step.latex
    ):
        template, values = parameters(step.claim)
        return (step.kind, template, tuple(values))
    return None


def case_count(result: ProofResult) -> int:
    """How many exhaustive cases (and code-branch cases) the proof checked."""
    return sum(
        1 if step.kind == "case" else len(step.cases)
        for step in result.steps
        if step.kind in ("case", "check")
    )


def cases_document(results: Sequence[ProofResult]) -> dict[str, object]:
    """Every case of every proof, for ``appendix-cases.json`` (rule id → list of cases)."""
    document: dict[str, object] = {}
    for result in results:
        entries: list[dict[str, object]] = []
        for step in result.steps:
            if step.kind == "case":
                template, values = parameters(step.claim)
                entries.append({"family": template, "claim": step.claim, "parameters": values})
            elif step.cases:
                entries += [{"family": step.claim, "parameters": c} for c in step.cases]
        document[result.rule] = entries
    return document
