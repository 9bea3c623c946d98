"""G7: ops that change no value are removed; ``aten.pad`` in constant mode is ``constant_pad_nd``.

Theorem. For a tensor x (shape S, dtype t),

    clone(x) = alias(x) = contiguous(x) = x              (any memory format: a layout, no value)
    copy(base, x) = x                                   (base of shape S and dtype t)
    slice(x, dim, 0, e, 1) = x                          (e ≥ the length of dim)
    slice_scatter(base, x, dim, 0, e, 1) = x            (base of shape S and dtype t, e as above)
    pad(x, p, "constant", v) = constant_pad_nd(x, p, v) (v = None: 0)

entry by entry: a clone or alias reads ``x[i]`` at every index i; ``copy`` writes x into every
entry of base (it broadcasts a smaller x and casts to base's dtype, so only a base of x's shape
and dtype gives x back); a slice from 0 to at least the length with step 1 keeps every index in
order; a scatter over the whole base overwrites every entry of base with x (cast to base's
dtype; the op refuses an x of another shape than the slice, so there only the dtype can
differ); and ``aten.pad`` in mode "constant" is defined as ``constant_pad_nd`` with the value 0
when none is given. A slice end of None, or of 2⁶² or more (Python's ``x[a:]`` records
``sys.maxsize``), is past the end of every axis a tensor can have.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register

RULE_ID = "G7"

#: a slice end at or past which every axis ends (no tensor has 2⁶² entries on one axis)
END_OF_ANY_AXIS = 2**62

#: the ops that only give x another layout or name
LAYOUT_ONLY = ("clone", "alias", "contiguous")

OPERATION = Precondition(
    RULE_ID,
    "operation",
    "the op is clone, alias, contiguous, copy, slice, slice_scatter or pad",
    why="another op computes something else from x",
)
SAME_TYPE = Precondition(
    RULE_ID,
    "same_type",
    "the base a copy or scatter writes into has x's shape and dtype (a scatter refuses "
    "another shape itself)",
    why="a larger base broadcasts x; another dtype casts (rounds) it",
)
FULL_RANGE = Precondition(
    RULE_ID,
    "full_range",
    "the slice starts at 0 (or None) and ends at or past the axis length (None, or ≥ 2⁶²)",
    why="a later start or an earlier end drops entries",
)
UNIT_STEP = Precondition(
    RULE_ID,
    "unit_step",
    "the slice's step is 1",
    why="a step of 2 keeps every other entry",
)
CONSTANT_MODE = Precondition(
    RULE_ID,
    "constant_mode",
    "the pad's mode is 'constant' and its value a number or None",
    why="reflect, replicate and circular pads copy entries of x into the border",
)

#: a tensor's shape (sizes, or their symbolic names) and dtype, as the graph records them
TensorType = tuple[Sequence[object] | None, torch.dtype | None]


class ConstantPad(nn.Module):
    """``constant_pad_nd(x, widths, value)``."""

    def __init__(self, widths: Sequence[int], value: float) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.constant_pad_nd.default(x, list(self.widths), self.value)


def check_same_type(base: TensorType, source: TensorType) -> None:
    """Refuse unless a write of ``source`` into ``base`` gives the source back."""
    (base_shape, base_dtype), (shape, dtype) = base, source
    base_sizes = None if base_shape is None else [str(s) for s in base_shape]
    sizes = None if shape is None else [str(s) for s in shape]
    SAME_TYPE.require(
        sizes is not None
        and base_sizes == sizes
        and base_dtype is not None
        and base_dtype == dtype,
        f"base {base_sizes} {base_dtype}, source {sizes} {dtype}",
    )


def check_full_slice(start: object, end: object, step: object, length: int | None = None) -> None:
    """Refuse unless ``slice(·, start, end, step)`` keeps a whole axis (of ``length`` when it
    is a known number; otherwise the end must be past every axis)."""
    past_end = end is None or (
        isinstance(end, int)
        and (end >= END_OF_ANY_AXIS or (isinstance(length, int) and end >= length))
    )
    FULL_RANGE.require(start in (None, 0) and past_end, f"start {start}, end {end}")
    UNIT_STEP.require(step == 1, f"step {step}")


def check_constant_pad(mode: object, value: object) -> float:
    """The value a constant-mode pad writes (None: 0), or a refusal for another mode."""
    number = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    CONSTANT_MODE.require(mode == "constant" and number, f"mode {mode!r}, value {value!r}")
    return 0.0 if value is None else float(value)


def remove_no_op(
    op: str,
    *,
    source: TensorType | None = None,
    base: TensorType | None = None,
    start: object = None,
    end: object = None,
    step: object = 1,
    length: int | None = None,
    widths: Sequence[int] = (),
    mode: object = "constant",
    value: object = None,
) -> nn.Module:
    """The module equal to ``op`` (one of :data:`LAYOUT_ONLY`, ``"copy"``, ``"slice"``,
    ``"slice_scatter"``, ``"pad"``) read as a function of x: ``nn.Identity`` for the no-ops,
    :class:`ConstantPad` for ``pad``; the keywords are that op's arguments (``source``: x's
    type, ``base``: the tensor written into)."""
    OPERATION.require(op in (*LAYOUT_ONLY, "copy", "slice", "slice_scatter", "pad"), f"op {op!r}")
    if op == "copy":
        check_same_type(base or (None, None), source or (None, None))
    if op == "slice_scatter":
        # the op itself refuses a source of another shape than the slice it overwrites (no
        # broadcast), so over a whole axis only the dtype can differ (the source is cast)
        (_, base_dtype), (_, dtype) = base or (None, None), source or (None, None)
        SAME_TYPE.require(
            base_dtype is not None and base_dtype == dtype,
            f"base {base_dtype}, source {dtype} (shapes: equal, or the op refuses)",
        )
    if op in ("slice", "slice_scatter"):
        check_full_slice(start, end, step, length)
    if op == "pad":
        return ConstantPad(widths, check_constant_pad(mode, value))
    return nn.Identity()


RULE = register(
    Rule(
        id=RULE_ID,
        name="remove_no_op",
        title="No-op removed",
        statement="clone/alias/contiguous(x) = x; copy or full slice of x = x; "
        "pad(x, p, 'constant', v) = constant_pad_nd(x, p, v)",
        preconditions=(OPERATION, SAME_TYPE, FULL_RANGE, UNIT_STEP, CONSTANT_MODE),
        transform=remove_no_op,
        proof="proofs.rules.remove_no_op",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
