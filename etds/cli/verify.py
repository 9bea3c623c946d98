"""``etds verify``: do two checkpoints compute the same clamped image?

Either file may also be the ``.pt2`` ``etds compile`` writes (its program, run by PyTorch in any
dtype), and the converted one a deployed ``.onnx`` or ``.tflite`` (``etds export``), run in its
own runtime in float32 (ONNX Runtime; LiteRT tiled over inputs at least the file's size, probed
at that size and the other parity): the second figure is then not run (the runtime holds its
weights as written), and an INT8 file is judged like any other, so expect it to differ.

The original runs as a float64 oracle, the converted model in its own dtype (``--dtype`` to
choose), both in ``--mode`` (eval by default), on fuzzed inputs in [0, 1] (structured probes
and noise at an even and an odd, non-square size, see
:mod:`reference_models.conversions.verification`) and on the PNG images of ``--images DIR``
used as LR inputs. The measure is the largest absolute difference of the clamped first
outputs, in 1/255 units; an output holding NaN or Inf is never equivalent. Exit status: 0
when it is ≤ ``--tolerance`` (by default 0.01/255, or 16 times the original's own rounding
in that dtype where that is larger; an explicit tolerance is taken as given) *and* the
second figure holds, 1 when either is above, 2 on bad input (unreadable checkpoint, no
images, models of different shape).

The second figure (unless ``--no-float64-check``) runs the converted model's stored weights in
float64 against the same oracle: no arithmetic rounding is left, only the rounding of its
weights to their storage dtype, so a logic error float32 noise would hide shows alone. It must
be ≤ ``2·ρ₆₄``, where ``ρ₆₄ = max |original₆₄[w ← w·(1 + u·s)](x) − oracle(x)|`` is what
storing the original's weights once, each moved by the storage dtype's unit roundoff ``u``
(2⁻²⁴ for float32) with seeded random signs ``s``, does to its clamped output, and at least
``4·u·max|oracle(x)|`` (a conversion adds constants of the output's size, such as E2's clip
offsets, each rounded once). ``--json`` prints ``max_abs_error_255`` (``null`` when not
finite), ``tolerance_255``, ``allowed_255``, ``rounding_255``, ``equivalent``, ``inputs``,
``dtype``, ``oracle_dtype``, ``mode``, and ``float64_max_abs_error_255`` (``null`` when not run
or not finite), ``float64_allowed_255``, ``float64_rounding_255`` and ``float64_checked``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from etds.cli import CommandError

#: the library's default (reference_models.conversions.verification), not imported at start-up
DEFAULT_TOLERANCE_255 = 0.01

NAME = "verify"
HELP = (
    "compare two checkpoints (e.g. a model and its conversion) on fuzzed inputs in [0,1] and "
    "images; report the max abs difference of the clamped outputs in 1/255 units"
)
DTYPES = ("bfloat16", "float16", "float32", "float64")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("original", type=Path, help="checkpoint of the original model")
    parser.add_argument("converted", type=Path, help="checkpoint of the converted model")
    parser.add_argument("--images", type=Path, help="folder of PNG images to use as LR inputs")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help=f"largest accepted difference in 1/255 units (default {DEFAULT_TOLERANCE_255}, or "
        "the original's own rounding in the compared dtype where that is larger)",
    )
    parser.add_argument(
        "--samples", type=int, default=12, help="fuzzed images per probe batch (default 12)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fuzzed inputs")
    parser.add_argument(
        "--input-range",
        type=float,
        nargs=2,
        default=(0.0, 1.0),
        metavar=("LOW", "HIGH"),
        help="draw the fuzzed inputs from [LOW, HIGH] instead of [0, 1] (e.g. for models fed "
        "mean-subtracted images); outputs are still compared clamped to [0, 1]",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=None,
        help="run the converted model in this dtype (default: its own, float32 for a checkpoint)",
    )
    parser.add_argument(
        "--mode",
        choices=("eval", "train"),
        default="eval",
        help="run both models in this mode (default eval)",
    )
    parser.add_argument(
        "--no-float64-check",
        action="store_true",
        help="judge the first figure alone: skip running the converted model's stored weights "
        "in float64 against the oracle",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def check_tolerance(tolerance: float | None) -> None:
    """Refuse a tolerance that is negative or not a number (``None``: the default)."""
    if tolerance is not None and (not math.isfinite(tolerance) or tolerance < 0):
        raise CommandError(f"--tolerance must be a finite number >= 0, got {tolerance}")


#: Deployed files run in their own runtime: only the converted side can be one.
RUNTIME_FILES = (".onnx", ".tflite")


def load_model(path: Path, *, arch: str | None = None, runtime: bool = False):
    """Load a checkpoint or a ``.pt2`` (and, with ``runtime``, an ``.onnx``/``.tflite``) for
    comparison; any failure becomes a one-line :class:`CommandError`."""
    from reference_models import CheckpointError, load_checkpoint

    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in RUNTIME_FILES and not runtime:
        raise CommandError(
            f"{path}: a runtime file cannot be the original (it has no float64 oracle); "
            "give its checkpoint or .pt2"
        )
    if suffix in (*RUNTIME_FILES, ".pt2"):
        from etds.cli._load_back import load_program
        from reference_models.deploy.compiled_network import load_pt2

        try:
            return load_pt2(path) if suffix == ".pt2" else load_program(path, suffix)
        except ImportError as error:
            raise CommandError(f"{path}: the runtime is not installed ({error.name})") from None
        except Exception as error:  # each runtime raises its own types for a bad file
            message = " ".join(str(error).split())[:200]
            raise CommandError(f"{path}: cannot load: {message}") from None
    try:
        return load_checkpoint(path, arch=arch)
    except CheckpointError as error:
        raise CommandError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    import torch

    from reference_models.conversions.verification import image_inputs, verify_models

    check_tolerance(args.tolerance)
    if args.samples < 1:
        raise CommandError(f"--samples must be at least 1, got {args.samples}")
    low, high = args.input_range
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise CommandError(f"--input-range needs finite LOW < HIGH, got {low} {high}")
    original = load_model(args.original)
    converted = load_model(args.converted, runtime=True)
    in_runtime = args.converted.suffix.lower() in RUNTIME_FILES
    colors = getattr(original, "colors", 3)
    if getattr(converted, "colors", colors) != colors:
        raise CommandError(
            f"the models read different inputs: {colors} vs {converted.colors} colour channels"
        )
    images = []
    if args.images is not None:
        if not args.images.is_dir():
            raise CommandError(f"--images {args.images}: not a folder")
        try:
            images = image_inputs(args.images, colors)
        except (OSError, ValueError) as error:
            raise CommandError(f"--images {args.images}: {error}") from None
    dtype = None if args.dtype is None else getattr(torch, args.dtype)
    if in_runtime and dtype not in (None, torch.float32):
        raise CommandError(f"{args.converted}: a runtime file runs in float32, not {args.dtype}")
    try:
        if in_runtime:
            result = _verify_runtime_file(args, original, converted, colors, images, (low, high))
        else:
            result = verify_models(
                original,
                converted,
                colors=colors,
                samples=args.samples,
                seed=args.seed,
                images=images,
                domain=(low, high),
                dtype=dtype,
                mode=args.mode,
                progress=not args.no_progress,
                weights64=not args.no_float64_check,
            )
    except (ValueError, RuntimeError) as error:
        raise CommandError(f"cannot compare the models: {str(error).splitlines()[0]}") from None
    print_verification(result, args.tolerance, as_json=args.json)
    return 0 if result.within(args.tolerance) else 1


def _verify_runtime_file(args, original, converted, colors: int, images: list, domain):
    """:func:`verify_models` for a converted ``.onnx``/``.tflite``: float32, no stored-weights
    figure, probes at the default sizes or, for a fixed-size ``.tflite``, at its size and the
    other parity (``h + 1 × w + 3``)."""
    import torch

    from et.probes import probe_batches, probe_sizes
    from reference_models.conversions.verification import (
        PROBE_SIZES,
        max_clamped_difference,
    )

    size = getattr(converted, "input_size", None)
    sizes = probe_sizes(*size) if size is not None else PROBE_SIZES
    batches = [
        *probe_batches(colors, sizes=sizes, samples=args.samples, seed=args.seed, domain=domain),
        *images,
    ]
    return max_clamped_difference(
        original, converted, batches, dtype=torch.float32, mode=args.mode, weights64=False
    )


def print_verification(result, tolerance: float | None, *, as_json: bool) -> None:
    """The verdict on stdout: one JSON object, or three lines (each figure, the verdict)."""
    error = result.max_abs_error_255
    error64 = result.weights64_error_255
    equivalent = result.within(tolerance)
    finite64 = error64 is not None and math.isfinite(error64)
    if as_json:
        report = {
            "max_abs_error_255": error if math.isfinite(error) else None,
            "tolerance_255": DEFAULT_TOLERANCE_255 if tolerance is None else tolerance,
            "allowed_255": result.allowed_255(tolerance),
            "rounding_255": result.rounding_255,
            "equivalent": equivalent,
            "inputs": result.inputs,
            "dtype": result.dtype,
            "oracle_dtype": result.oracle_dtype,
            "mode": result.mode,
            "float64_checked": error64 is not None,
            "float64_max_abs_error_255": error64 if finite64 else None,
            "float64_allowed_255": result.weights64_allowed_255,
            "float64_rounding_255": result.weights64_rounding_255,
        }
        print(json.dumps(report))
        return
    verdict = "equivalent" if equivalent else "NOT equivalent"
    measured = f"{error:.3g}/255" if math.isfinite(error) else "NaN or Inf in an output"
    print(
        f"{result.dtype} vs a {result.oracle_dtype} oracle ({result.mode} mode): max |difference| "
        f"of the clamped outputs {measured} over {result.inputs} inputs; tolerance "
        f"{result.allowed_255(tolerance):g}/255 (the original's own rounding "
        f"{result.rounding_255:.2g}/255)"
    )
    print(f"stored weights in float64: {_figure64(result)}")
    print(verdict)


def _figure64(result) -> str:
    """The second figure and its derived tolerance ``WEIGHTS_FACTOR·ρ₆₄``, in one phrase."""
    from et.testing import WEIGHTS_FACTOR

    error64 = result.weights64_error_255
    if error64 is None:
        return "not checked (--no-float64-check, or a model's code will not run in float64)"
    measured = f"{error64:.3g}/255" if math.isfinite(error64) else "NaN or Inf"
    return (
        f"{measured}; tolerance {result.weights64_allowed_255:.3g}/255 = {WEIGHTS_FACTOR:g}·ρ₆₄ "
        f"(ρ₆₄ {result.weights64_rounding_255:.3g}/255: the original's output moved by storing "
        f"each weight once with relative error u = {result.unit_roundoff:.3g})"
    )
