"""Check that a converted network computes what the original computes: the one comparison core.

:func:`compare_outputs` is the core that :func:`assert_equivalent` (the public checker for
users' own blocks) and ``etds verify`` both use. For every input batch it runs

* the *oracle*: a float64 copy of the original (the reference that separates rounding from
  a logic error);
* the *converted* model in the dtype it is compared in (its own by default: a float32 fold is
  judged as the float32 network it is);
* the original in that same dtype, which measures the original's own rounding
  ``ρ = max |original_dtype(x) − oracle(x)|`` (at least :data:`ULPS_AT_LEAST` units in the
  last place of the output), so the tolerance follows the dtype instead of assuming float64.

The converted model is equivalent when no output is NaN or ±Inf and
``max|oracle(x) − converted(x)| ≤ atol + rtol·max|oracle(x)| + rounding_factor·ρ``, and (by
default, ``weights64``) the *stored-weights* check holds too: the converted model's own stored
weights run in float64, so arithmetic rounding vanishes and only the rounding of its weights
to their storage dtype is left, must satisfy

    max|oracle(x) − converted₆₄(x)| ≤ atol + rtol·max|oracle(x)| + WEIGHTS_FACTOR·ρ₆₄,
    ρ₆₄ = max(max_x |original₆₄[w ← w·(1 + u·s)](x) − oracle(x)|,
              ULPS_AT_LEAST·max(u, ε₆₄)·max|oracle(x)|),

with ``u = ε/2`` the unit roundoff of the converted model's storage dtype (2⁻²⁴ for float32:
storing a weight moves it by at most ``u`` relative), ``s`` seeded random signs ±1 per weight
and ``ε₆₄ = 2⁻⁵²``. ρ₆₄ is what storing every weight of the original once, each moved by ``u``,
does to the output, and at least a few ``u`` of it (a conversion adds constants of the
output's size, such as E2's clip offsets). A correct conversion rounds each weight at most
once by at most ``u`` (copies and exact values not at all), so its error is of ρ₆₄'s size; a
logic error (a 1e-4 bias) is not, and float32 arithmetic no longer hides it. ρ₆₄ is measured on
the original, never on the model under test, so a wrong model cannot widen its tolerance.

Both models run in one declared ``mode`` (``"eval"`` by default, or ``"train"`` for blocks
such as ECB that behave differently in training); it is never changed silently and every
report states it with the dtypes. Inputs are rounded to the compared dtype first and the
oracle sees exactly those values. A model whose own code hard-codes float32 (it casts inside
``forward``) cannot run in float64: its oracle then runs as it is, and the report says so
(``oracle_dtype``). Multi-output models (the dual-stream training forms) are compared on their
first output (:func:`first_output`). A converted model that declares ``output_clamp = (lo,
hi)`` (the inference forms clamp their output, E2) is compared with the original's output
clamped to that range, so ``assert_equivalent(m, convert(m))`` holds; when the original declares
the same clamp (both are inference forms), nothing is clamped: the declaration holds only for
weights that really end in the E2 clip.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy
import torch
from torch import nn

from et.domain import IMAGE_UNIT, InputDomain
from et.probes import probe_batches, probe_inputs, probe_sizes

__all__ = [
    "ROUNDING_FACTOR",
    "WEIGHTS_FACTOR",
    "EquivalenceReport",
    "Mode",
    "OutputShapeError",
    "assert_equivalent",
    "compare_outputs",
    "first_output",
    "probe_batches",
    "probe_inputs",
    "probe_sizes",
]

Mode = Literal["eval", "train"]

#: the least rounding assumed, in units in the last place of the output's largest value
ULPS_AT_LEAST = 4

#: the default multiple of the original's own rounding a converted model may differ by
ROUNDING_FACTOR = 16.0

#: the multiple of ρ₆₄ (weights stored once, each moved by u) the stored-weights check allows
WEIGHTS_FACTOR = 2.0


class OutputShapeError(ValueError):
    """The two models' outputs differ in shape: they cannot compute the same function."""


def first_output(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensor a model computes, or the first of several (the dual-stream training forms
    return ``(total, low)``; the image is ``total``)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"expected a tensor or a tuple of tensors, got {type(output).__name__}")


@dataclass(frozen=True)
class EquivalenceReport:
    """Outcome of comparing two modules: the largest gap and everything needed to judge it."""

    max_abs_error: float  # +inf when an output holds NaN or ±Inf
    scale: float  # max |oracle output|
    rounding: float  # ρ: the original's own rounding in ``dtype`` (≥ a few ulps of the output)
    where: tuple[int, ...]  # (sample, channel, row, column) of the largest error
    size: tuple[int, int]  # the input's spatial size there
    on_border: bool
    inputs: int
    output_shape: tuple[int, ...]  # of the batch holding the largest error
    dtype: torch.dtype  # what the converted model computed in
    oracle_dtype: torch.dtype  # float64 unless the original would not run in it
    mode: str  # "eval" or "train"
    nonfinite: bool  # NaN or ±Inf anywhere: never equivalent
    # the stored-weights check (module docstring); ``None``: not run (not asked for, or a
    # model's code will not run in float64)
    weights64_error: float | None = None  # max|oracle − converted₆₄|, +inf when not finite
    weights64_rounding: float = 0.0  # ρ₆₄ (≥ ULPS_AT_LEAST·max(u, ε₆₄)·scale)
    unit_roundoff: float = 0.0  # u of the converted model's storage dtype

    @property
    def max_rel_error(self) -> float:
        return self.max_abs_error / max(self.scale, 1e-300)

    def allowed(
        self, *, atol: float, rtol: float = 0.0, rounding_factor: float = ROUNDING_FACTOR
    ) -> float:
        """``atol + rtol·scale + rounding_factor·rounding``."""
        return atol + rtol * self.scale + rounding_factor * self.rounding

    def allowed64(self, *, atol: float, rtol: float = 0.0) -> float:
        """``atol + rtol·scale + WEIGHTS_FACTOR·ρ₆₄``."""
        return atol + rtol * self.scale + WEIGHTS_FACTOR * self.weights64_rounding

    def equivalent(
        self, *, atol: float, rtol: float = 0.0, rounding_factor: float = ROUNDING_FACTOR
    ) -> bool:
        """No non-finite output, ``max_abs_error ≤ allowed(...)`` and, when the stored-weights
        check ran, ``weights64_error ≤ allowed64(...)``: both must hold."""
        allowed = self.allowed(atol=atol, rtol=rtol, rounding_factor=rounding_factor)
        if self.nonfinite or not self.max_abs_error <= allowed:
            return False
        return self.weights64_error is None or self.weights64_error <= self.allowed64(
            atol=atol, rtol=rtol
        )

    def describe(self) -> str:
        precision = f"{_name(self.dtype)} vs a {_name(self.oracle_dtype)} oracle, {self.mode} mode"
        if self.nonfinite:
            return f"an output holds NaN or Inf ({precision}, {self.inputs} inputs)"
        sample, channel, row, col = [*self.where, 0, 0, 0, 0][:4]
        place = "on the border" if self.on_border else "in the interior"
        return (
            f"max |difference| {self.max_abs_error:.3e} (relative {self.max_rel_error:.3e}; "
            f"the original's own rounding {self.rounding:.3e}) at sample {sample} "
            f"({self.size[0]}×{self.size[1]} input), channel {channel}, row {row}, column {col} "
            f"({place}) over {self.inputs} inputs; {precision}"
        )

    def describe64(self) -> str:
        """The stored-weights figure, or why it is missing."""
        if self.weights64_error is None:
            return "stored weights in float64: not run"
        return (
            f"stored weights in float64: max |difference| {self.weights64_error:.3e} (weight "
            f"storage rounding ρ₆₄ {self.weights64_rounding:.3e} for u = {self.unit_roundoff:.3g})"
        )


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _floating_dtype(module: nn.Module) -> torch.dtype | None:
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _prepared(module: nn.Module, dtype: torch.dtype | None, mode: Mode) -> nn.Module:
    """A copy of ``module`` in ``dtype`` (as it is when ``None``) and ``mode``."""
    result = copy.deepcopy(module)
    if dtype is not None:
        result = result.to(dtype)
    return result.train(mode == "train")


class _Runner:
    """A copy of ``module`` run in ``dtype``, or as it is written when its code will not run in
    that dtype (a ``forward`` that casts its input to float32 meets float64 weights)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, mode: Mode) -> None:
        self.module, self.mode = module, mode
        self.model, self.dtype = _prepared(module, dtype, mode), dtype
        self.as_written = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.as_written:
            try:
                return first_output(self.model(x.to(self.dtype)))
            except RuntimeError:
                self.model, self.as_written = _prepared(self.module, None, self.mode), True
                self.dtype = _floating_dtype(self.model) or self.dtype
        return first_output(self.model(x.to(self.dtype)))


def _stored_once(module: nn.Module, unit_roundoff: float, seed: int = 0) -> nn.Module:
    """A float64 copy of ``module`` with every floating weight and buffer ``w`` replaced by
    ``w·(1 + u·s)``, ``s`` = ±1 from a seeded generator: each value moved by the largest
    relative error that storing it once in a dtype of unit roundoff ``u`` can cause."""
    result = copy.deepcopy(module).to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*result.parameters(), *result.buffers()]:
            if tensor.is_floating_point():
                signs = torch.randint(0, 2, tensor.shape, generator=generator) * 2 - 1
                tensor.mul_(1 + unit_roundoff * signs.to(torch.float64))
    return result


def _largest(difference: torch.Tensor) -> float:
    finite = difference[torch.isfinite(difference)].abs()  # NaN/Inf are reported apart
    return finite.max().item() if finite.numel() else 0.0


def compare_outputs(
    original: nn.Module,
    converted: nn.Module,
    inputs: torch.Tensor | Iterable[torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
    mode: Mode = "eval",
    clamp: tuple[float, float] | None = None,
    weights64: bool = True,
) -> EquivalenceReport:
    """Measure ``converted`` against the float64 oracle of ``original`` (module docstring).

    ``inputs``: one batch or an iterable of batches (of any spatial sizes; wrap it in a
    progress bar to watch a long check). ``dtype``: what ``converted`` runs in (default its
    own floating dtype, else the original's, else float64). ``clamp``: clip every output
    first (``etds verify`` compares clamped images). ``weights64``: run the stored-weights
    check too (module docstring). The arguments are not modified. Raises
    :class:`OutputShapeError` (a ``ValueError``) when the output shapes differ.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', not {mode!r}")
    if dtype is None:
        dtype = _floating_dtype(converted) or _floating_dtype(original) or torch.float64
    oracle = _Runner(original, torch.float64, mode)
    candidate = _Runner(converted, dtype, mode)
    rounded = _Runner(original, dtype, mode) if dtype != torch.float64 else None
    stored = _floating_dtype(converted) or dtype
    unit_roundoff = torch.finfo(stored).eps / 2 if stored.is_floating_point else 0.0
    in64 = stored64 = None
    if weights64:
        in64 = candidate if dtype == torch.float64 else _Runner(converted, torch.float64, mode)
        stored64 = _Runner(_stored_once(original, unit_roundoff), torch.float64, mode)
    error64 = rounding64 = 0.0
    declared = getattr(converted, "output_clamp", None)
    if declared is not None and getattr(original, "output_clamp", None) == declared:
        # the clamp is carried from an unclamped original to its converted form; two models
        # that both declare it (a form and a rewrite of it) are compared as they compute
        declared = None
    batches = [inputs] if isinstance(inputs, torch.Tensor) else inputs
    best: dict = {"error": -1.0}
    scale = rounding = 0.0
    count, nonfinite, computed, oracle_dtype = 0, False, dtype, torch.float64
    with torch.no_grad():
        for batch in batches:
            x = batch.to(dtype)
            b = first_output(candidate(x))
            a = oracle(x)
            computed, oracle_dtype = b.dtype, a.dtype
            if a.shape != b.shape:
                raise OutputShapeError(
                    f"the models' outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}"
                )
            count += x.shape[0]
            if not (torch.isfinite(a).all() and torch.isfinite(b).all()):  # before any clamp
                nonfinite = True
                continue
            r = first_output(rounded(x)) if rounded is not None else a
            c = d = a
            if in64 is not None:
                # the inputs are the same values (x is already rounded to ``dtype``)
                try:
                    c, d = in64(x.to(torch.float64)), stored64(x.to(torch.float64))
                except RuntimeError:  # code that casts to float32 inside: no float64 run
                    in64 = stored64 = None
            if not (torch.isfinite(c).all() and torch.isfinite(d).all()):
                error64 = float("inf")
            if declared is not None:
                a, r, d = a.clamp(*declared), r.clamp(*declared), d.clamp(*declared)
            if clamp is not None:
                a, b, r = a.clamp(*clamp), b.clamp(*clamp), r.clamp(*clamp)
                c, d = c.clamp(*clamp), d.clamp(*clamp)
            a64, b64, r64, c64, d64 = (t.to(torch.float64) for t in (a, b, r, c, d))
            scale = max(scale, a64.abs().max().item() if a64.numel() else 0.0)
            rounding = max(rounding, _largest(r64 - a64))
            if in64 is not None and c64.numel():
                error64 = max(error64, (a64 - c64).abs().max().item())
                rounding64 = max(rounding64, _largest(d64 - a64))
            diff = (a64 - b64).abs()
            if diff.numel() and diff.max().item() > best["error"]:
                flat = int(diff.argmax())
                where = tuple(int(i) for i in numpy.unravel_index(flat, tuple(diff.shape)))
                best = {"error": diff.max().item(), "where": where, "shape": tuple(a.shape)}
                best["size"] = tuple(x.shape[-2:]) if x.ndim >= 2 else (1, 1)
    if count == 0:
        raise ValueError("no inputs to compare on")
    if oracle.as_written or oracle_dtype != torch.float64:
        rounding = max(rounding, 4 * ULPS_AT_LEAST * torch.finfo(oracle_dtype).eps * scale)
    # a float computation is never more exact than a few units in the last place of its output
    rounding = max(rounding, ULPS_AT_LEAST * torch.finfo(computed).eps * scale)
    # the stored-weights check needs both models really in float64 (not as their code casts)
    ran64 = stored64 is not None and not (in64.as_written or stored64.as_written)
    ran64 = ran64 and not oracle.as_written and oracle_dtype == torch.float64
    # a conversion adds constants of the output's size (E2's clip offsets, merged biases),
    # each rounded once: at least a few u of the output, and never under float64's own ulps
    floor64 = ULPS_AT_LEAST * max(unit_roundoff, torch.finfo(torch.float64).eps) * scale
    rounding64 = max(rounding64, floor64)
    where = best.get("where", ())
    shape = best.get("shape", ())
    on_border = False
    if len(shape) == 4:
        on_border = where[2] in (0, shape[2] - 1) or where[3] in (0, shape[3] - 1)
    return EquivalenceReport(
        max_abs_error=float("inf") if nonfinite else max(best["error"], 0.0),
        scale=scale,
        rounding=rounding,
        where=where,
        size=best.get("size", (0, 0)),
        on_border=on_border,
        inputs=count,
        output_shape=shape,
        dtype=computed,
        oracle_dtype=oracle_dtype,
        mode=mode,
        nonfinite=nonfinite,
        weights64_error=(float("inf") if nonfinite else error64) if ran64 else None,
        weights64_rounding=rounding64,
        unit_roundoff=unit_roundoff,
    )


def assert_equivalent(
    original: nn.Module,
    converted: nn.Module,
    *,
    input_shape: tuple[int, int, int] = (3, 12, 12),
    sizes: Sequence[tuple[int, int]] | None = None,
    inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    domain: InputDomain | tuple[float, float] = IMAGE_UNIT,
    samples: int = 8,
    seed: int = 0,
    atol: float = 1e-9,
    rtol: float = 1e-9,
    rounding_factor: float = ROUNDING_FACTOR,
    dtype: torch.dtype | None = None,
    mode: Mode = "eval",
    clamp: tuple[float, float] | None = None,
    weights64: bool = True,
) -> EquivalenceReport:
    """Assert ``converted(x) == original(x)`` for inputs in ``domain`` (module docstring).

    The inputs are :func:`et.probes.probe_batches` with ``input_shape``'s channels at
    ``sizes`` (default :func:`et.probes.probe_sizes` of ``input_shape``'s height and width:
    that size and one of the other parity); ``inputs`` replaces them. Passes when no output is
    NaN or Inf and ``max|a − b| ≤ atol + rtol·max|a| + rounding_factor·ρ`` (``a`` the float64
    oracle, ``ρ`` the original's own rounding in ``dtype``) and, unless ``weights64=False``,
    the converted model's stored weights run in float64 are within ``atol + rtol·max|a| +
    WEIGHTS_FACTOR·ρ₆₄`` of the oracle (module docstring); raises ``AssertionError`` saying
    where the largest difference is, in which dtype and mode, with both figures, otherwise.
    Returns the report.
    """
    if inputs is None:
        channels, height, width = input_shape
        sizes = probe_sizes(height, width) if sizes is None else sizes
        inputs = probe_batches(channels, sizes=sizes, samples=samples, seed=seed, domain=domain)
    try:
        report = compare_outputs(
            original, converted, inputs, dtype=dtype, mode=mode, clamp=clamp, weights64=weights64
        )
    except OutputShapeError as error:
        raise AssertionError(f"not equivalent: {error}") from None
    if not report.equivalent(atol=atol, rtol=rtol, rounding_factor=rounding_factor):
        allowed = report.allowed(atol=atol, rtol=rtol, rounding_factor=rounding_factor)
        allowed64 = report.allowed64(atol=atol, rtol=rtol)
        raise AssertionError(
            f"not equivalent: {report.describe()} (allowed {allowed:.3e}); "
            f"{report.describe64()} (allowed {allowed64:.3e} = {WEIGHTS_FACTOR:g}·ρ₆₄ + atol + "
            "rtol·scale)"
        )
    return report
