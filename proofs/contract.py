"""What a proof is, and how proofs are collected.

Every module in :mod:`proofs.rules` and :mod:`proofs.corollaries` derives one theorem with sympy
and registers a :class:`Proof`. Running it returns a :class:`ProofResult`: the derivation
steps, each of one :data:`StepKind`, the reach of the machine check (:data:`REACHES`), and for
every precondition of the rule either a concrete counterexample (the theorem's two sides
evaluated to different numbers) or an explicit "none known" with the reason. A step that does
not check raises :class:`ProofFailure` naming the rule and the step, so ``etds prove`` and
pytest both fail loudly.

Step kinds, as the appendix prints them:

* ``identity``: ``lhs = rhs`` (or ``expr = 0``) that sympy simplified to zero; the displayed
  line is ``sympy.latex`` of exactly the expressions that were checked.
* ``case``: one case of an exhaustive grid (an object array of sympy expressions whose
  difference is zero entry by entry); the appendix summarises a family of cases in one line
  and lists them all in ``appendix-cases.json``.
* ``check``: a boolean computed by the proof (a block-matrix collapse, the float64 run of the
  code in ``et/`` across its branches).
* ``prose``: an argument in words, printed as prose and never counted as checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp

StepKind = Literal["identity", "case", "check", "prose"]

# How far the machine check reaches, from strongest to weakest.
GENERAL = "general"
GENERAL_IN_PART = "general in part"
EXHAUSTIVE = "exhaustive over small sizes"
REACHES = (GENERAL, GENERAL_IN_PART, EXHAUSTIVE)


class ProofFailure(AssertionError):
    """A derivation step did not check."""

    def __init__(self, rule: str, step: str, detail: str) -> None:
        self.rule = rule
        self.step = step
        self.detail = detail
        super().__init__(f"proof of {rule} failed at step '{step}': {detail}")


@dataclass
class Step:
    """One derivation step: what is claimed, its kind, and the LaTeX of what was checked."""

    claim: str
    latex: str = ""
    verified: bool = True
    kind: StepKind = "identity"
    cases: list[dict[str, object]] = field(default_factory=list)

    @property
    def checked(self) -> bool:
        """True for a step a machine checked (prose never is)."""
        return self.kind != "prose" and self.verified


@dataclass
class Counterexample:
    """A concrete instance where dropping ``precondition`` makes the two sides differ, or,
    when ``lhs`` is empty, the statement that none is known (``description`` says why)."""

    precondition: str
    description: str
    lhs: str = ""
    rhs: str = ""

    @property
    def known(self) -> bool:
        return bool(self.lhs)


@dataclass
class ProofResult:
    """Everything the appendix prints for one theorem or corollary."""

    rule: str
    title: str
    statement: str
    preconditions: list[str]
    steps: list[Step] = field(default_factory=list)
    scope: str = ""
    counterexamples: list[Counterexample] = field(default_factory=list)
    kind: str = "theorem"  # "theorem" for a rule, "corollary" for a whole-model conversion
    reach: str = ""  # one of REACHES
    reach_detail: str = ""  # for "general in part": which part
    composes: tuple[str, ...] = ()  # a corollary's theorems, in the converter's order

    @property
    def ok(self) -> bool:
        return all(step.verified for step in self.steps)


class Derivation:
    """Builder used inside a proof: records steps and fails fast on the first broken one."""

    def __init__(self, rule: str, title: str, statement: str, preconditions: list[str]) -> None:
        self.result = ProofResult(rule, title, statement, list(preconditions))

    def _fail(self, claim: str, kind: StepKind, detail: str) -> None:
        self.result.steps.append(Step(claim, "", False, kind))
        raise ProofFailure(self.result.rule, claim, detail)

    def step(self, claim: str, latex: str = "") -> None:
        """Record an argument in words (with an optional formula); printed as unchecked prose."""
        self.result.steps.append(Step(claim, latex, True, "prose"))

    def equal(self, claim: str, lhs: object, rhs: object) -> None:
        """Check ``lhs = rhs`` symbolically; the appendix shows ``latex(lhs) = latex(rhs)``.

        Arrays (object arrays of sympy expressions) are compared entry by entry as a ``case``.
        """
        if _is_iterable(lhs) or _is_iterable(rhs):
            self.zero(claim, [a - b for a, b in zip(_flat(lhs), _flat(rhs), strict=True)])
            return
        left, right = sp.sympify(lhs), sp.sympify(rhs)
        residual = _residual(left - right)
        if residual != 0:
            self._fail(claim, "identity", f"residual {residual} ≠ 0")
        latex = rf"{sp.latex(left)} = {sp.latex(right)}"
        self.result.steps.append(Step(claim, latex, True, "identity"))

    def zero(self, claim: str, expr: object) -> None:
        """Check that ``expr`` (an expression, or an iterable of them) simplifies to 0.

        One expression is an identity shown as ``latex(expr) = 0``; an iterable (an exhaustive
        grid case, entry by entry) is a ``case`` step, summarised by the appendix.
        """
        iterable = _is_iterable(expr)
        items = list(expr) if iterable else [expr]  # type: ignore[call-overload]
        kind: StepKind = "case" if iterable else "identity"
        for item in items:
            residual = _residual(sp.sympify(item))
            if residual != 0:
                self._fail(claim, kind, f"residual {residual} ≠ 0")
        latex = "" if iterable else rf"{sp.latex(sp.sympify(expr))} = 0"
        self.result.steps.append(Step(claim, latex, True, kind))

    def true(self, claim: str, ok: bool, detail: str = "", latex: str = "") -> None:
        """Record a step whose check is a boolean computed by the proof; ``latex``, when
        given, must be rendered by sympy from the objects that were checked."""
        if not ok:
            self._fail(claim, "check", detail or "check returned False")
        self.result.steps.append(Step(claim, latex, True, "check"))

    def checked_cases(self, claim: str, cases: list[dict[str, object]]) -> None:
        """Record a computed check that ran over ``cases`` (each a dict of parameters)."""
        self.result.steps.append(Step(claim, "", True, "check", [dict(c) for c in cases]))

    def counterexample(self, precondition: str, description: str, lhs: object, rhs: object) -> None:
        """Record a counterexample; its two sides must really differ.

        Sides that still hold symbols are evaluated at numbers (:func:`_at_numbers`), so the
        appendix always shows two numbers; the description says which values were used.
        """
        left, right = sp.sympify(lhs), sp.sympify(rhs)
        values = _at_numbers(left, right)
        if values:
            left, right = left.subs(values), right.subs(values)
            names = ", ".join(f"{sp.sstr(k)} = {v}" for k, v in values.items())
            description = f"{description}; evaluated at {names}"
        difference = sp.simplify(left - right)
        if difference == 0:
            raise ProofFailure(
                self.result.rule,
                f"counterexample for '{precondition}'",
                "the two sides are equal, so this is no counterexample",
            )
        self.result.counterexamples.append(
            Counterexample(precondition, description, sp.latex(left), sp.latex(right))
        )

    def none_known(self, precondition: str, reason: str) -> None:
        """Say that no counterexample is known for ``precondition``, and why."""
        self.result.counterexamples.append(Counterexample(precondition, reason))

    def scope(self, text: str) -> None:
        self.result.scope = text

    def reach(self, kind: str, detail: str = "") -> None:
        """How far the check reaches: ``general`` only where sympy checked the general
        statement; ``general in part`` names the part in ``detail``."""
        if kind not in REACHES:
            raise ValueError(f"reach must be one of {REACHES}, got {kind!r}")
        if (kind == GENERAL_IN_PART) != bool(detail):
            raise ValueError("'general in part' needs the part; the other reaches take none")
        self.result.reach, self.result.reach_detail = kind, detail


def _at_numbers(lhs: sp.Basic, rhs: sp.Basic) -> dict[sp.Symbol, int]:
    """Small positive integers for the free symbols of ``lhs − rhs`` (in name order) at which
    the two sides differ: 1, 2, 3, … first, then primes; empty when there are no symbols."""
    symbols = sorted(lhs.free_symbols | rhs.free_symbols, key=lambda sym: sym.name)
    if not symbols:
        return {}
    for start in (1, 2):
        values = {sym: start + i for i, sym in enumerate(symbols)}
        if sp.simplify((lhs - rhs).subs(values)) != 0:
            return values
    values = {sym: int(sp.prime(i + 1)) for i, sym in enumerate(symbols)}
    return values


def _residual(expr: sp.Basic) -> sp.Basic:
    residual = sp.expand(expr)
    if residual != 0:
        residual = sp.simplify(residual)
    return residual


def _flat(value: object) -> list[object]:
    flatten = getattr(value, "flatten", None)
    return list(flatten()) if flatten is not None else list(value)  # type: ignore[call-overload]


def _is_iterable(value: object) -> bool:
    if isinstance(value, sp.Basic | str | int | float):
        return False
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class Proof:
    """A registered derivation: ``run()`` returns the result or raises :class:`ProofFailure`."""

    rule: str
    run: Callable[[], ProofResult]
    module: str


_PROOFS: dict[str, Proof] = {}


def register_proof(rule: str) -> Callable[[Callable[[], ProofResult]], Callable[[], ProofResult]]:
    """Decorator: register ``fn`` as the proof of ``rule`` (id such as ``"R1"``)."""

    def decorate(fn: Callable[[], ProofResult]) -> Callable[[], ProofResult]:
        if rule in _PROOFS and _PROOFS[rule].module != fn.__module__:
            raise ValueError(f"a proof of {rule} is already registered")
        _PROOFS[rule] = Proof(rule, fn, fn.__module__)
        return fn

    return decorate


def registered_proofs() -> dict[str, Proof]:
    return dict(_PROOFS)
