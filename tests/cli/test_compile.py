"""``etds compile``: a user's own file in, a plain network and its certificate out."""

from __future__ import annotations

import copy
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


class PixelCountBranch(nn.Module):
    """Computes another function above 4096 pixels: the compiled one holds only below."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        h, w = x.shape[-2:]
        return 0.5 * y + x if h * w > 4096 else y + x
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


def test_a_size_condition_is_kept_in_pt2_and_refuses_onnx(user_file: Path, tmp_path: Path) -> None:
    """The compiled function holds for ``h·w <= 4096`` only: the ``.pt2`` states and checks
    it, and ONNX (a traced graph, which cannot check it) is refused with exit 1."""
    onnx = run_etds(
        "compile",
        f"{user_file}:PixelCountBranch",
        "--input-shape",
        "3,32,32",
        str(tmp_path / "branch.onnx"),
    )
    assert onnx.returncode == 1, onnx.stderr
    assert "cannot write .onnx, nothing written" in onnx.stderr and "4096" in onnx.stderr
    assert "Traceback" not in onnx.stderr
    assert list(tmp_path.iterdir()) == [user_file]
    out = tmp_path / "branch.pt2"
    pt2 = run_etds("compile", f"{user_file}:PixelCountBranch", "--input-shape", "3,32,32", str(out))
    assert pt2.returncode == 0, pt2.stderr
    certificate = json.loads(Path(f"{out}.certificate.json").read_text())
    assert "4096" in certificate["sizes"]
    program = torch.export.load(str(out)).module()
    with pytest.raises(Exception, match="4096"):
        program(torch.rand(1, 3, 65, 65))


def _compile_in_process(user_file: Path, out: Path) -> int:
    from etds.cli import main

    return main(["compile", f"{user_file}:build", "--input-shape", "3,8,8", str(out)])


class _OffAtOtherSizes(torch.nn.Module):
    """The compiled module, plus ``0.01·(width − 8)``: right at the example's 8×8 only."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x) + 0.01 * (x.shape[-1] - 8)


@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_a_written_program_that_differs_is_deleted_with_exit_1(
    user_file: Path, tmp_path: Path, monkeypatch, capsys, suffix: str
) -> None:
    """Issue 25: the CLI wrote what it never checked. The writer here saves a program whose
    first conv weight is off by 1e-3 (the module in memory verified): exit 1, nothing left."""
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
        export_onnx = torch.onnx.export

        def perturbed_onnx(module, *args, **kwargs):
            module = copy.deepcopy(module)
            with torch.no_grad():
                next(module.parameters()).view(-1)[0] += 1e-3
            return export_onnx(module, *args, **kwargs)

        monkeypatch.setattr(torch.onnx, "export", perturbed_onnx)
    else:
        save = torch.export.save

        def perturbed_save(program, *args, **kwargs):
            with torch.no_grad():
                weight = next(t for t in program.state_dict.values() if t.dim() == 4)
                weight.view(-1)[0] += 1e-3
            return save(program, *args, **kwargs)

        monkeypatch.setattr(torch.export, "save", perturbed_save)
    out = tmp_path / f"net{suffix}"
    assert _compile_in_process(user_file, out) == 1
    error = capsys.readouterr().err
    assert "loaded back, differs from the original" in error and "8×8" in error
    assert sorted(tmp_path.iterdir()) == [user_file]  # no program, no certificate, no temp


def test_a_program_wrong_only_at_other_sizes_is_deleted(
    user_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from etds.cli import compile as command

    export = command._export
    monkeypatch.setattr(
        command, "_export", lambda m, b, tmp, s: export(_OffAtOtherSizes(m), b, tmp, s)
    )
    assert _compile_in_process(user_file, tmp_path / "net.pt2") == 1
    assert "9×11" in capsys.readouterr().err  # the other parity shows it
    assert sorted(tmp_path.iterdir()) == [user_file]


def test_a_program_that_refuses_other_sizes_is_kept(
    user_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A program fixed to the example's 8×8 raises elsewhere instead of computing something
    else: that is allowed, and the check says which sizes it refused."""
    from torch.export import Dim

    from etds.cli import compile as command

    def static_sizes(module, batch, tmp, suffix):
        program = torch.export.export(module, (batch,), dynamic_shapes=({0: Dim.AUTO},))
        with open(tmp, "wb") as file:
            torch.export.save(program, file)

    monkeypatch.setattr(command, "_export", static_sizes)
    out = tmp_path / "net.pt2"
    assert _compile_in_process(user_file, out) == 0
    printed = capsys.readouterr().out
    assert "8×8: max |difference|" in printed
    assert "9×11: refused" in printed and "19×21: refused" in printed
    assert out.is_file() and (tmp_path / "net.pt2.certificate.json").is_file()


def test_the_written_program_is_checked_at_three_sizes(user_file: Path, tmp_path: Path) -> None:
    result = run_etds(
        "compile", f"{user_file}:build", "--input-shape", "3,8,8", str(tmp_path / "n.pt2")
    )
    assert result.returncode == 0, result.stderr
    checked = result.stdout.splitlines()[-1]
    assert checked.startswith("loaded back in its runtime, float32 vs a float64 oracle:")
    for size in ("8×8", "9×11", "19×21"):
        assert f"{size}: max |difference|" in checked
