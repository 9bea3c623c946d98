"""Checkpoint in, verified inference-form checkpoint out: the whole ``etds convert`` sequence.

    from reference_models.conversions.pipeline import convert_checkpoint
    report = convert_checkpoint("ETDS_M6C32_x4_normal_loss.pth", "etds_inference.pth")
    report.equivalent, report.max_abs_error_255, report.written

Steps: load ``in_path`` (weights only, architecture detected or given); convert it with
:func:`reference_models.conversions.convert` (rules from :mod:`et`); verify the conversion
(float64, fuzzed inputs in [0, 1], clamped outputs, error ``e = max |y₁ − y₂| · 255``); check
that the converted state dict loads back strictly as the target architecture; only then write
``out_path`` atomically as a plain state dict in the authors' layout. Nothing is written when a
step fails or ``e`` exceeds the tolerance (``tolerance_255``, or by default
:data:`~reference_models.conversions.verification.DEFAULT_TOLERANCE_255` raised to the
original's own float32 rounding), and ``out_path`` may not be ``in_path``. The file is
byte-identical from run to run (see :func:`reference_models.checkpoints.atomic_torch_save`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from et.contract import PreconditionError
from reference_models.checkpoints import (
    CheckpointError,
    from_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from reference_models.conversions import NotConvertibleError, convert
from reference_models.conversions.verification import verify_models

#: the alignment when none is given: the authors' widths for RGB
DEFAULT_ALIGN = 4


class ConversionError(ValueError):
    """The input cannot be converted, or its conversion does not load back (one line)."""


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert_checkpoint` did; ``written`` only when ``equivalent``."""

    input: str
    output: str
    source_arch: str
    target_arch: str
    max_abs_error_255: float
    tolerance_255: float
    equivalent: bool
    inputs: int
    written: bool
    #: the converted weights run in float64 against the float64 oracle (None: not run)
    float64_max_abs_error_255: float | None = None
    float64_allowed_255: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def convert_checkpoint(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    arch: str = "auto",
    align: int | Callable[[str], int] = DEFAULT_ALIGN,
    tolerance_255: float | None = None,
    hparams: Mapping[str, Any] | None = None,
    refine: Callable[[nn.Module], nn.Module] | None = None,
) -> ConversionReport:
    """Load, convert, verify, reload and write (see the module docstring).

    ``arch``: the architecture of ``in_path`` (``"auto"``: detected); ``align``: the channel
    alignment, or a function of the source architecture's name that chooses it (e.g.
    :func:`reference_models.deploy.alignment.fastest_alignment` for a runtime); ``hparams``:
    what the weights cannot show (ECBSR's ``with_idt``); ``refine``: an exact transform of the
    converted model applied before verification (e.g. the E10 INT8 layout of
    :mod:`reference_models.deploy.int8.layout`), so its result is verified the same way.
    Raises :class:`CheckpointError` for an unreadable input and :class:`ConversionError` for
    one that cannot be converted.
    """
    source, target = Path(in_path), Path(out_path)
    if _same_file(source, target):
        raise ConversionError(f"OUT is IN ({source}): refusing to overwrite the input")
    if target.is_dir():
        raise ConversionError(f"OUT {target} is a folder; give a file name")
    model = load_checkpoint(source, arch=None if arch == "auto" else arch, hparams=hparams)
    chosen = align(type(model).__name__) if callable(align) else align
    try:
        converted = convert(model, align=chosen)
    except (NotConvertibleError, PreconditionError) as error:
        raise ConversionError(f"cannot convert {source}: {error}") from None
    if refine is not None:
        converted = refine(converted)
    result = verify_models(model, converted, colors=model.colors)
    report = ConversionReport(
        input=str(source),
        output=str(target),
        source_arch=type(model).__name__,
        target_arch=type(converted).__name__,
        max_abs_error_255=result.max_abs_error_255,
        tolerance_255=result.allowed_255(tolerance_255),
        equivalent=result.within(tolerance_255),
        inputs=result.inputs,
        written=False,
        float64_max_abs_error_255=result.weights64_error_255,
        float64_allowed_255=(
            result.weights64_allowed_255 if result.weights64_error_255 is not None else None
        ),
    )
    if not report.equivalent:
        return report
    # the file must load back as the target with strict=True before it is written
    state = {k: v.detach().cpu().clone() for k, v in converted.state_dict().items()}
    try:
        reloaded = from_state_dict(state)
    except CheckpointError as error:
        raise ConversionError(f"the converted state dict does not load back: {error}") from None
    if type(reloaded) is not type(converted):
        raise ConversionError(
            f"the converted state dict reads back as {type(reloaded).__name__}, "
            f"not {type(converted).__name__}"
        )
    save_checkpoint(converted, target, metadata=False)
    return ConversionReport(**(report.as_dict() | {"written": True}))
