"""The README's "Deploying a compiled network" commands, run exactly, at a tiny size.

The block between ``<!-- deploy-any:start -->`` and ``<!-- deploy-any:end -->`` is read from the
README; each line is run as ``python -m etds …`` in a temporary folder holding generated HR
images as ``Set5/`` (smooth colour fields, so bicubic LR and INT8 behave like on photographs),
with the example's path made absolute and the 48×48 size made 16×16. The runtimes are needed:
the test is skipped, saying so, without ONNX Runtime or litert-torch.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from etds_command import PROJECT_ROOT, run_etds
from PIL import Image

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
TINY = "16"


def _commands() -> list[list[str]]:
    block = re.search(
        r"<!-- deploy-any:start -->\n```bash\n(.*?)```\n<!-- deploy-any:end -->", README, re.S
    )
    assert block, "README lacks the deploy-any block"
    lines = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    assert 1 <= len(lines) <= 6, "the README promises the path in at most 6 commands"
    commands = []
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "etds", line
        words = [str(PROJECT_ROOT / w) if w.startswith("examples/") else w for w in words[1:]]
        words = [TINY if w == "48" else w.replace(",48,48", f",{TINY},{TINY}") for w in words]
        commands.append(words)
    return commands


def _smooth_images(folder: Path, count: int = 3, size: int = 48) -> None:
    """``count`` ``size×size`` RGB images: a coarse random field upsampled bicubically."""
    folder.mkdir()
    generator = np.random.default_rng(0)
    for index in range(count):
        coarse = generator.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(coarse, "RGB").resize((size, size), Image.BICUBIC)
        image.save(folder / f"img{index}.png")


def _psnr(stdout: str) -> float:
    row = next(line for line in stdout.splitlines() if line.startswith("Set5"))
    return float(row.split()[2])


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None
    or importlib.util.find_spec("litert_torch") is None,
    reason="the deploy path needs ONNX Runtime and litert-torch (extras deploy, litert)",
)
def test_readme_deploy_commands_run_end_to_end(tmp_path: Path) -> None:
    _smooth_images(tmp_path / "Set5")
    psnr = {}
    for words in _commands():
        done = run_etds(*words, cwd=tmp_path)
        assert done.returncode == 0, f"etds {' '.join(words)}:\n{done.stderr}"
        if words[0] == "export":
            out = tmp_path / words[2]
            assert out.is_file()
            # every export is quiet: no third-party log line reaches the terminal
            assert "XNNPACK" not in done.stderr and "absl" not in done.stderr
            report = json.loads((tmp_path / f"{words[2]}.json").read_text())
            judge = "LiteRT" if out.suffix == ".tflite" else "ONNX Runtime"
            assert report["judge"] == judge
            names = [c["name"] for c in report["candidates"]]
            assert report["chosen"] in names and "plain" in names and len(names) > 2
            scored = [c for c in report["candidates"] if c["runtime_db"] is not None]
            best = max(scored, key=lambda c: c["runtime_db"])
            assert report["chosen"] == best["name"]
            # the candidates are laid out on the compiled graph: E10 with E11 among them
            assert any(c["e11"] and c["negated_channels"] > 0 for c in report["candidates"])
        if words[0] == "eval":
            psnr[words[1]] = _psnr(done.stdout)
    assert set(psnr) == {"net.pt2", "net_int8.tflite", "net_int8.onnx"}
    for int8 in ("net_int8.tflite", "net_int8.onnx"):
        assert abs(psnr[int8] - psnr["net.pt2"]) < 1.0, psnr


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None,
    reason="the INT8 ONNX export needs ONNX Runtime",
)
def test_a_compiled_network_can_be_refined(tmp_path: Path) -> None:
    """``--refine`` on a ``.pt2``: the refined layout of the simulated best is one more
    candidate, never simulated below the layout it started from, and the export is checked."""
    _smooth_images(tmp_path / "Set5")
    example = PROJECT_ROOT / "examples/user_sr_net.py"
    compiled = run_etds(
        "compile", f"{example}:build", "--input-shape", f"3,{TINY},{TINY}", "net.pt2", cwd=tmp_path
    )
    assert compiled.returncode == 0, compiled.stderr
    size = ["--height", TINY, "--width", TINY]
    done = run_etds(
        "export",
        "net.pt2",
        "net.onnx",
        "--int8",
        "--calibration",
        "Set5/",
        *size,
        "--refine",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "net.onnx.json").read_text())
    refined = [c for c in report["candidates"] if c["name"].endswith(", refined")]
    assert len(refined) == 1
    others = [
        c["simulated_db"] for c in report["candidates"] if c not in refined and c["name"] != "plain"
    ]
    assert refined[0]["simulated_db"] >= max(others)
