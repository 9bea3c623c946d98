"""Raw ``.npy`` training images: the PNG pixels and samples, memory-mapped, refused if wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from reference_models.evaluation.datasets import read_rgb
from reference_models.training.data import PatchDataset, paired_images
from reference_models.training.image_files import image_size, open_image, write_image_atomically
from reference_models.training.subimages import extract_subimages, main


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    suffix=st.sampled_from([".png", ".npy"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_keeps_every_pixel(
    tmp_path_factory: pytest.TempPathFactory, height: int, width: int, suffix: str, seed: int
) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("rt") / f"a{suffix}"
    write_image_atomically(path, image[:, ::-1])  # a non-contiguous view is written correctly
    assert np.array_equal(open_image(path), image[:, ::-1])
    assert image_size(path) == (height, width)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_raw_images_are_memory_mapped(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    write_image_atomically(path, np.zeros((8, 9, 3), dtype=np.uint8))
    assert isinstance(open_image(path), np.memmap)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "must be uint8"),
        (np.zeros((4, 4), dtype=np.uint8), "must be uint8"),
        (np.zeros((4, 4, 4), dtype=np.uint8), "must be uint8"),
        (np.asfortranarray(np.zeros((4, 5, 3), dtype=np.uint8)), "C-ordered"),
        (np.array([{"a": 1}], dtype=object), "not a raw image array"),
    ],
    ids=["float", "grey", "rgba", "fortran", "pickle"],
)
def test_wrong_arrays_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(ValueError, match=message):
        open_image(path)


def test_a_png_renamed_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.npy"
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(path, format="PNG")
    with pytest.raises(ValueError, match="not a raw image array"):
        open_image(path)


def _hr_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    folder = tmp_path / "hr"
    folder.mkdir()
    for name, (h, w) in {"0001": (36, 48), "0002": (48, 36)}.items():
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


def test_npy_subimages_hold_the_png_subimages_pixels(tmp_path: Path) -> None:
    hr = _hr_folder(tmp_path)
    args = {"scales": [2, 3], "crop_size": 24, "step": 12, "workers": 1}
    png = extract_subimages(hr, tmp_path / "png", **args)
    npy = extract_subimages(hr, tmp_path / "npy", image_format="npy", **args)
    assert png == npy > 0
    for png_path in sorted((tmp_path / "png").rglob("*.png")):
        raw = tmp_path / "npy" / png_path.relative_to(tmp_path / "png").with_suffix(".npy")
        assert np.array_equal(open_image(raw), read_rgb(png_path)), raw
    with pytest.raises(ValueError, match="image_format='jpeg'"):
        extract_subimages(hr, tmp_path / "x", image_format="jpeg", **args)
    assert main(["--hr", str(hr), "--out", str(tmp_path / "cli"), "--format", "npy",
                 "--crop-size", "24", "--step", "12", "--no-progress"]) == 0  # fmt: skip
    assert len(list((tmp_path / "cli" / "HR" / "subs").glob("*.npy"))) == png


def test_training_samples_are_the_same_from_png_and_npy(tmp_path: Path) -> None:
    hr = _hr_folder(tmp_path)
    samples = {}
    for kind in ("png", "npy"):
        extract_subimages(
            hr, tmp_path / kind, scales=[3], crop_size=24, step=12, workers=1, image_format=kind
        )
        pairs = paired_images(
            tmp_path / kind / "HR" / "subs", tmp_path / kind / "LR" / "bicubic" / "X3" / "subs"
        )
        assert {p.gt_path.suffix for p in pairs} == {f".{kind}"}
        dataset = PatchDataset(pairs, scale=3, lq_size=6)
        samples[kind] = [dataset[(i % len(dataset), seed)] for i, seed in enumerate(range(30))]
    for png, npy in zip(samples["png"], samples["npy"], strict=True):
        assert torch.equal(png["lq"], npy["lq"]) and torch.equal(png["gt"], npy["gt"])


def test_hr_only_training_reads_raw_images(tmp_path: Path) -> None:
    hr = _hr_folder(tmp_path)
    extract_subimages(hr, tmp_path / "npy", crop_size=24, step=12, workers=1, image_format="npy")
    dataset = PatchDataset(
        paired_images(tmp_path / "npy" / "HR" / "subs", None), scale=2, lq_size=8
    )
    sample = dataset[(0, 7)]
    assert sample["lq"].shape == (3, 8, 8) and sample["gt"].shape == (3, 16, 16)


def test_a_folder_mixing_formats_is_refused(tmp_path: Path) -> None:
    hr = _hr_folder(tmp_path)
    extract_subimages(hr, tmp_path / "out", crop_size=24, step=12, workers=1)
    extract_subimages(hr, tmp_path / "out", crop_size=24, step=12, workers=1, image_format="npy")
    with pytest.raises(ValueError, match=r"mixes \d+ raw \.npy files with \d+ images"):
        paired_images(tmp_path / "out" / "HR" / "subs", None)
