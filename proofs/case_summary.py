"""Exhaustive evidence, summarised: the cases of a grid become one line, the list goes to JSON.

A proof records each case of an exhaustive grid as a ``case`` step whose claim names its
parameters (``"grid case k=(1, 1) s=2 d=1 g=1 p=0"``). Cases of one *family* (the same claim
with other parameter values) are summarised as "exhaustive over N cases: k ∈ {…}, s ∈ {…}"
where the family first appears; :func:`cases_document` keeps every case for
``appendix-cases.json``. Claims without ``name=value`` pairs (``"mask sobel_x, channels 2,
padding 1"``) form families by their numbers, listed as n₁ ∈ {…}, n₂ ∈ {…}.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from proofs.contract import ProofResult, Step

# name=value, where the value is a parenthesised tuple, a/b or a,b pair, or one token.
_PARAMETER = re.compile(r"([^\W\d][\w']*)\s*=\s*(\([^()]*\)|[^\s,;:()]+(?:,\d+)?)")
_NUMBER = re.compile(r"\d+")
_SUBSCRIPTS = "₁₂₃₄₅₆₇₈₉"


@dataclass
class CaseFamily:
    """Cases that differ only in their parameter values."""

    template: str
    names: list[str]
    cases: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """``"<template>: exhaustive over N cases: k ∈ {…}, s ∈ {…}"``."""
        ranges = []
        combinations = 1
        for name in self.names:
            values = list(dict.fromkeys(case[name] for case in self.cases))
            ranges.append(f"{name} ∈ {{{', '.join(values)}}}")
            combinations *= len(values)
        head = f"{self.template}: " if self.template else ""
        count = len(self.cases)
        noun = "case" if count == 1 else "cases"
        # When the cases are not the full product of the value sets, say so: the list is in JSON.
        partial = "" if combinations == count else f" (of {combinations} combinations)"
        tail = f": {'; '.join(ranges)}" if ranges else ""
        return f"{head}exhaustive over {count} {noun}{partial}{tail}"


def parameters(claim: str) -> tuple[str, dict[str, str]]:
    """The family template of a case claim and its parameter values, in order."""
    found = _PARAMETER.findall(claim)
    if found:
        template = _PARAMETER.sub(lambda m: m.group(1), claim).strip(" ,:")
        return template, {name: value for name, value in found}
    numbers = _NUMBER.findall(claim)
    names = [f"n{_SUBSCRIPTS[i]}" if len(numbers) > 1 else "n" for i in range(len(numbers))]
    template = claim
    for name in names:
        template = _NUMBER.sub(name, template, count=1)
    return template, dict(zip(names, numbers, strict=True))


def grouped(steps: Sequence[Step]) -> list[Step | CaseFamily]:
    """The steps in order, each family of ``case`` steps replaced by one :class:`CaseFamily`
    at its first appearance."""
    out: list[Step | CaseFamily] = []
    families: dict[tuple[str, tuple[str, ...]], CaseFamily] = {}
    for step in steps:
        if step.kind != "case" or not step.verified:
            out.append(step)
            continue
        template, values = parameters(step.claim)
        key = (template, tuple(values))
        if key not in families:
            families[key] = CaseFamily(template, list(values))
            out.append(families[key])
        families[key].cases.append(values)
    return out


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
