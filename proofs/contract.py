"""What a proof is, and how proofs are collected.

Every module in :mod:`proofs` (other than this one and :mod:`proofs.symbolic_ops`) derives one
theorem with sympy and registers a :class:`Proof`. Running it returns a :class:`ProofResult`:
the derivation steps, each marked verified or not, the scope of the machine check stated plainly
("general" or "exhaustive over ... up to ..."), and a concrete counterexample for every dropped
precondition. A proof step that does not reduce to zero raises :class:`ProofFailure` naming the
rule and the step, so ``etds prove`` and pytest both fail loudly.

Proofs also tie the mathematics to the code: a ``conformance`` step evaluates the library's
transform in float64 on sampled values and compares it with the symbolically derived formula,
so a wrong sign in ``et/`` makes the proof fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp


class ProofFailure(AssertionError):
    """A derivation step did not check."""

    def __init__(self, rule: str, step: str, detail: str) -> None:
        self.rule = rule
        self.step = step
        self.detail = detail
        super().__init__(f"proof of {rule} failed at step '{step}': {detail}")


@dataclass
class Step:
    """One derivation step: what is claimed, and (optionally) the LaTeX of the identity."""

    claim: str
    latex: str = ""
    verified: bool = True


@dataclass
class Counterexample:
    """A concrete instance where a dropped precondition makes the two sides differ."""

    precondition: str
    description: str
    lhs: str
    rhs: str


@dataclass
class ProofResult:
    """Everything the appendix prints for one theorem."""

    rule: str
    title: str
    statement: str
    preconditions: list[str]
    steps: list[Step] = field(default_factory=list)
    scope: str = ""
    counterexamples: list[Counterexample] = field(default_factory=list)
    kind: str = "theorem"  # "theorem" for a rule, "corollary" for a whole-model conversion

    @property
    def ok(self) -> bool:
        return all(step.verified for step in self.steps)


class Derivation:
    """Builder used inside a proof: records steps and fails fast on the first broken one."""

    def __init__(self, rule: str, title: str, statement: str, preconditions: list[str]) -> None:
        self.result = ProofResult(rule, title, statement, list(preconditions))

    def step(self, claim: str, latex: str = "") -> None:
        """Record a step that needs no check of its own (a definition, a rearrangement)."""
        self.result.steps.append(Step(claim, latex, True))

    def zero(self, claim: str, expr: object, latex: str = "") -> None:
        """Record that ``expr`` (an expression, or an iterable of them) simplifies to 0."""
        items = list(expr) if _is_iterable(expr) else [expr]
        for item in items:
            residual = sp.expand(sp.sympify(item))
            if residual != 0:
                residual = sp.simplify(residual)
            if residual != 0:
                self.result.steps.append(Step(claim, latex, False))
                raise ProofFailure(self.result.rule, claim, f"residual {residual} ≠ 0")
        self.result.steps.append(Step(claim, latex, True))

    def true(self, claim: str, ok: bool, detail: str = "", latex: str = "") -> None:
        """Record a step whose check is a boolean computed by the proof."""
        if not ok:
            self.result.steps.append(Step(claim, latex, False))
            raise ProofFailure(self.result.rule, claim, detail or "check returned False")
        self.result.steps.append(Step(claim, latex, True))

    def counterexample(self, precondition: str, description: str, lhs: object, rhs: object) -> None:
        """Record a counterexample; it must really differ, or the proof fails."""
        difference = sp.simplify(sp.sympify(lhs) - sp.sympify(rhs))
        if difference == 0:
            raise ProofFailure(
                self.result.rule,
                f"counterexample for '{precondition}'",
                "the two sides are equal, so this is no counterexample",
            )
        self.result.counterexamples.append(
            Counterexample(precondition, description, sp.sstr(lhs), sp.sstr(rhs))
        )

    def scope(self, text: str) -> None:
        self.result.scope = text


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
