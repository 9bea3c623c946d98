"""The example project runs as its README says, and ``pip install`` registers the plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from plugin_projects import BLOCK, PROJECT_ROOT, SR, make_project, run_pytest

EXAMPLE = PROJECT_ROOT / "examples" / "pytest-plugin"


def test_the_example_project_passes_two_and_catches_the_bug(tmp_path: Path) -> None:
    # `=`: pytest picks the rootdir before it knows the option, and would take a separate
    # existing DIR for a test path
    out = run_pytest(EXAMPLE, "-rx", f"--etds-certificates={tmp_path}").stdout
    assert "2 passed, 1 xfailed" in out, out
    assert "XFAIL pyproject.toml::etds::buggy_block - switch_to_deploy forgets" in out
    rows = out[out.index("etds models") :].splitlines()[2:5]
    assert [row.split()[0] for row in rows] == ["repvgg_block", "tiny_sr", "buggy_block"]
    assert rows[0].split()[1:5] == ["convert", "2", "→", "1"]
    assert rows[1].split()[1:5] == ["compile", "6", "→", "4"]
    # the forgotten eps is below float32's tolerance: only the float64 check catches it
    buggy = rows[2].split()
    assert buggy[6:8] == ["-", "/"] and float(buggy[8]) > 0 and buggy[9] == "(float32)"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "repvgg_block.certificate.json",
        "tiny_sr.certificate.json",
    ]
    certificate = json.loads((tmp_path / "tiny_sr.certificate.json").read_text())
    assert certificate["convs_after"] == 4 and "batch_norm.default" not in certificate["ops_after"]
    assert not (EXAMPLE / "build").exists()
    # two words: pytest would take the folder for a test path and miss the project; refused
    refused = run_pytest(EXAMPLE, "--etds-certificates", str(tmp_path))
    assert refused.returncode == 4
    assert f"write --etds-certificates={tmp_path}" in refused.stdout, refused.stdout


def test_the_package_registers_the_plugin_module() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["pytest11"] == {"etds": "etds.pytest_plugin.plugin"}
    from etds.pytest_plugin import plugin

    assert callable(plugin.pytest_addoption) and callable(plugin.pytest_configure)
    assert plugin.etds_compile is not None


@pytest.mark.slow
def test_a_fresh_project_gets_the_items_from_pip_install(tmp_path: Path) -> None:
    """``pip install`` of this checkout into a new environment (pip, the build backend and the
    dependencies from this one), then a bare ``pytest`` in a project outside the repository,
    in parallel too."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # pip, setuptools, torch, pytest... from this environment
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e",
         str(PROJECT_ROOT)],
        check=True,
    )  # fmt: skip
    root = make_project(tmp_path / "project", "[tool.etds]\n" + SR + BLOCK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    for args in [(), ("-n", "2")]:
        result = subprocess.run(
            [python, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=root,
            env={**env, "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout and "etds models" in result.stdout
