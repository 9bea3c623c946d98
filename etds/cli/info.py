"""``etds info CKPT``: the detected architecture, its hyper-parameters and parameter count."""

from __future__ import annotations

import argparse
import json

from etds.cli import CommandError, as_flags
from etds.cli._hparam_option import add_hparam_option, parse_hparams

NAME = "info"
HELP = "detect the architecture and hyper-parameters of a checkpoint and count its parameters"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a .pth file (the authors' or ours)")
    parser.add_argument("--arch", default=None, help="force the architecture (default: detect)")
    parser.add_argument(
        "--scale", type=int, default=None, help="upscale factor where the weights cannot tell it"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_hparam_option(parser)


def run(args: argparse.Namespace) -> int:
    from reference_models.checkpoints import (
        CheckpointError,
        constructor_defaults,
        detect_architecture,
        from_state_dict,
        load_state_dict_file,
        parameter_count,
    )

    given = parse_hparams(args.hparam)
    try:
        state, metadata = load_state_dict_file(args.checkpoint)
        detected = detect_architecture(
            state,
            arch=args.arch,
            upscale=args.scale,
            metadata=metadata,
            source_name=args.checkpoint,
            hparams=given,
        )
        wrapped = {"params": state, "etds": metadata} if metadata else state
        # an unknown hyper-parameter changes the function, not the parameters: count them with
        # the constructor's default, and report it as unknown
        model = from_state_dict(
            wrapped,
            arch=args.arch,
            upscale=args.scale,
            source_name=args.checkpoint,
            hparams=given | constructor_defaults(detected.arch, detected.unknown),
        )
    except CheckpointError as error:
        message = str(error)
        if not message.startswith(str(args.checkpoint)):
            message = f"{args.checkpoint}: {message}"
        raise CommandError(message) from None
    report = {
        "checkpoint": str(args.checkpoint),
        "architecture": model.arch,
        "hparams": model.hparams | {key: None for key in detected.unknown},
        "unknown": sorted(detected.unknown),
        "upscale": model.upscale_factor,
        "colors": model.colors,
        "parameters": parameter_count(model),
        "tensors": len(state),
        "detection": as_flags(detected.rule),
        "notes": [as_flags(note) for note in detected.notes],
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"checkpoint    {report['checkpoint']}")
    print(f"architecture  {report['architecture']}  ({report['detection']})")
    print(f"scale         ×{report['upscale']}, {report['colors']} colour channel(s)")
    print(f"parameters    {report['parameters']:,}")
    for key, value in report["hparams"].items():
        shown = f"unknown (pass --hparam {key}=...)" if key in detected.unknown else value
        print(f"  {key:<20} {shown}")
    for note in report["notes"]:
        print(f"note          {note}")
    return 0
