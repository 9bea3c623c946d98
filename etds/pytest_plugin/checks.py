"""What one ``[[tool.etds.models]]`` item checks, in its two modes.

``compile``: :func:`et.compile` folds the model on a seeded example from the entry's domain
(it verifies the result in float64 before returning it, or raises); the folded module is then
checked again, independently, in the model's own dtype with
:func:`et.testing.assert_equivalent`; then the ``expect`` table against the certificate.

``convert``: the user's ``convert`` is applied to a float64 copy of the model and to a copy in
its own dtype (a ``convert`` that returns ``None`` converted its argument in place); each result
is checked with :func:`et.testing.assert_equivalent` against the float64 oracle of the original,
then the ``expect`` table against a ``torch.export`` capture of the own-dtype result.

Every finding is collected in a :class:`Result` (the summary row and the certificate) while the
checks run, so a failing item still reports how far it got; the failures are raised together
as one :class:`CheckFailed`.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etds.pytest_plugin.config import ModelEntry
from etds.pytest_plugin.expect import Measured, unfolded_lines, unmet
from etds.pytest_plugin.loading import EntryError, build_model, describe, load_callable


class CheckFailed(AssertionError):
    """The model's conversion is not equivalent, or an ``expect`` entry is not met."""


@dataclass
class Result:
    """What an item found (JSON-serialisable, so ``pytest-xdist`` carries it to the summary)."""

    index: int
    name: str
    mode: str
    convs: tuple[int | None, int | None] = (None, None)
    rules: dict[str, int] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)  # dtype name -> max |difference|
    sizes: list[tuple[int, int]] = field(default_factory=list)
    certificate: str | None = None  # JSON, once equivalence is established


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _own_dtype(model):
    """The dtype of ``model``'s first floating parameter or buffer (float32 when none)."""
    import torch

    tensors = [*model.parameters(), *model.buffers()]
    return next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)


def example_input(entry: ModelEntry):
    """One ``[1, C, H, W]`` input drawn uniformly from the entry's domain (seed 0; an infinite
    end is replaced as :func:`et.probes.finite_bounds` does)."""
    import torch

    from et.probes import finite_bounds

    low, high = finite_bounds(entry.domain)
    generator = torch.Generator().manual_seed(0)
    return low + (high - low) * torch.rand(1, *entry.input_shape, generator=generator)


def runnable_sizes(entry: ModelEntry, model) -> list[tuple[int, int]]:
    """The sizes of :func:`et.testing.probe_sizes` for the entry's ``H, W`` at which ``model``
    runs: a network that halves its input runs only at sizes it divides, so the second size (of
    the other parity) is then left out, as :func:`et.compile` does. Raises :class:`EntryError`
    when the model does not run at the entry's own size."""
    import torch

    from et.testing import probe_sizes

    probe = copy.deepcopy(model)  # a forward may change the module (weight.data = ...)
    sizes: list[tuple[int, int]] = []
    for height, width in probe_sizes(*entry.input_shape[1:]):
        x = torch.zeros(1, entry.input_shape[0], height, width, dtype=_own_dtype(model))
        try:
            with torch.no_grad():
                probe(x)
        except Exception as error:
            if not sizes:
                raise EntryError(
                    f"the model does not run on input-shape {list(entry.input_shape)}: "
                    f"{describe(error)}"
                ) from None
            continue
        sizes.append((height, width))
    return sizes


def _equivalent(entry: ModelEntry, original, converted, dtype, result: Result) -> str | None:
    """Check ``converted`` (run in ``dtype``) against the float64 oracle of ``original`` at
    ``result.sizes``; the failure line, or ``None``."""
    from et.testing import assert_equivalent

    try:
        report = assert_equivalent(
            original,
            converted,
            input_shape=entry.input_shape,
            sizes=result.sizes,
            domain=entry.domain,
            dtype=dtype,
            # float64 is judged by its own run (the conversion of a float64 copy, or
            # et.compile's verification): this check measures the rounding in ``dtype``
            weights64=False,
        )
    except AssertionError as error:
        return f"{_dtype_name(dtype)} check: {error}"
    except Exception as error:
        return f"{_dtype_name(dtype)} check: the converted model failed to run: {describe(error)}"
    result.errors[_dtype_name(report.dtype)] = report.max_abs_error
    return None


def check_compile(entry: ModelEntry, model, result: Result) -> list[str]:
    """The compile-mode checks (module docstring); the failure lines."""
    import et
    from et.compiler import VerificationError

    try:
        compiled = et.compile(model, (example_input(entry),), domain=entry.domain)
    except VerificationError as error:
        return [f"et.compile: verification failed (nothing returned): {error}"]
    except Exception as error:
        return [f"et.compile could not compile the model: {describe(error)}"]
    certificate = compiled.certificate
    result.convs = (certificate.convs_before, certificate.convs_after)
    result.rules = certificate.rules_used()
    result.errors["float64"] = certificate.max_error.get("float64", float("nan"))
    result.certificate = certificate.to_json()
    failures = []
    own = _own_dtype(model)
    # the sizes shown: where et.compile verified in float64, then where the check below runs
    verified = [(int(h), int(w)) for h, w in certificate.verified_sizes]
    result.sizes = runnable_sizes(entry, model)
    sizes_shown = list(dict.fromkeys([*verified, *result.sizes]))
    if (line := _equivalent(entry, model, compiled.module, own, result)) is not None:
        result.certificate = None
        failures.append(line)
    result.sizes = sizes_shown
    measured = Measured(
        convs=certificate.convs_after,
        ops=certificate.ops_after,
        rules=result.rules,
        unfolded=[(u.node, u.op, u.rule, u.precondition) for u in certificate.unfolded],
    )
    return failures + _expectations(entry, measured)


def _expectations(entry: ModelEntry, measured: Measured | str) -> list[str]:
    if not entry.expect:
        return []
    if isinstance(measured, str):
        return [f"expect: cannot count the ops: {measured}"]
    problems = unmet(entry.expect, measured)
    if problems and measured.unfolded:
        problems.append("left unfolded:")
        problems += [f"  {line}" for line in unfolded_lines(measured)]
    return problems


def _capture_counts(model, example) -> Measured | str:
    """Conv calls and op counts of ``model`` as ``torch.export`` sees it (why not, when it
    cannot be exported)."""
    import torch

    from et.compiler.pipeline import count_convs, op_counts

    batch = example.expand(2, *example.shape[1:]).clone().to(_own_dtype(model))
    try:
        graph = torch.export.export(model.eval(), (batch,), strict=False).graph_module
    except Exception as error:
        return f"torch.export of the model failed: {describe(error)}"
    return Measured(convs=count_convs(graph), ops=op_counts(graph), rules={})


@contextmanager
def quiet_export_trace() -> Iterator[None]:
    """Keep ``torch.export``'s noise out of the user's report: its structured trace, logged at
    DEBUG level (pytest would print it under every failing item), and the FutureWarning its
    pytree code raises about its own ``LeafSpec`` check (nothing the user's code can change)."""
    trace = logging.getLogger("torch.__trace")
    disabled, trace.disabled = trace.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated"
            )
            yield
    finally:
        trace.disabled = disabled


@contextmanager
def _default_dtype(dtype) -> Iterator[None]:
    """Layers and tensors a ``convert`` creates are in ``dtype`` (float32 or float64)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _converted(entry: ModelEntry, convert, model, dtype):
    """``convert`` applied to a copy of ``model`` in ``dtype`` (also the default dtype while it
    runs, so the layers it creates hold its arithmetic in ``dtype`` too)."""
    import torch
    from torch import nn

    private = copy.deepcopy(model).to(dtype).eval()
    default = dtype if dtype in (torch.float32, torch.float64) else torch.get_default_dtype()
    try:
        with _default_dtype(default):
            returned = convert(private)
    except Exception as error:
        raise EntryError(f"convert {entry.convert!r} raised {describe(error)}") from None
    converted = private if returned is None else returned
    if not isinstance(converted, nn.Module):
        raise EntryError(
            f"convert {entry.convert!r} returned {type(returned).__name__}, not an nn.Module "
            "(or None after converting in place)"
        )
    return converted.eval()


def _other_dtypes(module, dtype) -> list[str]:
    """Names of ``module``'s floating tensors that are not in ``dtype``."""
    return [
        name
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]
        if tensor.is_floating_point() and tensor.dtype != dtype
    ]


def check_convert(entry: ModelEntry, model, root: Path, result: Result) -> list[str]:
    """The convert-mode checks (module docstring); the failure lines."""
    import torch

    assert entry.convert is not None
    convert = load_callable(entry.convert, root, "convert")
    result.sizes = runnable_sizes(entry, model)
    own = _own_dtype(model)
    failures = []
    deployed = None
    for dtype in dict.fromkeys((torch.float64, own)):
        deployed = _converted(entry, convert, model, dtype)
        if dtype == torch.float64 and (other := _other_dtypes(deployed, dtype)):
            failures.append(
                f"float64 check: convert turned a float64 copy of the model into one with "
                f"tensors in another dtype ({', '.join(other[:3])}...), so the conversion "
                "cannot be checked in float64: make it keep its input's dtype"
            )
            continue
        line = _equivalent(entry, model, deployed, dtype, result)
        if line is not None:
            failures.append(line)
    example = example_input(entry)
    before, after = _capture_counts(model, example), _capture_counts(deployed, example)
    result.convs = tuple(  # type: ignore[assignment]
        m.convs if isinstance(m, Measured) else None for m in (before, after)
    )
    if not failures:
        result.certificate = _convert_certificate(entry, result)
    return failures + _expectations(entry, after)


def _convert_certificate(entry: ModelEntry, result: Result) -> str:
    data: dict[str, Any] = {
        "mode": "convert",
        "name": entry.name,
        "factory": entry.factory,
        "convert": entry.convert,
        "domain": list(entry.domain),
        "input_shape": list(entry.input_shape),
        "checked_sizes": [list(s) for s in result.sizes],
        "convs_before": result.convs[0],
        "convs_after": result.convs[1],
        "max_error": result.errors,
        "checker": "et.testing.assert_equivalent (float64 oracle of the original)",
    }
    return json.dumps(data, indent=2, allow_nan=True)


def run_entry(entry: ModelEntry, root: Path, result: Result) -> None:
    """Build the entry's model and run its mode's checks, filling ``result``; raises
    :class:`EntryError` (the entry cannot be built or converted) or :class:`CheckFailed`."""
    with quiet_export_trace():
        model = build_model(entry, root)
        if entry.mode == "compile":
            failures = check_compile(entry, model, result)
        else:
            failures = check_convert(entry, model, root, result)
    if failures:
        source = entry.factory if entry.mode == "compile" else entry.convert
        head = f"etds model {entry.name!r} ({entry.mode} mode, {source}):"
        raise CheckFailed("\n".join([head, *(f"  {line}" for line in failures)]))
