"""The machine behind every timing: CPU model, core count and int8 dot-product support.

INT8 latency means little without the CPU's int8 dot-product instructions: x86 VNNI
(``avx512_vnni``, ``avx_vnni``) or ARM's dot product (``asimddp``, "dotprod"). Without them
XNNPACK's int8 convolutions are not faster than its fp32 ones, so an INT8/fp32 latency ratio
near or above 1 on such a CPU says nothing about one that has them. :func:`read_cpu` reads the
model and the flags from ``/proc/cpuinfo`` (Linux, x86 and aarch64) and falls back to
:mod:`platform` elsewhere (flags then unknown, never guessed); :func:`cpu_line` and
:func:`int8_reading` are the sentences every benchmark report prints.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: /proc/cpuinfo flag -> the name people know the int8 dot-product instruction set by.
DOT_PRODUCT_FLAGS = {"avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "asimddp": "dotprod"}
#: Flags that matter to int8 kernels without being dot products (widening multiply-adds).
SUPPORTING_FLAGS = ("avx512bw", "avx2", "i8mm")
_X86 = ("x86_64", "amd64", "i386", "i686")


@dataclass(frozen=True)
class CpuInfo:
    """What a report states about the CPU. ``flags`` is ``None`` when they could not be read."""

    model: str
    logical_cpus: int | None
    arch: str
    flags: frozenset[str] | None

    @property
    def dot_product(self) -> list[str] | None:
        """Names of the int8 dot-product instruction sets present (``[]``: none; ``None``:
        unknown)."""
        if self.flags is None:
            return None
        return [name for flag, name in DOT_PRODUCT_FLAGS.items() if flag in self.flags]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_json` reads back."""
        flags = None if self.flags is None else sorted(self.flags & _REPORTED)
        return {
            "model": self.model,
            "logical_cpus": self.logical_cpus,
            "arch": self.arch,
            "flags": flags,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CpuInfo:
        """The :class:`CpuInfo` :meth:`to_json` wrote."""
        flags = data.get("flags")
        return cls(
            model=str(data.get("model", "?")),
            logical_cpus=data.get("logical_cpus"),
            arch=str(data.get("arch", "?")),
            flags=None if flags is None else frozenset(flags),
        )


_REPORTED = frozenset(DOT_PRODUCT_FLAGS) | frozenset(SUPPORTING_FLAGS)


def parse_cpuinfo(text: str, arch: str, logical_cpus: int | None = None) -> CpuInfo:
    """The CPU described by a ``/proc/cpuinfo`` text on architecture ``arch`` (as
    ``platform.machine()`` names it). The model is the first ``model name`` (x86, some ARM
    kernels), else ``Hardware`` or the ARM implementer/part numbers; the flags are the first
    ``flags`` (x86) or ``Features`` (ARM) line. ``logical_cpus`` defaults to the number of
    ``processor`` entries."""
    fields: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "processor":
            processors += 1
        fields.setdefault(key, value.strip())
    model = fields.get("model name") or fields.get("hardware")
    if not model and "cpu part" in fields:
        model = (
            f"{arch} CPU implementer {fields.get('cpu implementer', '?')} part {fields['cpu part']}"
        )
    flag_line = fields.get("flags", fields.get("features"))
    return CpuInfo(
        model=model or platform.processor() or arch or "unknown CPU",
        logical_cpus=logical_cpus if logical_cpus is not None else (processors or None),
        arch=arch,
        flags=None if flag_line is None else frozenset(flag_line.split()),
    )


def read_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """This machine's CPU: ``/proc/cpuinfo`` where it exists, else :mod:`platform` (flags
    unknown). The core count is ``os.cpu_count()``."""
    arch = platform.machine()
    try:
        text = cpuinfo.read_text()
    except OSError:
        model = platform.processor() or arch or "unknown CPU"
        return CpuInfo(model=model, logical_cpus=os.cpu_count(), arch=arch, flags=None)
    return parse_cpuinfo(text, arch, os.cpu_count())


def _missing(info: CpuInfo) -> str:
    if info.arch.lower() in _X86:
        return "avx512_vnni/avx_vnni"
    if info.arch.lower() in ("aarch64", "arm64"):
        return "asimddp"
    return "/".join(DOT_PRODUCT_FLAGS)


def cpu_line(info: CpuInfo) -> str:
    """One line, e.g. ``AMD EPYC 7B13, 2 logical CPUs (x86_64); int8 dot-product: none (no
    avx512_vnni/avx_vnni; has avx2)``."""
    cores = "? logical CPUs" if info.logical_cpus is None else f"{info.logical_cpus} logical CPUs"
    head = f"{info.model}, {cores} ({info.arch}); int8 dot-product: "
    dot = info.dot_product
    if dot is None:
        return head + "unknown (CPU flags not readable here)"
    others = [flag for flag in SUPPORTING_FLAGS if info.flags and flag in info.flags]
    extra = f"has {', '.join(others)}" if others else ""
    if dot:
        return head + ", ".join(dot) + (f" (also {extra})" if extra else "")
    return head + f"none (no {_missing(info)}" + (f"; {extra})" if extra else ")")


def int8_reading(info: CpuInfo) -> str:
    """How to read INT8 latency measured on ``info``'s CPU."""
    dot = info.dot_product
    if dot is None:
        return (
            "How to read INT8 latency: this CPU's int8 dot-product support is unknown, so an "
            "INT8/fp32 ratio here may not carry to another CPU."
        )
    if not dot:
        return (
            "How to read INT8 latency: this CPU has no int8 dot-product instruction (VNNI or "
            "ARM dotprod), so XNNPACK's int8 convolutions are not faster than its fp32 ones "
            "here; an INT8/fp32 ratio near or above 1 is this CPU's, and says nothing about a "
            "phone or server CPU with dotprod/VNNI."
        )
    return (
        f"How to read INT8 latency: this CPU has {', '.join(dot)}, int8 dot-product "
        "instructions XNNPACK has int8 kernels for, so the INT8/fp32 ratio shows what int8 buys "
        "on such CPUs; a CPU without them would show a ratio near or above 1."
    )


def machine_lines(data: dict[str, Any] | None) -> list[str]:
    """Markdown bullet lines for a report from :meth:`CpuInfo.to_json` output (``None``: a
    report written before the machine was recorded says so)."""
    if not data:
        return ["- CPU: not recorded in this run's JSON; int8 dot-product support unknown"]
    info = CpuInfo.from_json(data)
    return [f"- CPU: {cpu_line(info)}", f"- {int8_reading(info)}"]


if __name__ == "__main__":
    _info = read_cpu()
    print(cpu_line(_info))
    print(int8_reading(_info))
