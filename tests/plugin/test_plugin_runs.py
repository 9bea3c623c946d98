"""``pytest`` run in users' projects: items, messages, summary, certificates, xdist, selection,
and no difference at all in a project without ``[tool.etds]``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from plugin_projects import BLOCK, NETS, SR, make_project, run_pytest
from torch import nn

TABLE = '[tool.etds]\ncertificates = "build/etds"\n'


def failure_text(output: str, name: str) -> str:
    """The failure section of model ``name``: the lines under its ``____ etds model`` header."""
    match = re.search(rf"_+ etds model {name} \(\w+\) _+\n(.*?)(?=\n[_=]{{3}})", output, re.S)
    assert match, output
    return match.group(1)


def test_models_pass_with_a_summary_row_each_and_certificates(tmp_path: Path) -> None:
    expect = 'expect = { max-convs = 2, no-ops = ["batch_norm"], rules = ["R1"] }\n'
    from_file = (  # a factory in a file, with weights
        '\n[[tool.etds.models]]\nname = "from_file"\nfactory = "models/net.py:build"\n'
        'weights = "ck/sr.pth"\ninput-shape = [3, 8, 8]\n'
    )
    root = make_project(
        tmp_path,
        TABLE + SR + expect + BLOCK + "expect = { max-convs = 1 }\n" + from_file,
        {"models/net.py": "from torch import nn\n\ndef build():\n    return nn.Conv2d(3, 4, 3)\n"},
    )
    (root / "ck").mkdir()
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    torch.save(conv.state_dict(), root / "ck" / "sr.pth")
    result = run_pytest(root, "-v", "--etds-certificates", "certs")
    out = result.stdout
    assert result.returncode == 0, out
    assert "pyproject.toml::etds::sr PASSED" in out and "pyproject.toml::etds::block PASSED" in out
    assert "3 passed" in out
    summary = out[out.index("etds models") :]
    assert re.search(
        r"\nsr +compile +2 → 2 +R1 +\S+e-\d+ / \S+e-\d+ \(float32\) +8×8, 9×11, 16×16 +passed",
        summary,
    )
    assert re.search(
        r"\nblock +convert +2 → 1 +- +\S+ / \S+ \(float32\) +8×8, 9×11 +passed", summary
    )
    assert f"certificates: {root / 'certs'}" in out  # the option wins over the table's key
    assert not (root / "build").exists()
    compiled = json.loads((root / "certs" / "sr.certificate.json").read_text())
    assert compiled["rules_used"] == {"R1": 1} and compiled["convs_after"] == 2
    assert compiled["max_error"]["float64"] < 1e-12
    weights = json.loads((root / "certs" / "from_file.certificate.json").read_text())
    assert weights["convs_after"] == 1 and weights["max_error"]["float64"] < 1e-12
    converted = json.loads((root / "certs" / "block.certificate.json").read_text())
    assert converted["mode"] == "convert" and converted["convs_after"] == 1
    assert converted["max_error"]["float64"] < 1e-12 and converted["max_error"]["float32"] < 1e-5


def test_failures_say_what_failed_where_and_by_how_much(tmp_path: Path) -> None:
    expect = 'expect = { max-convs = 1, no-ops = ["relu"] }\n'
    bad = BLOCK.replace('"block"', '"bad"').replace("nets:deploy", "nets:deploy_without_1x1")
    unfoldable = (
        '\n[[tool.etds.models]]\nname = "unfoldable"\nfactory = "mypkg.nets:unfoldable"\n'
        'input-shape = [3, 8, 8]\nexpect = { no-ops = ["batch_norm"] }\n'
    )
    root = make_project(tmp_path, TABLE + SR + expect + bad + unfoldable)
    stale = root / "build" / "etds" / "bad.certificate.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # from a run in which the model still passed
    out = run_pytest(root).stdout
    assert "3 failed" in out
    sr = failure_text(out, "sr")
    assert sr.splitlines() == [
        "etds model 'sr' (compile mode, mypkg.nets:build):",
        "  expect.max-convs = 1: 2 convolutions are left (1 too many)",
        "  expect.no-ops: 'relu' is still called (relu.default ×1)",
    ]
    # what stayed, and the precondition that stopped the rule (the compiler's words)
    lines = failure_text(out, "unfoldable").splitlines()
    assert lines[1:3] == [
        "  expect.no-ops: 'batch_norm' is still called (batch_norm.default ×1)",
        "  left unfolded:",
    ]
    assert re.fullmatch(
        r"    batch_norm \(aten\.batch_norm\.default\): R\d+ refused: \S.*", lines[3]
    )
    lines = failure_text(out, "bad").splitlines()
    assert lines[0] == "etds model 'bad' (convert mode, mypkg.nets:deploy_without_1x1):"
    for line, dtype in zip(lines[1:], ("float64", "float32"), strict=True):
        assert line.startswith(f"  {dtype} check: not equivalent: max |difference| ")
        assert re.search(r"at sample \d+ \(\d+×\d+ input\), channel \d, row \d+, column \d+", line)
        assert f"{dtype} vs a float64 oracle, eval mode (allowed " in line
    assert "DEBUG" not in out  # torch.export's trace log stays out of the report
    assert not stale.exists()  # a failing model leaves no certificate behind
    # the fold itself was verified: its certificate stands although `expect` was not met
    assert (root / "build" / "etds" / "sr.certificate.json").is_file()
    assert re.search(r"\nbad +convert +2 → 1 +- +- +8×8, 9×11 +FAILED", out)


def test_a_network_for_even_sizes_and_a_deploy_function_that_builds_its_own_layers(
    tmp_path: Path,
) -> None:
    entries = "".join(
        f'\n[[tool.etds.models]]\nname = "{name}"\nfactory = "mypkg.nets:down"\n'
        f'input-shape = [3, 8, 10]\nmode = "convert"\nconvert = "mypkg.nets:{convert}"\n'
        for name, convert in [("down", "fold_down"), ("down32", "fold_down_in_float32")]
    )
    out = run_pytest(make_project(tmp_path, TABLE + entries)).stdout
    assert "1 failed, 1 passed" in out, out
    # 9×13, of the other parity, is left out: the network itself does not run there
    assert re.search(r"\ndown +convert +1 → 1 +- +\S+e-1\d / \S+ \(float32\) +8×10 +passed", out)
    assert failure_text(out, "down32").splitlines()[1] == (
        "  float64 check: convert turned a float64 copy of the model into one with tensors in "
        "another dtype (conv.weight, conv.bias...), so the conversion cannot be checked in "
        "float64: make it keep its input's dtype"
    )


def test_a_broken_entry_fails_its_own_item_in_one_line(tmp_path: Path) -> None:
    entries = {
        "missing_module": 'factory = "mypkg.nope:build"',
        "missing_callable": 'factory = "mypkg.nets:nope"',
        "raises": 'factory = "mypkg.nets:build_fails"',
        "missing_weights": 'factory = "mypkg.nets:build"\nweights = "ck/none.pth"',
        "wrong_weights": 'factory = "mypkg.nets:block"\nweights = "ck/sr.pth"',
        "bad_convert": 'factory = "mypkg.nets:block"\nmode = "convert"\nconvert = "mypkg.nets:x"',
        "xfail_but_broken": 'factory = "mypkg.nope:build"\nxfail = "the check fails"',
        "not_installed": 'factory = "srcpkg.nets:build"',
    }
    table = "".join(
        f'\n[[tool.etds.models]]\nname = "{name}"\n{body}\ninput-shape = [3, 8, 8]\n'
        for name, body in entries.items()
    )
    root = make_project(tmp_path, TABLE + SR + table)
    (root / "ck").mkdir()
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3)).state_dict(), root / "ck" / "sr.pth")
    raise_line = NETS.splitlines().index('    raise ValueError("channels must be even")') + 1
    out = run_pytest(root).stdout
    assert "8 failed, 1 passed" in out, out
    messages = {name: failure_text(out, name) for name in entries}
    prefix = "[[tool.etds.models]] '{}': "
    assert messages == {
        name: prefix.format(name) + text
        for name, text in {
            "missing_module": "factory 'mypkg.nope:build': cannot import: "
            "ModuleNotFoundError: No module named 'mypkg.nope'",
            "missing_callable": "factory 'mypkg.nets:nope': mypkg.nets has no callable 'nope'",
            "raises": "factory 'mypkg.nets:build_fails' raised ValueError: channels must be "
            f"even (at nets.py:{raise_line})",
            "missing_weights": f"weights: no such file {root / 'ck' / 'none.pth'}",
            "wrong_weights": messages["wrong_weights"].removeprefix(prefix.format("wrong_weights")),
            "bad_convert": "convert 'mypkg.nets:x': mypkg.nets has no callable 'x'",
            "xfail_but_broken": "factory 'mypkg.nope:build': cannot import: "
            "ModuleNotFoundError: No module named 'mypkg.nope'",
            "not_installed": "factory 'srcpkg.nets:build': cannot import: ModuleNotFoundError: "
            "No module named 'srcpkg' (install it, or add its folder to "
            "[tool.pytest.ini_options] pythonpath)",
        }.items()
    }
    assert messages["wrong_weights"].startswith(
        f"{prefix.format('wrong_weights')}weights {root / 'ck' / 'sr.pth'}: RuntimeError: "
        "Error(s) in loading state_dict for Block: Missing key(s) in state_dict:"
    )
    assert "xfailed" not in out  # an entry that cannot be built is never the expected failure


def test_a_malformed_table_fails_collection_in_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path, TABLE + SR.replace("input-shape", "input_shape"))
    result = run_pytest(root)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    header = lines.index(next(line for line in lines if "ERROR collecting pyproject.toml" in line))
    assert lines[header + 1] == (
        "pyproject.toml: [[tool.etds.models]] entry 1 ('sr'): unknown key 'input_shape' "
        "(did you mean 'input-shape'?)"
    )
    assert lines[header + 2].startswith("====")


PLAIN_TEST = "def test_plain():\n    assert True\n"


def test_xdist_runs_the_items_in_parallel_and_the_summary_comes_back(tmp_path: Path) -> None:
    pytest_table = '\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    root = make_project(
        tmp_path, TABLE + SR + BLOCK + pytest_table, {"tests/test_plain.py": PLAIN_TEST}
    )
    out = run_pytest(root, "-p", "xdist.plugin", "-n", "2", "-m", "etds").stdout
    assert "created: 2/2 workers" in out, out
    assert "2 workers [2 items]" in out and "2 passed in" in out, out  # test_plain deselected
    assert re.search(r"\nsr +compile .* passed\nblock +convert .* passed\n", out), out
    certificates = sorted(p.name for p in (root / "build" / "etds").iterdir())
    assert certificates == ["block.certificate.json", "sr.certificate.json"]


def test_selection_by_k_paths_and_etds_only(tmp_path: Path) -> None:
    pytest_table = '\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    root = make_project(
        tmp_path, TABLE + SR + BLOCK + pytest_table, {"tests/test_plain.py": PLAIN_TEST}
    )
    # a bare run: the testpaths and the models
    assert run_pytest(root, "--co", "-q").stdout.splitlines()[:3] == [
        "tests/test_plain.py::test_plain",
        "pyproject.toml::etds::sr",
        "pyproject.toml::etds::block",
    ]
    # other paths named: only those
    assert "1 passed" in run_pytest(root, "tests").stdout
    assert run_pytest(root, "tests", "--etds-only", "--co", "-q").stdout.splitlines()[:2] == [
        "pyproject.toml::etds::sr",
        "pyproject.toml::etds::block",
    ]
    out = run_pytest(root, "-k", "block").stdout
    assert "1 passed, 2 deselected" in out, out
    assert re.search(r"\nblock +convert", out) and not re.search(r"\nsr +compile", out)


def test_a_project_without_the_table_sees_no_difference(tmp_path: Path) -> None:
    no_torch = (
        "import sys\n\ndef test_plain():\n"
        "    assert 'torch' not in sys.modules\n"
        "    assert 'etds.pytest_plugin.checks' not in sys.modules\n"
    )
    root = make_project(
        tmp_path,
        "[project]\nname = 'x'\n\n[tool.pytest.ini_options]\naddopts = '--strict-markers'\n",
        {"tests/test_plain.py": no_torch},
    )

    def run(*args: str, plugin: bool) -> tuple[int, str]:
        result = run_pytest(root, *args, plugin=plugin)
        return result.returncode, re.sub(r"in [\d.]+s", "", result.stdout)

    for args in [(), ("-v",), ("--co", "-q"), ("--markers",), ("--fixtures", "-q")]:
        without, with_plugin = run(*args, plugin=False), run(*args, plugin=True)
        if args == ("--fixtures", "-q"):  # the fixture is offered, and nothing else differs
            block = re.compile(
                r"-+ fixtures defined from etds\.pytest_plugin\.fixture -+\n.*?\n\n\n", re.S
            )
            assert block.search(with_plugin[1]), with_plugin[1]
            with_plugin = (with_plugin[0], block.sub("", with_plugin[1]))
        assert with_plugin == without, args
        if not args:
            assert without[0] == 0 and "1 passed" in without[1]


def test_the_fixture_compiles_and_shows_the_certificate_on_failure(tmp_path: Path) -> None:
    hand_written = """
import torch
from torch import nn


def net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()


def test_folds(etds_compile):
    compiled = etds_compile(net(), torch.rand(1, 3, 8, 8))
    assert compiled.certificate.convs_after == 1


def test_fails_with_the_certificate(etds_compile):
    compiled = etds_compile(net(), (torch.rand(1, 3, 8, 8),), domain=(-1.0, 1.0))
    assert compiled.certificate.convs_after == 0
"""
    root = make_project(tmp_path, "[project]\nname = 'x'\n", {"tests/test_hand.py": hand_written})
    out = run_pytest(root).stdout
    assert "1 failed, 1 passed" in out, out
    assert "DEBUG" not in out  # torch.export's trace log stays out of the report
    section = out[out.index("Captured etds certificate call") :]
    assert '"rules_used": {\n    "R1": 1\n  }' in section
    assert '"domain": [\n    -1.0,\n    1.0\n  ]' in section
