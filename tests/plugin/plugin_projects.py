"""User projects for the pytest plugin's tests, and ``pytest`` run in them as a user runs it.

Every run is a subprocess with the plugin named by ``-p`` and entry-point autoloading off, so
the tests see this checkout's plugin whatever is installed, and nothing of this suite's own
pytest session (its plugins, its options, its modules) leaks into the user's run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: a user's package: a conv–BN–ReLU–conv net, a two-branch block, and deploy functions for it
NETS = """
import torch
from torch import nn


def build(channels=4):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, 3, 3, padding=1),
    )


def unfoldable():  # a BatchNorm after a ReLU, before a zero-padded conv: no rule removes it
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 3, 3, padding=1)
    )
    model[2].running_mean.fill_(0.2)
    return model


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.a(x) + self.b(x)


def block():
    torch.manual_seed(0)
    return Block()


def deploy(m):
    weight = m.a.weight.clone()
    weight[:, :, 1:2, 1:2] += m.b.weight
    conv = nn.Conv2d(3, 3, 3, padding=1).to(weight.dtype)
    conv.weight.data, conv.bias.data = weight, m.a.bias + m.b.bias
    return conv


def deploy_without_1x1(m):
    conv = nn.Conv2d(3, 3, 3, padding=1).to(m.a.weight.dtype)
    conv.weight.data, conv.bias.data = m.a.weight.clone(), m.a.bias + m.b.bias
    return conv


class Down(nn.Module):  # halves, then PixelShuffles back onto the input: even sizes only

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 12, 2, stride=2)
        self.bn = nn.BatchNorm2d(12)
        self.up = nn.PixelShuffle(2)

    def forward(self, x):
        return self.up(self.bn(self.down(x))) + x


def down():
    torch.manual_seed(0)
    model = Down()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    return model


class Folded(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv, self.up = conv, nn.PixelShuffle(2)

    def forward(self, x):
        return self.up(self.conv(x)) + x


def fold_down(m):  # creates its conv in the default dtype, fills it with copy_, as many do
    conv = nn.Conv2d(3, 12, 2, stride=2)
    scale = m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)
    with torch.no_grad():
        conv.weight.copy_(m.down.weight * scale.reshape(-1, 1, 1, 1))
        conv.bias.copy_((m.down.bias - m.bn.running_mean) * scale + m.bn.bias)
    return Folded(conv)


def fold_down_in_float32(m):
    return fold_down(m).float()


def build_fails(channels=4):
    raise ValueError("channels must be even")
"""

#: entries for the nets above, to be joined into a ``[tool.etds]`` table
SR = """
[[tool.etds.models]]
name = "sr"
factory = "mypkg.nets:build"
kwargs = { channels = 4 }
input-shape = [3, 8, 8]
"""
BLOCK = """
[[tool.etds.models]]
name = "block"
factory = "mypkg.nets:block"
input-shape = [3, 8, 8]
domain = [-1.0, 1.0]
mode = "convert"
convert = "mypkg.nets:deploy"
"""


def make_project(root: Path, pyproject: str, files: dict[str, str] | None = None) -> Path:
    """``root`` with ``pyproject.toml``, the package ``mypkg`` (:data:`NETS`) and ``files``."""
    (root / "mypkg").mkdir(parents=True, exist_ok=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "nets.py").write_text(NETS)
    (root / "pyproject.toml").write_text(pyproject)
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def run_pytest(
    root: Path, *args: str, plugin: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in ``root`` (the plugin given with ``-p`` unless ``plugin``
    is false), stdout and stderr together in ``.stdout``."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "PYTHON"))
    }
    # one thread: the nets are tiny and the suite runs many of these in parallel
    env.update(
        PYTHONPATH=str(PROJECT_ROOT), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", OMP_NUM_THREADS="1"
    )
    plugins = ["-p", "etds.pytest_plugin.plugin"] if plugin else []
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
