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
``max|oracle(x) − converted(x)| ≤ atol + rtol·max|oracle(x)| + rounding_factor·ρ``.

Both models run in one declared ``mode`` (``"eval"`` by default, or ``"train"`` for blocks
such as ECB that behave differently in training); it is never changed silently and every
report states it with the dtypes. Inputs are rounded to the compared dtype first and the
oracle sees exactly those values. A model whose own code hard-codes float32 (it casts inside
``forward``) cannot run in float64: its oracle then runs as it is, and the report says so
(``oracle_dtype``). Multi-output models (the dual-stream training forms) are compared on their
first output (:func:`first_output`). A converted model that declares ``output_clamp = (lo,
hi)`` (the inference forms clamp their output, E2) is compared with the original's output
clamped to that range, so ``assert_equivalent(m, convert(m))`` holds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from et.domain import IMAGE_UNIT, InputDomain
from et.probes import probe_batches, probe_inputs, probe_sizes

__all__ = [
    "ROUNDING_FACTOR",
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

    @property
    def max_rel_error(self) -> float:
        return self.max_abs_error / max(self.scale, 1e-300)

    def allowed(
        self, *, atol: float, rtol: float = 0.0, rounding_factor: float = ROUNDING_FACTOR
    ) -> float:
        """``atol + rtol·scale + rounding_factor·rounding``."""
        return atol + rtol * self.scale + rounding_factor * self.rounding

    def equivalent(
        self, *, atol: float, rtol: float = 0.0, rounding_factor: float = ROUNDING_FACTOR
    ) -> bool:
        """No non-finite output and ``max_abs_error ≤ allowed(...)``."""
        allowed = self.allowed(atol=atol, rtol=rtol, rounding_factor=rounding_factor)
        return not self.nonfinite and self.max_abs_error <= allowed

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


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index of element ``flat`` of a C-ordered tensor of ``shape`` (``torch.unravel_index``
    imports sympy on first use: seconds of a command's start)."""
    where = []
    for size in reversed(shape):
        flat, index = divmod(flat, size)
        where.append(index)
    return tuple(reversed(where))


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


def compare_outputs(
    original: nn.Module,
    converted: nn.Module,
    inputs: torch.Tensor | Iterable[torch.Tensor],
    *,
    dtype: torch.dtype | None = None,
    mode: Mode = "eval",
    clamp: tuple[float, float] | None = None,
) -> EquivalenceReport:
    """Measure ``converted`` against the float64 oracle of ``original`` (module docstring).

    ``inputs``: one batch or an iterable of batches (of any spatial sizes; wrap it in a
    progress bar to watch a long check). ``dtype``: what ``converted`` runs in (default its
    own floating dtype, else the original's, else float64). ``clamp``: clip every output
    first (``etds verify`` compares clamped images). The arguments are not modified. Raises
    :class:`OutputShapeError` (a ``ValueError``) when the output shapes differ.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', not {mode!r}")
    if dtype is None:
        dtype = _floating_dtype(converted) or _floating_dtype(original) or torch.float64
    oracle = _Runner(original, torch.float64, mode)
    candidate = _Runner(converted, dtype, mode)
    rounded = _Runner(original, dtype, mode) if dtype != torch.float64 else None
    declared = getattr(converted, "output_clamp", None)
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
            if declared is not None:
                a, r = a.clamp(*declared), r.clamp(*declared)
            if clamp is not None:
                a, b, r = a.clamp(*clamp), b.clamp(*clamp), r.clamp(*clamp)
            a64, b64, r64 = (t.to(torch.float64) for t in (a, b, r))
            scale = max(scale, a64.abs().max().item() if a64.numel() else 0.0)
            gap = r64 - a64
            gap = gap[torch.isfinite(gap)].abs()
            rounding = max(rounding, gap.max().item() if gap.numel() else 0.0)
            diff = (a64 - b64).abs()
            if diff.numel() and diff.max().item() > best["error"]:
                flat = int(diff.argmax())
                where = _unravel(flat, tuple(diff.shape))
                best = {"error": diff.max().item(), "where": where, "shape": tuple(a.shape)}
                best["size"] = tuple(x.shape[-2:]) if x.ndim >= 2 else (1, 1)
    if count == 0:
        raise ValueError("no inputs to compare on")
    if oracle.as_written or oracle_dtype != torch.float64:
        rounding = max(rounding, 4 * ULPS_AT_LEAST * torch.finfo(oracle_dtype).eps * scale)
    # a float computation is never more exact than a few units in the last place of its output
    rounding = max(rounding, ULPS_AT_LEAST * torch.finfo(computed).eps * scale)
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
) -> EquivalenceReport:
    """Assert ``converted(x) == original(x)`` for inputs in ``domain`` (module docstring).

    The inputs are :func:`et.probes.probe_batches` with ``input_shape``'s channels at
    ``sizes`` (default :func:`et.probes.probe_sizes` of ``input_shape``'s height and width:
    that size and one of the other parity); ``inputs`` replaces them. Passes when no output is
    NaN or Inf and ``max|a − b| ≤ atol + rtol·max|a| + rounding_factor·ρ`` (``a`` the float64
    oracle, ``ρ`` the original's own rounding in ``dtype``); raises ``AssertionError`` saying
    where the largest difference is, in which dtype and mode, otherwise. Returns the report.
    """
    if inputs is None:
        channels, height, width = input_shape
        sizes = probe_sizes(height, width) if sizes is None else sizes
        inputs = probe_batches(channels, sizes=sizes, samples=samples, seed=seed, domain=domain)
    try:
        report = compare_outputs(original, converted, inputs, dtype=dtype, mode=mode, clamp=clamp)
    except OutputShapeError as error:
        raise AssertionError(f"not equivalent: {error}") from None
    if not report.equivalent(atol=atol, rtol=rtol, rounding_factor=rounding_factor):
        allowed = report.allowed(atol=atol, rtol=rtol, rounding_factor=rounding_factor)
        raise AssertionError(f"not equivalent: {report.describe()} (allowed {allowed:.3e})")
    return report
