"""``benchmarks/machine.py``: the CPU line and the int8 dot-product flags, on canned cpuinfo."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.machine import CpuInfo, cpu_line, int8_reading, machine_lines, parse_cpuinfo

_X86 = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: fpu sse2 avx avx2 {extra}

processor\t: 1
model name\t: {model}
flags\t\t: fpu sse2 avx avx2 {extra}
"""

AMD_NO_VNNI = _X86.format(vendor="AuthenticAMD", model="AMD EPYC 7B13", extra="avx512bw")
INTEL_VNNI = _X86.format(
    vendor="GenuineIntel", model="Intel(R) Xeon(R) Platinum 8480+", extra="avx512bw avx512_vnni"
)
INTEL_AVX_VNNI = _X86.format(
    vendor="GenuineIntel", model="Intel(R) Core(TM) i7-12700", extra="avx_vnni"
)
ARM_DOTPROD = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0c

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""
ARM_NO_DOTPROD = ARM_DOTPROD.replace(" asimddp", "")


def test_x86_without_vnni() -> None:
    info = parse_cpuinfo(AMD_NO_VNNI, "x86_64")
    assert info.model == "AMD EPYC 7B13" and info.logical_cpus == 2
    assert info.dot_product == []
    line = cpu_line(info)
    assert line == (
        "AMD EPYC 7B13, 2 logical CPUs (x86_64); int8 dot-product: none "
        "(no avx512_vnni/avx_vnni; has avx512bw, avx2)"
    )
    assert "not faster than its fp32 ones" in int8_reading(info)


def test_x86_with_avx512_vnni_and_avx_vnni() -> None:
    info = parse_cpuinfo(INTEL_VNNI, "x86_64", logical_cpus=8)
    assert info.dot_product == ["AVX512-VNNI"] and info.logical_cpus == 8
    assert cpu_line(info).endswith("int8 dot-product: AVX512-VNNI (also has avx512bw, avx2)")
    assert "not faster" not in int8_reading(info) and "AVX512-VNNI" in int8_reading(info)
    assert parse_cpuinfo(INTEL_AVX_VNNI, "x86_64").dot_product == ["AVX-VNNI"]


def test_aarch64_dotprod_and_without() -> None:
    info = parse_cpuinfo(ARM_DOTPROD, "aarch64")
    assert info.dot_product == ["dotprod"]
    assert info.model == "aarch64 CPU implementer 0x41 part 0xd0c"
    assert "int8 dot-product: dotprod" in cpu_line(info)
    bare = parse_cpuinfo(ARM_NO_DOTPROD, "aarch64")
    assert bare.dot_product == [] and cpu_line(bare).endswith("none (no asimddp)")


def test_unreadable_flags_are_unknown_not_none() -> None:
    info = parse_cpuinfo("model name\t: Some CPU\n", "x86_64")
    assert info.dot_product is None
    assert cpu_line(info).endswith("int8 dot-product: unknown (CPU flags not readable here)")


def test_json_round_trip_keeps_only_the_reported_flags() -> None:
    info = parse_cpuinfo(INTEL_VNNI, "x86_64")
    data = json.loads(json.dumps(info.to_json()))
    assert data["flags"] == ["avx2", "avx512_vnni", "avx512bw"]
    assert cpu_line(CpuInfo.from_json(data)) == cpu_line(info)
    assert machine_lines(None)[0].startswith("- CPU: not recorded")


def test_the_benchmark_report_states_the_cpu_and_how_to_read_int8(tmp_path: Path) -> None:
    from benchmarks.report import markdown

    cpu = parse_cpuinfo(AMD_NO_VNNI, "x86_64").to_json()
    text = markdown([], {"machine": {"cpu": "AMD EPYC 7B13", "cpu_info": cpu, "threads": 2}}, {})
    assert "- CPU: AMD EPYC 7B13, 2 logical CPUs (x86_64); int8 dot-product: none" in text
    assert "How to read INT8 latency: this CPU has no int8 dot-product" in text
    old = markdown([], {"machine": {"cpu": "Old CPU", "logical_cpus": 2}}, {})
    assert "Old CPU; 2 logical CPUs; int8 dot-product support not recorded" in old


def test_the_litert_table_is_rendered_with_the_machine(tmp_path: Path) -> None:
    from benchmarks.litert_tables import load, render

    cpu = parse_cpuinfo(ARM_DOTPROD, "aarch64").to_json()
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"machine": cpu, "rows": []}))
    rows, machine = load(path)
    text = render(rows, machine)
    assert text.startswith("- CPU: aarch64 CPU implementer 0x41 part 0xd0c")
    assert "this CPU has dotprod" in text and "| model | form |" in text
    path.write_text("[]")  # a file from before the machine was recorded
    assert render(*load(path)).startswith("- CPU: not recorded")
