"""``etds convert``: checkpoint in, verified inference-form checkpoint out.

The steps (load, convert, verify, reload, write atomically; nothing written when a step fails,
``OUT`` never ``IN``) are :func:`reference_models.conversions.pipeline.convert_checkpoint`;
this module parses the arguments and prints the report.

Exit status: 0 written; 1 verification failed (error above ``--tolerance``); 2 bad input.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from pathlib import Path

from etds.cli import CommandError, output_file
from etds.cli._hparam_option import add_hparam_option, parse_hparams
from etds.cli.verify import DEFAULT_TOLERANCE_255, check_tolerance

NAME = "convert"
HELP = (
    "convert a checkpoint to its plain inference form (ETDSForInference, ABPN_ET, ECBSRET) "
    "with the ET rules, verify it and write it"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN", help="checkpoint to convert")
    parser.add_argument("output", type=Path, metavar="OUT", help="where to write the result")
    parser.add_argument(
        "--arch", default="auto", help="architecture of IN (default: auto, detected)"
    )
    parser.add_argument(
        "--align",
        type=int,
        default=None,
        help="pad added channels to a multiple of N (default 4: the authors' widths for RGB)",
    )
    parser.add_argument(
        "--target",
        choices=("onnxruntime-x86", "torch-x86"),
        default=None,
        help="choose --align for the runtime where it measured fastest (docs/benchmarks.md); "
        "every choice is exactly equivalent",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help=f"largest accepted error in 1/255 units (default {DEFAULT_TOLERANCE_255})",
    )
    parser.add_argument(
        "--int8-layout",
        metavar="DIR",
        default=None,
        help="also rescale channels (rule E10) for INT8, from the ranges on DIR's HR images; "
        "the same function, verified like the conversion",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_hparam_option(parser)


def run(args: argparse.Namespace) -> int:
    from reference_models.checkpoints import CheckpointError
    from reference_models.conversions.pipeline import ConversionError, convert_checkpoint

    check_tolerance(args.tolerance)
    if args.align is not None and args.align < 1:
        raise CommandError(f"--align must be a positive integer, got {args.align}")
    align: int | Callable[[str], int] = 4 if args.align is None else args.align
    if args.align is None and args.target is not None:
        from reference_models.deploy.alignment import fastest_alignment

        align = functools.partial(fastest_alignment, target=args.target)
    if args.input.exists() and not args.input.is_file():
        raise CommandError(f"{args.input}: no such file")
    output_file(args.output, "OUT")
    try:
        report = convert_checkpoint(
            args.input,
            args.output,
            arch=args.arch,
            align=align,
            tolerance_255=args.tolerance,
            hparams=parse_hparams(args.hparam),
            refine=None if args.int8_layout is None else _int8_layout(args.int8_layout),
        )
    except (CheckpointError, ConversionError) as error:
        raise CommandError(str(error)) from None
    _print(report.as_dict(), args.json)
    return 0 if report.written else 1


def _int8_layout(folder: str):
    """The refinement step: the converted model after the INT8 layout calibrated on ``folder``
    (64×64 LR crops), the candidate the simulation scores best among
    :func:`~reference_models.deploy.int8.decision.layout_candidates` that keep the architecture
    (not R24's pair form, not R25's split copies), written back into the module's parameters;
    the pipeline verifies its result like the conversion's."""
    from reference_models.deploy.int8.calibration import CalibrationError, calibration_images
    from reference_models.deploy.int8.decision import layout_candidates
    from reference_models.deploy.int8.layout import LayoutError
    from reference_models.deploy.int8.network_form import layout_network, module_layout
    from reference_models.deploy.int8.simulation import simulated_int8_fidelity_db
    from reference_models.evaluation.evaluate import model_scale

    def refine(converted):
        try:
            images = calibration_images(folder, model_scale(converted), 64, 64)
            network, _ = layout_network(converted, images)
            kept = [
                candidate
                for candidate in layout_candidates(network, images)
                # R24 pairs and R25 splits add channels: the architecture cannot hold them
                if candidate.report is None
                or not (candidate.report.relu_pairs or candidate.report.split_copies)
            ]
            best = max(kept, key=lambda c: simulated_int8_fidelity_db(c.model, images))
            return module_layout(converted, network, best.model)
        except (CalibrationError, LayoutError) as error:
            raise CommandError(f"--int8-layout: {error}") from None

    return refine


def _print(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    verdict = "verified" if report["equivalent"] else "NOT equivalent, nothing written"
    error64 = report.get("float64_max_abs_error_255")
    stored = (
        ""
        if error64 is None
        else f"; stored weights in float64 {error64:.3g}/255 "
        f"(tolerance {report['float64_allowed_255']:.3g}/255)"
    )
    print(
        f"{report['source_arch']} → {report['target_arch']}: max |error| "
        f"{report['max_abs_error_255']:.3g}/255 over {report['inputs']} inputs "
        f"(tolerance {report['tolerance_255']:g}/255){stored}: {verdict}"
    )
    if report["written"]:
        print(f"wrote {report['output']}")
