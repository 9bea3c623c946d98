"""The channel alignment to convert with for a target runtime (``etds convert --target``).

``align`` pads the identity channels ET adds with dummy channels to a multiple of ``align``;
every choice is exactly equivalent, so this is a pure speed choice read from measured latencies.
"""

from __future__ import annotations

__all__ = ["ALIGNMENT_MEASUREMENTS", "DEFAULT_ALIGNMENT", "TARGETS", "fastest_alignment"]

#: Measured latency (ms, 360×640 LR, 2 threads, minimum over rounds) of the converted network
#: for each channel alignment, per source architecture and target runtime, from
#: ``pytest benchmarks`` (``docs/benchmarks.md``: ``test_model`` rows for align 4, and
#: ``test_alignment`` rows for align 1). ``align`` pads the identity channels ET adds (the
#: colours carried through the body) with dummy channels to a multiple of ``align``.
#: Measured on a shared 2-core AMD EPYC (torch 2.13, onnxruntime 1.32), round-robin minimum
#: over 12 passes; two runs agreed on every choice (the absolute numbers did not).
ALIGNMENT_MEASUREMENTS: dict[tuple[str, str], dict[int, float]] = {
    ("ABPN", "onnxruntime-x86"): {4: 324.1, 1: 502.1},
    ("ABPN", "torch-x86"): {4: 667.5, 1: 1016.4},
    ("ECBSR", "onnxruntime-x86"): {4: 338.6, 1: 274.4},
    ("ECBSR", "torch-x86"): {4: 240.2, 1: 593.0},
}

#: Source architecture → the family key of :data:`ALIGNMENT_MEASUREMENTS`.
_FAMILY = {"ABPN": "ABPN", "ECBSR": "ECBSR", "ECBSRT": "ECBSR"}
#: The converter's default when nothing was measured (the authors' widths for RGB).
DEFAULT_ALIGNMENT = 4
TARGETS = ("onnxruntime-x86", "torch-x86")


def fastest_alignment(arch: str, target: str) -> int:
    """The ``align`` for ``convert(model, align=...)`` that measured fastest on ``target``.

    Every alignment gives an exactly equivalent network (the dummy channels carry zeros), so
    this is a pure speed choice. Architectures without ET identity channels in their body
    (the ETDS family: ``align`` only pads the output conv) and unmeasured pairs get
    :data:`DEFAULT_ALIGNMENT`. ``target`` must be one of :data:`TARGETS`.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    measured = ALIGNMENT_MEASUREMENTS.get((_FAMILY.get(arch, arch), target))
    if not measured:
        return DEFAULT_ALIGNMENT
    return min(measured, key=measured.__getitem__)
