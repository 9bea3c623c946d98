"""``benchmarks/litert_tables.py`` rendering on synthetic rows (no conversion is run here)."""

from __future__ import annotations

from benchmarks.litert_tables import markdown


def _form(
    name: str,
    ms: tuple[float, float],
    fp32: dict | None,
    strength: float | None,
    negated: int | None = None,
) -> dict:
    form = {
        "form": name,
        "params": 1234,
        "gmacs": 5.0,
        "export_int8": {"layout_strength": strength, "negated_copies": negated},
        "psnr_int8": {"Set5": 30.5, "Set14": 27.25},
        "fidelity_int8": {"Set5": 35.0, "Set14": 34.0},
        "ms_fp32": ms[0],
        "ms_int8": ms[1],
    }
    if fp32 is not None:
        form["psnr_fp32"] = fp32
    return form


def test_rows_carry_ratio_psnr_and_the_original_fp32_for_a_shared_file() -> None:
    rows = [
        {
            "model": "M",
            "scale": 4,
            "forms": [
                _form("original", (100.0, 40.0), {"Set5": 31.0, "Set14": 28.0}, None),
                _form("ET+E10", (90.0, 45.0), None, 0.5),  # same fp32 file as the original
            ],
        }
    ]
    lines = markdown(rows).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[2].count("|") == 15
    original, et = lines[2].split("|"), lines[3].split("|")
    assert original[7].strip() == "0.40" and et[7].strip() == "0.50"  # INT8/fp32
    assert original[8].strip() == et[8].strip() == "31.00"  # the ET row reuses the fp32 PSNR
    assert original[13].strip() == "–" and et[13].strip() == "0.50"  # E10 strength


def test_the_layout_column_names_the_e11_negation_when_there_was_one() -> None:
    rows = [
        {
            "model": "M",
            "scale": 2,
            "forms": [
                _form("ET+E10", (90.0, 45.0), {"Set5": 31.0, "Set14": 28.0}, 0.25, negated=12),
                _form("ET+E10", (90.0, 45.0), {"Set5": 31.0, "Set14": 28.0}, 0.5, negated=0),
            ],
        }
    ]
    lines = markdown(rows).splitlines()
    assert lines[2].split("|")[13].strip() == "0.25 + E11 (12)"
    assert lines[3].split("|")[13].strip() == "0.50"


def test_an_r24_layout_names_itself_and_its_macs() -> None:
    paired = _form("ET+E10", (90.0, 45.0), {"Set5": 31.0, "Set14": 28.0}, 0.0)
    paired["export_int8"].update(relu_pairs=True, gmacs=15.0)
    rows = [{"model": "M", "scale": 2, "forms": [paired]}]
    cells = markdown(rows).splitlines()[2].split("|")
    assert cells[13].strip() == "R24 ReLU pairs, E10 0.00"
    assert cells[4].strip() == "5.0" and cells[14].strip() == "15.0"  # the form's, the layout's


def test_an_update_replaces_only_the_forms_it_measured() -> None:
    from benchmarks.litert_tables import merge_rows

    old = _form("ET+E10", (1.0, 1.0), None, 0.5)
    kept = [{"model": "M", "scale": 2, "forms": [_form("original", (1.0, 1.0), None, None), old]}]
    new_et, refined = _form("ET+E10", (2.0, 2.0), None, 1.0), _form("refined", (3.0, 3.0), None, 1)
    other = {"model": "N", "scale": 3, "forms": [_form("original", (4.0, 4.0), None, None)]}
    merged = merge_rows(kept, [{"model": "M", "scale": 2, "forms": [new_et, refined]}, other])
    assert [r["model"] for r in merged] == ["M", "N"]
    assert [f["form"] for f in merged[0]["forms"]] == ["original", "ET+E10", "refined"]
    assert merged[0]["forms"][1] is new_et and merged[1]["forms"] == other["forms"]
    assert kept[0]["forms"][1] is old  # the input is not modified


def test_the_plot_draws_every_form_in_fp32_and_int8(tmp_path) -> None:
    from benchmarks.litert_tables import plot

    rows = [
        {
            "model": "ETDS-S M4C32 ×4",
            "scale": 4,
            "forms": [
                _form("original", (100.0, 40.0), {"Set5": 31.0, "Set14": 28.0}, None),
                _form("ET+E10", (90.0, 45.0), None, 0.5),
            ],
        },
        {
            "model": "ECBSR M4C16 ×2",
            "scale": 2,
            "forms": [_form("original", (20.0, 30.0), {"Set5": 37.0, "Set14": 32.0}, None)],
        },
    ]
    path = tmp_path / "plot.svg"
    plot(rows, path)
    svg = path.read_text()
    for label in (
        "ETDS-S M4C32 original fp32",
        "ETDS-S M4C32 ET+E10 int8",
        "ECBSR M4C16 original int8",
    ):
        assert label in svg
    assert "×2, Set5" in svg and "×4, Set5" in svg
