"""``etds verify``: do two checkpoints compute the same clamped image?

Both models run in float64 on fuzzed inputs in [0, 1] (structured probes and noise at an even
and an odd size, see :mod:`reference_models.conversions.verification`) and on the PNG images
of ``--images DIR`` used as LR inputs. The measure is the largest absolute difference of the
clamped first outputs, in 1/255 units. Exit status: 0 when it is ≤ ``--tolerance``, 1 when it
is above, 2 on bad input (unreadable checkpoint, no images, models of different shape).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from etds.cli import CommandError

NAME = "verify"
HELP = (
    "compare two checkpoints (e.g. a model and its conversion) on fuzzed inputs in [0,1] and "
    "images; report the max abs difference of the clamped outputs in 1/255 units"
)
DEFAULT_TOLERANCE_255 = 0.01


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("original", type=Path, help="checkpoint of the original model")
    parser.add_argument("converted", type=Path, help="checkpoint of the converted model")
    parser.add_argument("--images", type=Path, help="folder of PNG images to use as LR inputs")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE_255,
        help=f"largest accepted difference in 1/255 units (default {DEFAULT_TOLERANCE_255})",
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
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def check_tolerance(tolerance: float) -> None:
    """Refuse a tolerance that is negative or not a number."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise CommandError(f"--tolerance must be a finite number >= 0, got {tolerance}")


def load_model(path: Path, *, arch: str | None = None):
    """Load a checkpoint for comparison; any failure becomes a one-line :class:`CommandError`."""
    from reference_models import CheckpointError, load_checkpoint

    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        return load_checkpoint(path, arch=arch)
    except CheckpointError as error:
        raise CommandError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    from reference_models.conversions.verification import image_inputs, verify_models

    check_tolerance(args.tolerance)
    if args.samples < 1:
        raise CommandError(f"--samples must be at least 1, got {args.samples}")
    low, high = args.input_range
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise CommandError(f"--input-range needs finite LOW < HIGH, got {low} {high}")
    original = load_model(args.original)
    converted = load_model(args.converted)
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
    try:
        result = verify_models(
            original,
            converted,
            colors=colors,
            samples=args.samples,
            seed=args.seed,
            images=images,
            domain=(low, high),
        )
    except (ValueError, RuntimeError) as error:
        raise CommandError(f"cannot compare the models: {str(error).splitlines()[0]}") from None
    equivalent = result.within(args.tolerance)
    if args.json:
        print(
            json.dumps(
                {
                    "max_abs_error_255": result.max_abs_error_255,
                    "tolerance_255": args.tolerance,
                    "equivalent": equivalent,
                    "inputs": result.inputs,
                }
            )
        )
    else:
        verdict = "equivalent" if equivalent else "NOT equivalent"
        print(
            f"max |difference| of the clamped outputs: {result.max_abs_error_255:.3g}/255 over "
            f"{result.inputs} inputs (tolerance {args.tolerance:g}/255): {verdict}"
        )
    return 0 if equivalent else 1
