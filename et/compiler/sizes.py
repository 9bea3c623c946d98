"""The input sizes a compiled function holds for, and the check the compiled module makes.

A capture by :func:`torch.export.export` with symbolic batch, height and width is the model's
function on every input whose sizes satisfy the capture's *guards*: each free dimension's
range (``program.range_constraints``; export's lower bound is 2, its 0/1 specialisation), the
relations the trace assumed (``program._guards_code``, e.g. ``H·W ≤ 4096`` after
``if H * W > 4096``, or ``H mod 4 = 0``), and the dimensions it had to fix (an ``int`` in the
input's shape). A capture at static shapes holds at the example's size only. The rewrites keep
the function on every size the guards admit (a rewrite that needs a concrete size, such as a
pool window equal to the map, only fires where the map's size is an ``int``, i.e. fixed by the
guards), so the compiled module holds exactly where the guards do.

:class:`SizeCondition` holds those guards as Python expressions in ``n, c, h, w`` (the input's
batch, channels, height and width); :func:`guard_input` makes the compiled module check them
on every call (:func:`require_size`: a :class:`SizeError` naming the condition in eager mode,
a ``torch._check`` under tracing, so an export of the compiled module keeps the condition).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import sympy
import torch
from torch import fx
from torch.utils._sympy.numbers import int_oo
from torch.utils._sympy.printers import PythonPrinter

#: a dimension of the (single) user input in torch.export's guard code
_SIZE = re.compile(r"L\[[^\]]*\]\.size\(\)\[(\d)\]")
_NAMES = ("n", "c", "h", "w")
_LOWER_BOUND = re.compile(r"[hw] >= \d+")
#: the functions torch.export's guard code may call
_BUILTINS = {"max": max, "min": min, "abs": abs}


class SizeError(ValueError):
    """The input's size is one the compiled function is not known to hold for."""


@dataclass(frozen=True)
class SizeCondition:
    """Checks (Python expressions in ``n, c, h, w``) that must all hold; none: any size."""

    checks: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """``"any"`` or the checks joined by ``and`` (``h`` height, ``w`` width)."""
        return " and ".join(self.checks) if self.checks else "any"

    def holds(self, n: int, c: int, h: int, w: int) -> bool:
        """Whether the compiled function holds for an ``n×c×h×w`` input."""
        return all(_evaluate(check, n, c, h, w) for check in self.checks)

    def also(self, other: SizeCondition) -> SizeCondition:
        """Both conditions (the checks of ``other`` not already here appended)."""
        return SizeCondition(self.checks + tuple(c for c in other.checks if c not in self.checks))


def exact_size(height: int, width: int) -> SizeCondition:
    """The condition of a static capture: the example's height and width only."""
    return SizeCondition((f"h == {height}", f"w == {width}"))


def _input_symbols(module: fx.GraphModule):
    """The shape environment of ``module``'s symbolic input and its size symbols by name."""
    placeholder = next(n for n in module.graph.nodes if n.op == "placeholder")
    value = placeholder.meta.get("val")
    env, names = None, {}
    for name, size in zip(_NAMES, getattr(value, "shape", ()), strict=False):
        if isinstance(size, torch.SymInt):
            env = size.node.shape_env
            if isinstance(size.node.expr, sympy.Symbol):
                names[size.node.expr] = sympy.Symbol(name, integer=True, positive=True)
    return env, names


def guards_so_far(module: fx.GraphModule) -> int:
    """How many guards the shape environment of ``module``'s symbolic input holds (0: none)."""
    env, _ = _input_symbols(module)
    return len(env.guards) if env is not None else 0


def guards_since(module: fx.GraphModule, start: int) -> SizeCondition | None:
    """The guards added to ``module``'s shape environment after the first ``start``, as a
    condition; ``None`` when one reads anything but the input's sizes.

    A rewrite that compares a symbolic size with a number (``if size == kernel``) is answered
    for the example's size, and the shape environment records the answer as a guard: the
    rewritten graph holds where those guards do, so they join the capture's."""
    env, names = _input_symbols(module)
    if env is None:
        return SizeCondition()
    checks: list[str] = []
    for guard in env.guards[start:]:
        if not guard.expr.free_symbols <= set(names):
            return None
        check = _guard_check(PythonPrinter().doprint(guard.expr.xreplace(names)))
        if check is None:
            return None
        checks.append(check)
    return SizeCondition(tuple(checks))


def _guard_check(code: str) -> str | None:
    """torch.export's guard ``code`` with the input's sizes written as ``n, c, h, w``; ``None``
    when it reads anything else (a stride, another input): the caller then trusts no size."""
    text = _SIZE.sub(lambda m: _NAMES[int(m.group(1))], code)
    try:
        names = set(compile(text, "<guard>", "eval").co_names)
    except SyntaxError:
        return None
    return text if names <= set(_NAMES) | set(_BUILTINS) else None


def from_program(program: torch.export.ExportedProgram, shape) -> SizeCondition | None:
    """The condition of a dynamic capture (module docstring) whose user input has the symbolic
    ``shape`` (batch, channels, height, width); ``None`` when a guard cannot be read or a
    dimension is an expression of a symbol (e.g. ``2·s``) rather than a symbol or a number."""
    checks: list[str] = []
    seen: dict[sympy.Symbol, str] = {}
    for name, size in zip(_NAMES, shape, strict=True):
        if isinstance(size, int):
            if name in ("h", "w"):
                checks.append(f"{name} == {size}")
            continue
        expr = size.node.expr
        if not isinstance(expr, sympy.Symbol):
            return None
        if expr in seen:
            checks.append(f"{name} == {seen[expr]}")
            continue
        seen[expr] = name
        bounds = program.range_constraints.get(expr)
        if bounds is None or name not in ("h", "w"):
            continue  # the batch: free (export's least 2 is its 0/1 specialisation; verify
            # runs a batch of 1 too)
        low, high = bounds.lower, bounds.upper
        if low > 1:
            checks.append(f"{name} >= {int(low)}")
        if high not in (int_oo, sympy.oo):
            checks.append(f"{name} <= {int(high)}")
    for code in getattr(program, "_guards_code", []):
        check = _guard_check(code)
        if check is None:
            return None
        if check not in checks:
            checks.append(check)
    return SizeCondition(tuple(checks))


@functools.lru_cache(maxsize=256)
def _code(check: str):
    return compile(check, "<size condition>", "eval")


def _evaluate(check: str, n, c, h, w):
    return eval(_code(check), {"__builtins__": _BUILTINS}, {"n": n, "c": c, "h": h, "w": w})


def require_size(x: torch.Tensor, checks: tuple[str, ...]) -> torch.Tensor:
    """``x`` unchanged when its size satisfies every check; otherwise a :class:`SizeError`
    (eager) or a failed ``torch._check`` (under tracing, where the sizes are symbolic)."""
    if isinstance(x, fx.Proxy):
        # fx re-traces a GraphModule when it is unpickled: keep the check as a node
        return x.tracer.create_proxy("call_function", require_size, (x, checks), {})
    n, c, h, w = x.shape
    if torch.jit.is_tracing():
        # the TorchScript tracer (ONNX export) records no Python condition: refuse to trace
        # a graph that would then accept sizes this one refuses (a lower bound it may drop:
        # an input smaller than 2 pixels is no image)
        strict = [check for check in checks if not _LOWER_BOUND.fullmatch(check)]
        if strict:
            raise SizeError(
                f"this compiled module holds only for inputs with {' and '.join(checks)}; a "
                "traced graph (ONNX) cannot check that: export with torch.export instead"
            )
        return x
    for check in checks:
        ok = _evaluate(check, n, c, h, w)
        message = (
            f"this compiled module holds only for inputs with {' and '.join(checks)} "
            f"(h: height, w: width); got {n}×{c}×{h}×{w}. Compile again with an example "
            "of this size."
        )
        if isinstance(ok, bool):
            if not ok:
                raise SizeError(message)
        else:
            torch._check(ok, lambda message=message: message)
    return x


def guard_input(module: fx.GraphModule, condition: SizeCondition) -> None:
    """Make ``module`` (one input) check ``condition`` before anything reads its input."""
    if not condition.checks:
        return
    graph = module.graph
    placeholder = next(n for n in graph.nodes if n.op == "placeholder")
    with graph.inserting_after(placeholder):
        checked = graph.call_function(require_size, (placeholder, condition.checks))
    checked.meta = dict(placeholder.meta)
    placeholder.replace_all_uses_with(checked, delete_user_cb=lambda user: user is not checked)
    module.recompile()
