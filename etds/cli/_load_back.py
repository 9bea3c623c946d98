"""``etds compile`` checks the file it wrote, not only the module it wrote it from.

The written program (``.pt2`` through ``torch.export.load(...).module()``, ``.onnx`` through
ONNX Runtime on the CPU) is loaded back from disk and run in its own runtime on
:func:`et.probes.probe_inputs` at three sizes: the example's ``(h, w)``, ``(h + 1, w + 3)``
(the other parity on both axes, non-square) and a larger odd one ``(2h + 3, 2w + 5)``. Each
size is judged by :func:`et.testing.compare_outputs` against the float64 oracle of the
*original* network, with the library's float32 criterion (the program holds float32 weights
and computes in float32):

    max|oracle(x) − program(x)| ≤ ROUNDING_FACTOR·ρ,   ρ = max|original₃₂(x) − oracle(x)|

(ρ at least a few float32 ulps of the output). A program that raises at a size other than the
example's refuses that size, which is allowed (a compiled module may hold only at some sizes
and must then refuse the others); a wrong output or shape is a failure, and so is any error at
the example's size. A size other than the example's that the original itself cannot run is
skipped.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from et.probes import probe_inputs, probe_sizes
from et.testing import ROUNDING_FACTOR, OutputShapeError, compare_outputs, first_output

#: probes per size
SAMPLES = 8


class WrittenFileError(RuntimeError):
    """The program loaded back from the written file does not compute the original."""


class _Program(nn.Module):
    """A loaded program as a module without parameters: ``.to``/``.train``/deepcopy leave the
    runtime object alone (an exported module refuses ``.eval()``, a session cannot be copied)."""

    def __init__(self, run) -> None:
        super().__init__()
        object.__setattr__(self, "_run", run)

    def __deepcopy__(self, memo) -> _Program:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x.to(torch.float32))


def load_program(path: Path, suffix: str) -> nn.Module:
    """The file at ``path`` as a module running in its own runtime (``suffix``: its format:
    ``.pt2``, ``.onnx`` or ``.tflite``; float32 in and out)."""
    if suffix == ".pt2":
        with open(path, "rb") as file:  # a file object: a temporary name lacks ".pt2"
            module = torch.export.load(file).module()
        return _Program(lambda x: first_output(module(x)))
    if suffix == ".tflite":  # LiteRT at the file's fixed size, tiled exactly over larger inputs
        from reference_models.deploy.litert.runtime import TFLiteModel

        litert = TFLiteModel.from_file(path, threads=1)
        program = _Program(lambda x: litert(x))
        program.input_size = (litert.tile_height, litert.tile_width)  # the smallest it runs
        return program
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = session.get_inputs()[0].shape[0]

    def run(x: torch.Tensor) -> torch.Tensor:
        if batch == 1 and x.shape[0] > 1:  # ``etds export`` fixes the batch at 1
            return torch.cat([run(x[i : i + 1]) for i in range(x.shape[0])])
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return _Program(run)


def check_written(
    path: Path,
    suffix: str,
    original: nn.Module,
    shape: tuple[int, int, int],
    domain: tuple[float, float],
) -> list[str]:
    """Load ``path`` back and judge it at every probe size (module docstring). Returns one
    line per size (``"8×8: max |difference| … (allowed …)"``, ``"9×11: refused (…Error)"``,
    or ``"… skipped …"`` where the original does not run, never at the example's size); raises
    :class:`WrittenFileError` naming the size and the figures when the program differs."""
    channels, height, width = shape
    program = load_program(path, suffix)
    probe = copy.deepcopy(original).eval()  # as written: only "does it run at this size?"
    floating = [p.dtype for p in probe.parameters() if p.is_floating_point()]
    dtype = floating[0] if floating else torch.float32
    sizes = [*probe_sizes(height, width), (2 * height + 3, 2 * width + 5)]
    lines = []
    for index, (h, w) in enumerate(sizes):
        x = probe_inputs((channels, h, w), domain=domain, samples=SAMPLES, dtype=torch.float32)
        if index > 0:  # the example's size is always judged
            try:
                with torch.no_grad():
                    probe(x.to(dtype))
            except Exception:  # the original's own limit, not the program's
                lines.append(f"{h}×{w}: skipped (the original does not run at this size)")
                continue
        try:
            report = compare_outputs(original, program, x, dtype=torch.float32, weights64=False)
        except OutputShapeError as error:
            raise WrittenFileError(f"at input size {h}×{w}: {error}") from None
        except Exception as error:
            if index == 0:
                raise WrittenFileError(
                    f"the written file fails at the example's size {h}×{w}: "
                    f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
                ) from None
            lines.append(f"{h}×{w}: refused ({type(error).__name__})")
            continue
        allowed = report.allowed(atol=0.0, rounding_factor=ROUNDING_FACTOR)
        figure = f"max |difference| {report.max_abs_error:.3e} (allowed {allowed:.3e})"
        if not report.equivalent(atol=0.0, rounding_factor=ROUNDING_FACTOR):
            raise WrittenFileError(
                f"at input size {h}×{w}: {report.describe()}; allowed {allowed:.3e}"
            )
        lines.append(f"{h}×{w}: {figure}")
    return lines
