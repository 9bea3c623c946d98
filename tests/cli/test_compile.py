"""``etds compile``: a user's own file in, a plain network and its certificate out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from etds_command import run_etds

USER_NET = '''
import torch
from torch import nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.b = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return F.relu(self.a(x) + self.b(x) + x)


def build(width=4, blocks=2):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), *[Block(width) for _ in range(blocks)])
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return net


def not_a_module():
    return 3


class Noisy(nn.Module):
    """Not a function of its input: every call draws new noise, so no compiled module can
    verify against it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) + torch.rand_like(x)
'''


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "user_net.py"
    path.write_text(USER_NET)
    return path


def test_compile_writes_program_and_certificate(user_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "net.pt2"
    result = run_etds(
        "compile",
        f"{user_file}:build",
        "--input-shape",
        "3,8,8",
        "--set",
        "blocks=3",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    certificate = json.loads((tmp_path / "net.pt2.certificate.json").read_text())
    assert certificate["convs_after"] == 4  # the first conv and one per block
    assert certificate["max_error"]["float64"] <= 1e-9
    assert json.loads(result.stdout)["convs_after"] == 4
    program = torch.export.load(out)
    x = torch.rand(3, 3, 10, 12)  # another batch and size than the example
    assert program.module()(x).shape == (3, 4, 10, 12)


def test_compile_writes_onnx(user_file: Path, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "net.onnx"
    result = run_etds("compile", f"{user_file}:build", "--input-shape", "3,8,8", str(out))
    assert result.returncode == 0, result.stderr
    assert "convs 5 -> 3" in result.stdout
    session = onnxruntime.InferenceSession(str(out))
    x = torch.rand(2, 3, 9, 11).numpy()
    assert session.run(None, {"input": x})[0].shape == (2, 4, 9, 11)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere.py:build"], "no such file"),
        (["{user}:missing"], "no callable"),
        (["{user}:not_a_module"], "not an nn.Module"),
        (["{user}:build", "--set", "bad"], "key=value"),
    ],
)
def test_bad_input_exits_2_with_one_line(user_file: Path, tmp_path: Path, args, message) -> None:
    out = tmp_path / "net.pt2"
    args = [a.replace("{user}", str(user_file)) for a in args]
    result = run_etds("compile", *args, "--input-shape", "3,8,8", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_shape_and_suffix_exit_2(user_file: Path, tmp_path: Path) -> None:
    shape = run_etds(
        "compile", f"{user_file}:build", "--input-shape", "3,8", str(tmp_path / "a.pt2")
    )
    suffix = run_etds(
        "compile", f"{user_file}:build", "--input-shape", "3,8,8", str(tmp_path / "a.bin")
    )
    assert (shape.returncode, suffix.returncode) == (2, 2)
    assert list(tmp_path.iterdir()) == [user_file]


def test_failed_verification_exits_1_and_writes_nothing(user_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "noisy.pt2"
    result = run_etds("compile", f"{user_file}:Noisy", "--input-shape", "3,8,8", str(out))
    assert result.returncode == 1, result.stderr
    assert "verification failed" in result.stderr
    assert list(tmp_path.iterdir()) == [user_file]
