"""``etds compile``: fold a user's own network into a plain one and write it with a certificate.

``MODULE:FACTORY`` names a dotted module or a ``path/to/file.py`` and a callable in it that
returns the ``nn.Module`` (keyword arguments from ``--set key=value``, values parsed as Python
literals where possible). ``--weights`` loads a state dict (``weights_only=True``, strict).
The network is compiled by :func:`et.compile` on a random example of ``--input-shape C,H,W``
from ``--domain``; ``OUT`` (``.pt2`` by ``torch.export``, or ``.onnx``) and
``OUT.certificate.json`` are written atomically, only after verification passed and after the
written program, loaded back from disk and run in its own runtime (``torch.export.load`` or
ONNX Runtime), matched the float64 original on the probes at the example's size, at the other
parity and at a larger size (:mod:`etds.cli._load_back`; a program may refuse a size with an
error, never compute something else there).

Exit status: 0 verified and written; 1 verification or the load-back check failed (nothing
written); 2 bad input.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from pathlib import Path

from etds.cli import CommandError, output_file

NAME = "compile"
HELP = "fold your own network (MODULE:FACTORY) into a plain one with a certificate (et.compile)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="MODULE:FACTORY", help="where the network is built")
    parser.add_argument("output", type=Path, metavar="OUT", help="OUT.pt2 or OUT.onnx")
    parser.add_argument("--weights", type=Path, help="state dict to load (strict)")
    parser.add_argument("--input-shape", required=True, help="C,H,W of one example input")
    parser.add_argument(
        "--domain", nargs=2, type=float, default=(0.0, 1.0), metavar=("LOW", "HIGH")
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for FACTORY (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the certificate as JSON")


def _shape(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise CommandError(f"--input-shape must be C,H,W of positive integers, got {text!r}")
    return values  # type: ignore[return-value]


def _keywords(items: list[str]) -> dict[str, object]:
    keywords: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CommandError(f"--set expects key=value, got {item!r}")
        try:
            keywords[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            keywords[key] = value
    return keywords


def _factory(target: str):
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise CommandError(f"expected MODULE:FACTORY, got {target!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise CommandError(f"no such file: {path}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except CommandError:
        raise
    except Exception as error:
        raise CommandError(f"cannot import {module_name}: {error}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise CommandError(f"{module_name} has no callable {attr!r}")
    return factory


def build_network(target: str, settings: list[str], weights: Path | None):
    """The ``nn.Module`` that ``FACTORY(**settings)`` of ``MODULE:FACTORY`` returns, with the
    state dict ``weights`` loaded (strict, ``weights_only=True``); any failure is a one-line
    :class:`CommandError` (also used by ``etds export MODULE:FACTORY``)."""
    import torch
    from torch import nn

    factory = _factory(target)
    try:
        model = factory(**_keywords(settings))
    except Exception as error:
        raise CommandError(f"{target} failed: {error}") from None
    if not isinstance(model, nn.Module):
        raise CommandError(f"{target} returned {type(model).__name__}, not an nn.Module")
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as error:
            raise CommandError(f"cannot load --weights {weights}: {error}") from None
    return model


def run(args: argparse.Namespace) -> int:
    import torch

    import et
    from et.atomic_file import atomic_path
    from et.compiler import CaptureError, SizeError, VerificationError
    from etds.cli._load_back import WrittenFileError, check_written

    shape = _shape(args.input_shape)
    low, high = args.domain
    if not low <= high:
        raise CommandError(f"--domain needs LOW <= HIGH, got {low} {high}")
    suffix = args.output.suffix.lower()
    if suffix not in (".pt2", ".onnx"):
        raise CommandError(f"OUT must end in .pt2 or .onnx, got {args.output}")
    output_file(args.output, "OUT")
    output_file(args.output.with_name(args.output.name + ".certificate.json"), "OUT's certificate")
    model = build_network(args.target, args.set, args.weights)
    generator = torch.Generator().manual_seed(0)
    span = min(high - low, 1e6)
    example = low + span * torch.rand(1, *shape, generator=generator)
    try:
        compiled = et.compile(model, (example,), domain=(low, high))
    except VerificationError as error:
        print(f"etds compile: verification failed, nothing written: {error}", file=sys.stderr)
        return 1
    except (CaptureError, ValueError) as error:
        raise CommandError(f"cannot compile {args.target}: {error}") from None
    certificate = compiled.certificate.to_json()
    module = compiled.module.eval()
    sidecar = args.output.with_name(args.output.name + ".certificate.json")
    batch = example.expand(2, *shape).clone()  # batch 2: export keeps the batch size free
    try:
        with atomic_path(args.output) as tmp:
            _export(module, batch, tmp, suffix)
            # judged from the bytes on disk, before the file takes OUT's name
            checked = check_written(tmp, suffix, model, shape, (low, high))
    except WrittenFileError as error:
        print(
            f"etds compile: the written program, loaded back, differs from the original; "
            f"nothing written: {error}",
            file=sys.stderr,
        )
        return 1
    except SizeError as error:
        # the compiled function holds only for some sizes and this format cannot check them
        print(f"etds compile: cannot write {suffix}, nothing written: {error}", file=sys.stderr)
        return 1
    with atomic_path(sidecar) as tmp:
        Path(tmp).write_text(certificate + "\n")
    if args.json:
        print(certificate)
    else:
        c = compiled.certificate
        print(
            f"wrote {args.output} and {sidecar}: convs {c.convs_before} -> {c.convs_after}, "
            f"max error float64 {c.max_error['float64']:.3e}, float32 {c.max_error['float32']:.3e}"
        )
        print(f"loaded back in its runtime, float32 vs a float64 oracle: {'; '.join(checked)}")
    return 0


def _export(module, batch, tmp: Path, suffix: str) -> None:
    """Write ``module`` to ``tmp`` as a ``torch.export`` program or ONNX, with the batch
    size and both spatial sizes free."""
    import torch
    from torch.export import Dim

    if suffix == ".pt2":
        sizes = ({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},)
        program = torch.export.export(module, (batch,), dynamic_shapes=sizes)
        with open(tmp, "wb") as file:  # a file object: the temporary name lacks ".pt2"
            torch.export.save(program, file)
    else:
        axes = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch"}}
        torch.onnx.export(
            module,
            (batch,),
            str(tmp),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=axes,
            dynamo=False,
        )
