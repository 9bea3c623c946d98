"""``etds train``: train a reference model from a BasicSR-style YAML config.

One process: ``etds train CONFIG.yml --out DIR``. Several: the same arguments under
``torchrun --nproc_per_node=N -m et train ...`` (DistributedDataParallel; rank 0 logs and saves).

The closing lines time the run (steady-state ms/iteration, share spent waiting for data,
validation and checkpoint cost) and project the config *as written*, before ``--set``, at those
rates: ``--set train.total_iter=1000`` on the card you will use tells what the full recipe costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from etds.cli import CommandError, output_folder

NAME = "train"
HELP = "train a reference model (single process, or under torchrun for several)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="training config (YAML), e.g. configs/*.yml")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder, created if missing; its parent must exist (default: runs/<config "
        "name>, runs/ created too)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry with a dotted key, value parsed as YAML "
        "(e.g. --set train.total_iter=50); repeatable",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CKPT",
        help="continue from a training checkpoint (default: the latest in DIR/checkpoints)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from reference_models.training import load_config, train
    from reference_models.training.loop import latest_checkpoint

    if not args.config.is_file():
        raise CommandError(f"{args.config}: no such config file")
    try:
        config = load_config(args.config, args.overrides)
        recipe = load_config(args.config, []) if args.overrides else config
    except (ValueError, OSError) as error:
        raise CommandError(str(error)) from None
    if args.out is not None:
        output_folder(args.out, "--out")
    out = args.out or Path("runs") / str(config.get("name") or args.config.stem)
    resume = None
    if args.resume == "latest":
        resume = latest_checkpoint(out)
        if resume is None:
            raise CommandError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    elif args.resume is not None:
        resume = Path(args.resume)
        if not resume.is_file():
            raise CommandError(f"--resume: {resume} does not exist")
    try:
        result = train(config, out, resume=resume, progress=not args.no_progress, recipe=recipe)
    except (ValueError, FileNotFoundError) as error:
        raise CommandError(str(error)) from None
    if result.final_path is not None:
        last = result.validations[-1] if result.validations else None
        scored = f"; {last.dataset} PSNR {last.psnr:.4f} SSIM {last.ssim:.4f}" if last else ""
        print(
            f"trained {result.iterations - result.start_iteration} iterations in "
            f"{result.seconds:.1f} s{scored}; wrote {result.final_path}",
            file=sys.stderr,
        )
        if result.timing is not None and result.projection is not None:
            print(f"timing: {result.timing.describe()}", file=sys.stderr)
            print(
                f"timing: at this rate, {args.config.name} as written needs "
                f"{result.projection.describe()}",
                file=sys.stderr,
            )
    return 0
