"""``etds prove``: the whole appendix from a real run, and failing proofs that must fail loudly."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from etds_command import run_etds

import et
import proofs
import proofs.corollaries.abpn
import proofs.corollaries.etds
import proofs.rules.fuse_conv_bn
from etds.cli import main
from proofs import ProofFailure

REGISTRY = proofs.discover()
COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "appendix"


def _full_run(out: Path) -> tuple[dict, str]:
    """One real ``python -m et prove --json`` over every registered proof (the slow part)."""
    done = run_etds("prove", "--out", out, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout), done.stderr


def test_the_full_appendix(tmp_path: Path) -> None:
    """One run, many checks: under pytest-xdist a module fixture would run once per worker."""
    summary, stderr = _full_run(tmp_path)
    md = (tmp_path / "appendix.md").read_text(encoding="utf-8")
    tex = (tmp_path / "appendix.tex").read_text(encoding="ascii")
    _check_every_registered_proof_is_there(md, tex, summary, tmp_path)
    _check_order(md)
    _check_environments(tex)
    assert md.count("**Reach: ") == len(REGISTRY)
    assert "Reach: not stated" not in md and "Scope: not stated" not in md
    _check_regenerates_the_committed_appendix(tmp_path)
    kinds = {p["id"]: p["kind"] for p in summary["proofs"]}
    assert {rule for rule, kind in kinds.items() if kind == "corollary"} == {
        "C-ETDS",
        "C-ABPN",
        "C-ECBSR",
    }
    assert "proofs" in stderr  # the tqdm bar goes to stderr; stdout held only the JSON
    assert isinstance(summary["seconds"], float)
    if shutil.which("pdflatex") is not None:
        assert (tmp_path / "appendix.pdf").read_bytes().startswith(b"%PDF")


def _check_every_registered_proof_is_there(md: str, tex: str, summary: dict, out: Path) -> None:
    sections = re.findall(r"^## (Theorem|Corollary) (\S+):", md, flags=re.M)
    assert len(sections) >= len(REGISTRY)
    assert {rule for _, rule in sections} >= set(REGISTRY)
    assert {p["id"] for p in summary["proofs"]} == set(REGISTRY)
    assert summary["ok"] and all(p["ok"] for p in summary["proofs"])
    for rule in et.list_rules():
        if rule.id in REGISTRY:
            assert f"## Theorem {rule.id}:" in md
            assert rf"\begin{{statement}}{{Theorem {rule.id}}}" in tex
    for corollary in ("C-ETDS", "C-ABPN", "C-ECBSR"):
        assert f"## Corollary {corollary}:" in md
    assert summary["files"] and all(Path(f).parent == out for f in summary["files"])


def _check_regenerates_the_committed_appendix(out: Path) -> None:
    """The committed appendix is what the code proves today, byte for byte."""
    for name in ("appendix.md", "appendix.tex", "appendix-cases.json"):
        committed = COMMITTED / name
        assert committed.read_bytes() == (out / name).read_bytes(), (
            f"{committed} is stale: run `python -m etds prove` and commit docs/appendix"
        )


def _check_order(md: str) -> None:
    """Theorems R, then E, then G (each numerically), then the corollaries."""
    found = re.findall(r"^## (Theorem|Corollary) (\S+):", md, flags=re.M)
    theorems = [rule for kind, rule in found if kind == "Theorem"]
    kinds = [kind for kind, _ in found]
    assert kinds == sorted(kinds, key=lambda k: k == "Corollary")
    families = [[r for r in theorems if r.startswith(prefix)] for prefix in "REG"]
    for family in families:
        numbers = [int(r[1:]) for r in family]
        assert numbers == sorted(numbers)
    assert theorems == [r for family in families for r in family]


def _check_environments(tex: str) -> None:
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", tex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} closes the wrong environment"
    assert not stack


def _wrong_sign_fuse(original):
    """``fuse_conv_bn`` with the bias's sign flipped: the bug the conformance step must catch."""

    def broken(conv, bn):
        fused = original(conv, bn)
        with torch.no_grad():
            fused.bias.neg_()
        return fused

    return broken


def test_a_wrong_sign_in_r1_fails_its_proof_at_conformance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        proofs.rules.fuse_conv_bn,
        "fuse_conv_bn",
        _wrong_sign_fuse(proofs.rules.fuse_conv_bn.fuse_conv_bn),
    )
    with pytest.raises(ProofFailure) as failure:
        proofs.rules.fuse_conv_bn.prove()
    assert failure.value.rule == "R1"
    assert "conformance" in failure.value.step


def test_etds_prove_exits_1_naming_the_rule_and_step_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "appendix.md").write_text("the previous appendix", encoding="utf-8")
    monkeypatch.setattr(
        proofs.rules.fuse_conv_bn,
        "fuse_conv_bn",
        _wrong_sign_fuse(proofs.rules.fuse_conv_bn.fuse_conv_bn),
    )
    other = "E1" if "E1" in REGISTRY else "C-ECBSR"
    status = main(["prove", "--out", str(tmp_path), "--only", "R1", other, "--no-pdf"])
    err = capsys.readouterr().err
    assert status == 1
    assert re.search(r"R1: proof failed at step 'conformance[^']*'", err), err
    assert f"{other}:" not in err  # the other proof checked
    assert [p.name for p in tmp_path.iterdir()] == ["appendix.md"]
    assert (tmp_path / "appendix.md").read_text(encoding="utf-8") == "the previous appendix"


def test_a_crash_inside_a_proof_is_a_failed_proof(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(conv, bn):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(proofs.rules.fuse_conv_bn, "fuse_conv_bn", crash)
    status = main(["prove", "--out", str(tmp_path), "--only", "R1", "--json", "--no-pdf"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert status == 1
    assert summary["ok"] is False
    assert summary["proofs"][0]["failure"]["detail"].startswith("RuntimeError")
    assert "R1: proof failed" in captured.err
    assert not list(tmp_path.iterdir())


def test_a_wrong_repeat_kernel_fails_the_abpn_corollary(monkeypatch: pytest.MonkeyPatch) -> None:
    correct = proofs.corollaries.abpn.repeat_kernel

    def tiled(colors: int, repeats: int):
        # TF's depth_to_space (tiled) order instead of PyTorch's interleaved order (E3's caveat)
        kernel = correct(colors, repeats)
        order = [j * colors + c for c in range(colors) for j in range(repeats)]
        return kernel[order]

    monkeypatch.setattr(proofs.corollaries.abpn, "repeat_kernel", tiled)
    with pytest.raises(ProofFailure) as failure:
        proofs.corollaries.abpn.prove()
    assert failure.value.rule == "C-ABPN"
    assert "last conv" in failure.value.step


def test_a_wrong_block_matrix_fails_the_etds_corollary(monkeypatch: pytest.MonkeyPatch) -> None:
    correct = proofs.corollaries.etds._merged

    def missing_coupling(p):
        merged = correct(p)
        fb = p["W_b"].shape[0]
        # drop the residual-to-backbone coupling W_r2b from the block matrix
        merged["block_w"] = proofs.corollaries.etds.block_matrix(
            [[p["W_b"], None], [None, p["W_r"]]], (3, 3)
        )
        assert merged["block_w"].shape[0] > fb
        return merged

    monkeypatch.setattr(proofs.corollaries.etds, "_merged", missing_coupling)
    with pytest.raises(ProofFailure) as failure:
        proofs.corollaries.etds.prove()
    assert failure.value.rule == "C-ETDS"
    assert "block" in failure.value.step


def test_unknown_only_id_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["prove", "--out", str(tmp_path), "--only", "R999"])
    assert status == 2
    assert "no registered proof for R999" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_worker_processes_give_the_same_appendix(tmp_path: Path) -> None:
    chosen = ["R1", "C-ECBSR"]
    assert main(["prove", "--out", str(tmp_path / "one"), "--only", *chosen, "--no-pdf"]) == 0
    assert (
        main(
            ["prove", "--out", str(tmp_path / "two"), "--only", *chosen, "--jobs", "2", "--no-pdf"]
        )
        == 0
    )
    for name in ("appendix.md", "appendix.tex", "appendix-cases.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_only_without_out_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs" / "appendix").mkdir(parents=True)
    (tmp_path / "docs" / "appendix" / "appendix.md").write_text("full", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["prove", "--only", "R6", "--no-pdf"]) == 0
    assert "wrote nothing" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "docs" / "appendix").iterdir()] == ["appendix.md"]
    assert (tmp_path / "docs" / "appendix" / "appendix.md").read_text(encoding="utf-8") == "full"


def test_only_in_the_repository_root_leaves_the_committed_appendix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = {p.name: p.read_bytes() for p in COMMITTED.iterdir()}
    monkeypatch.chdir(COMMITTED.parents[1])
    assert main(["prove", "--only", "R6", "--no-pdf"]) == 0
    assert {p.name: p.read_bytes() for p in COMMITTED.iterdir()} == before


@pytest.mark.parametrize("out", ["docs/appendix", "docs/appendix/", "./docs/../docs/appendix"])
def test_only_refuses_the_committed_folder(
    out: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p.name: p.read_bytes() for p in COMMITTED.iterdir()}
    monkeypatch.chdir(COMMITTED.parents[1])
    assert main(["prove", "--only", "R6", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "partial appendix" in err
    assert {p.name: p.read_bytes() for p in COMMITTED.iterdir()} == before


def _bad_out(tmp_path: Path, kind: str) -> Path:
    if kind == "file":
        target = tmp_path / "a-file"
        target.write_text("x", encoding="utf-8")
        return target
    if kind == "under-a-file":
        (tmp_path / "a-file").write_text("x", encoding="utf-8")
        return tmp_path / "a-file" / "sub"
    if kind == "too-long":
        return tmp_path / ("n" * 300)
    folder = tmp_path / "out"
    folder.mkdir()
    if kind == "appendix-is-a-folder":
        (folder / "appendix.md").mkdir()
    elif kind == "appendix-is-a-fifo":
        os.mkfifo(folder / "appendix.tex")
    return folder


@pytest.mark.parametrize(
    "kind", ["file", "under-a-file", "too-long", "appendix-is-a-folder", "appendix-is-a-fifo"]
)
def test_bad_out_is_one_line_exit_2_before_proving(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _bad_out(tmp_path, kind)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(["prove", "--only", "R6", "--out", str(out), "--no-pdf"]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "--out" in captured.err
    assert "Traceback" not in captured.err and "proofs" not in captured.err.split(":")[0]
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
