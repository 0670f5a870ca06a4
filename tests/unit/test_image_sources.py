"""Image loaders: digits, IDX, NPZ and image folders into the per-image raw table, plus metadata joins."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dlops.kinds.images.sources import TABLE_COLUMNS, ImageDataError, class_names, images_array, load_images
from dlops.params import ImageTask

RNG = np.random.default_rng(0)


def task(ingest: dict[str, Any], sensitive: list[str] | None = None) -> ImageTask:
    return ImageTask.model_validate(
        {
            "kind": "images",
            "ingest": ingest,
            "columns": {"sensitive": sensitive or []},
            "validate": {"suite": "expectations/images.json"},
            "preprocess": {},
            "augment": {},
        }
    )


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_pair(root: Path, images: np.ndarray, labels: np.ndarray, gzipped: bool = False) -> None:
    pack = gzip.compress if gzipped else bytes
    (root / "images.idx").write_bytes(pack(idx_bytes(images, 0x803)))
    (root / "labels.idx").write_bytes(pack(idx_bytes(labels, 0x801)))


IDX = {"source": "idx", "images": "images.idx", "labels": "labels.idx"}


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def image_folder(root: Path) -> dict[str, np.ndarray]:
    """cat: two gray 6x6 PNGs (one with an upper-case extension); dog: an RGB 6x6, a gray 4x8 and junk."""
    pixels = {
        "cat/a.png": RNG.integers(0, 256, (6, 6), dtype=np.uint8),
        "cat/B.PNG": RNG.integers(0, 256, (6, 6), dtype=np.uint8),
        "dog/c.png": RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8),
        "dog/wide.png": RNG.integers(0, 256, (4, 8), dtype=np.uint8),
    }
    for name, array in pixels.items():
        write_png(root / "pets" / name, array)
    (root / "pets" / "dog" / "broken.png").write_bytes(RNG.bytes(200))
    (root / "pets" / "dog" / "notes.txt").write_text("not an image")
    return pixels


FOLDER = {"source": "image-folder", "path": "pets"}


# ------------------------------------------------------------------------------------------------ digits
def test_digits_native_size_labels_and_columns(tmp_path: Path) -> None:
    frame = load_images(task({"source": "sklearn-digits", "size": None}), tmp_path)
    assert list(frame.columns) == TABLE_COLUMNS
    assert len(frame) == 1797 and set(frame["stored_shape"]) == {"1x8x8"}
    assert sorted(frame["label"].unique()) == list(range(10))
    assert class_names(frame) == [str(d) for d in range(10)]
    assert frame["source"].iloc[17] == "sklearn-digits[17]"
    assert frame["pixel_min"].min() == 0 and frame["pixel_max"].max() == 255
    assert frame["readable"].all() and set(frame["dtype"]) == {"float64"}
    assert frame["label"].dtype == np.int64 and frame["height"].dtype == np.int64


def test_digits_resize_to_default_16(tmp_path: Path) -> None:
    native = images_array(load_images(task({"source": "sklearn-digits", "size": None}), tmp_path))
    frame = load_images(task({"source": "sklearn-digits"}), tmp_path)
    array = images_array(frame)  # (N, 1, 16, 16)
    assert array.shape == (1797, 1, 16, 16) and array.dtype == np.uint8
    assert set(frame["height"]) == {8} and set(frame["stored_shape"]) == {"1x16x16"}
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(native[:5].astype(np.float32)), size=(16, 16), mode="bilinear", antialias=True
    )
    assert np.array_equal(array[:5], expected.round().clamp(0, 255).to(torch.uint8).numpy())


# --------------------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_round_trips_pixel_exactly(tmp_path: Path, gzipped: bool) -> None:
    images = RNG.integers(0, 256, (7, 6, 5), dtype=np.uint8)  # (N, H, W), not square
    labels = np.array([0, 1, 2, 1, 0, 2, 2], dtype=np.uint8)
    write_idx_pair(tmp_path, images, labels, gzipped)  # gzip told by its magic bytes: no .gz suffix
    frame = load_images(task({**IDX, "class_names": ["a", "b", "c"]}), tmp_path)
    assert np.array_equal(images_array(frame)[:, 0], images)
    assert frame["label"].tolist() == labels.tolist()
    assert frame["class_name"].tolist() == ["a", "b", "c", "b", "a", "c", "c"]
    assert frame["source"].iloc[3] == "images.idx[3]"
    assert set(frame["stored_shape"]) == {"1x6x5"} and set(frame["width"]) == {5}
    assert class_names(frame) == ["a", "b", "c"]


def test_truncated_idx_names_the_file_and_the_shortfall(tmp_path: Path) -> None:
    write_idx_pair(tmp_path, RNG.integers(0, 256, (7, 6, 5), dtype=np.uint8), np.zeros(7, dtype=np.uint8))
    path = tmp_path / "images.idx"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(
        ImageDataError, match=r"images\.idx: header says 7 images of 6x5, the file holds 180 bytes of pixels"
    ):
        load_images(task(IDX), tmp_path)


def test_truncated_gzip_idx_names_the_file(tmp_path: Path) -> None:
    write_idx_pair(
        tmp_path, RNG.integers(0, 256, (7, 6, 5), dtype=np.uint8), np.zeros(7, dtype=np.uint8), True
    )
    path = tmp_path / "labels.idx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ImageDataError, match=r"labels\.idx: not a complete gzip file"):
        load_images(task(IDX), tmp_path)


def test_wrong_magic_idx_names_the_file(tmp_path: Path) -> None:
    write_idx_pair(tmp_path, RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8), np.zeros(3, dtype=np.uint8))
    (tmp_path / "labels.idx").write_bytes(idx_bytes(np.zeros((3, 4, 4)), 0x803))  # images where labels go
    with pytest.raises(ImageDataError, match=r"labels\.idx: magic number 0x00000803, expected 0x00000801"):
        load_images(task(IDX), tmp_path)


def test_idx_count_mismatch_and_wrong_class_names(tmp_path: Path) -> None:
    write_idx_pair(tmp_path, RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8), np.array([0, 1], np.uint8))
    with pytest.raises(ImageDataError, match=r"images\.idx: holds 3 images but labels\.idx 2 labels"):
        load_images(task(IDX), tmp_path)
    write_idx_pair(tmp_path, RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8), np.array([0, 1, 1], np.uint8))
    with pytest.raises(ImageDataError, match=r"ingest\.class_names: 3 names .* 2 distinct classes .*labels"):
        load_images(task({**IDX, "class_names": ["a", "b", "c"]}), tmp_path)


# --------------------------------------------------------------------------------------------------- NPZ
def test_npz_uint8_and_float_in_unit_range(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, (4, 5, 5), dtype=np.uint8)
    y = np.array([1, 0, 1, 0])
    np.savez(tmp_path / "u8.npz", x=x, y=y)
    np.savez(tmp_path / "f.npz", images=x[..., None] / 255.0, targets=y)  # (N, H, W, 1) floats in [0, 1]
    plain = load_images(task({"source": "npz", "path": "u8.npz"}), tmp_path)
    floats = load_images(
        task({"source": "npz", "path": "f.npz", "x_key": "images", "y_key": "targets"}), tmp_path
    )
    assert np.array_equal(images_array(plain)[:, 0], x) and np.array_equal(images_array(floats)[:, 0], x)
    assert plain["dtype"].iloc[0] == "uint8" and floats["dtype"].iloc[0] == "float64"
    assert floats["source"].tolist() == [f"f.npz[{i}]" for i in range(4)]
    assert plain["label"].tolist() == [1, 0, 1, 0] and class_names(plain) == ["0", "1"]


def test_npz_floats_up_to_255_are_rounded(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.array([[[0.4, 254.6], [100.2, 7.0]]]), y=np.array([0]))
    frame = load_images(task({"source": "npz", "path": "d.npz"}), tmp_path)
    assert images_array(frame).ravel().tolist() == [0, 255, 100, 7]


@pytest.mark.parametrize(
    ("x", "message"),
    [(np.full((1, 2, 2), -1.0), "from -1.0 to -1.0"), (np.full((1, 2, 2), np.nan), "NaN"),
     (np.full((1, 2, 2), 300), "from 300 to 300")],
)  # fmt: skip
def test_npz_bad_pixels_name_file_and_key(tmp_path: Path, x: np.ndarray, message: str) -> None:
    np.savez(tmp_path / "d.npz", pixels=x, y=np.array([0]))
    with pytest.raises(ImageDataError, match=rf"d\.npz: 'pixels' holds .*{message}"):
        load_images(task({"source": "npz", "path": "d.npz", "x_key": "pixels"}), tmp_path)


def test_npz_missing_key_names_file_and_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((1, 2, 2), np.uint8), labels=np.array([0]))
    with pytest.raises(ImageDataError, match=r"d\.npz: no array 'y' \(ingest\.y_key\)"):
        load_images(task({"source": "npz", "path": "d.npz"}), tmp_path)


def test_a_file_that_is_no_npz_is_named_as_such_not_as_a_pickle(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_text("x,y\n0,1\n")
    with pytest.raises(ImageDataError, match=r"d\.npz: not an \.npz .* starts with b'x,y"):
        load_images(task({"source": "npz", "path": "d.npz"}), tmp_path)


# ------------------------------------------------------------------------------------------ image folder
def test_image_folder_rows_labels_and_unreadable_file(tmp_path: Path) -> None:
    pixels = image_folder(tmp_path)
    frame = load_images(task({**FOLDER, "size": None}), tmp_path)
    assert frame["source"].tolist() == [
        "pets/cat/B.PNG",
        "pets/cat/a.png",
        "pets/dog/broken.png",
        "pets/dog/c.png",
        "pets/dog/wide.png",
    ]
    assert frame["label"].tolist() == [0, 0, 1, 1, 1] and class_names(frame) == ["cat", "dog"]
    assert frame["readable"].tolist() == [True, True, False, True, True]
    broken = frame.iloc[2]
    assert (broken["image"], broken["height"], broken["pixel_max"]) == (b"", 0, 0)
    assert frame["channels"].tolist() == [1, 1, 0, 3, 1]
    assert frame["stored_shape"].tolist() == ["1x6x6", "1x6x6", "0x0x0", "1x6x6", "1x4x8"]
    assert (
        np.frombuffer(frame["image"].iloc[1], np.uint8).reshape(6, 6).tolist() == pixels["cat/a.png"].tolist()
    )
    with pytest.raises(ImageDataError, match=r"pets/dog/broken\.png: unreadable"):
        images_array(frame)
    with pytest.raises(ImageDataError, match=r"pets/dog/wide\.png: stored shape 1x4x8 differs from 1x6x6"):
        images_array(frame[frame["readable"]])


def test_image_folder_resized_to_one_shape(tmp_path: Path) -> None:
    image_folder(tmp_path)
    frame = load_images(task({**FOLDER, "size": 6, "channels": 3}), tmp_path)
    array = images_array(frame[frame["readable"]])  # (4, 3, 6, 6)
    assert array.shape == (4, 3, 6, 6)
    assert frame.loc[frame["source"] == "pets/dog/wide.png", ["height", "width"]].values.tolist() == [[4, 8]]


def test_channel_conversion_matches_pillow(tmp_path: Path) -> None:
    pixels = image_folder(tmp_path)
    gray = load_images(task({**FOLDER, "channels": 1}), tmp_path).set_index("source")
    rgb = load_images(task({**FOLDER, "channels": 3}), tmp_path).set_index("source")
    luma = np.asarray(Image.fromarray(pixels["dog/c.png"]).convert("L"))
    gray_pixels = np.frombuffer(gray.loc["pets/dog/c.png", "image"], np.uint8).reshape(6, 6)
    assert gray_pixels.tolist() == luma.tolist()
    repeated = np.frombuffer(rgb.loc["pets/cat/a.png", "image"], np.uint8).reshape(3, 6, 6)
    assert all(np.array_equal(channel, pixels["cat/a.png"]) for channel in repeated)
    # arrays go through numpy, not Pillow: the same ITU-R 601 luma, bit for bit
    np.savez(tmp_path / "rgb.npz", x=pixels["dog/c.png"][None], y=np.array([0]))
    from_npz = images_array(load_images(task({"source": "npz", "path": "rgb.npz", "size": None}), tmp_path))
    assert np.array_equal(from_npz[0, 0], luma)


def test_empty_folder_and_folder_without_classes_name_the_folder(tmp_path: Path) -> None:
    (tmp_path / "pets").mkdir()
    with pytest.raises(ImageDataError, match=r"pets: no class subfolders"):
        load_images(task(FOLDER), tmp_path)
    (tmp_path / "pets" / "cat").mkdir()
    with pytest.raises(ImageDataError, match=r"pets/cat: no files with extensions"):
        load_images(task(FOLDER), tmp_path)


# ---------------------------------------------------------------------------------------------- metadata
def test_metadata_joins_on_index_and_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 0]))
    (tmp_path / "meta.csv").write_text("extra,index,site\nq,2,north\nq,0,south\nq,1,1\n")
    frame = load_images(task({"source": "npz", "path": "d.npz", "metadata": "meta.csv"}, ["site"]), tmp_path)
    assert list(frame.columns) == [*TABLE_COLUMNS, "site"]
    assert frame["site"].tolist() == ["south", "1", "north"]  # group values stay strings

    image_folder(tmp_path)
    files = ["cat/B.PNG", "cat/a.png", "dog/broken.png", "dog/c.png", "dog/wide.png"]
    rows = "".join(f"{name},g{i}\n" for i, name in reversed(list(enumerate(files))))
    (tmp_path / "files.csv").write_text("file,group\n" + rows)
    frame = load_images(task({**FOLDER, "metadata": "files.csv"}, ["group"]), tmp_path)
    assert frame["group"].tolist() == ["g0", "g1", "g2", "g3", "g4"]


def test_metadata_missing_column_or_row_names_the_csv(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 0]))
    ingest = {"source": "npz", "path": "d.npz", "metadata": "meta.csv"}
    (tmp_path / "meta.csv").write_text("index,site\n0,a\n1,b\n2,c\n")
    with pytest.raises(ImageDataError, match=r"meta\.csv: no column 'sex'"):
        load_images(task(ingest, ["site", "sex"]), tmp_path)
    (tmp_path / "meta.csv").write_text("index,site\n0,a\n2,c\n")
    with pytest.raises(ImageDataError, match=r"meta\.csv: no row with index 1 \(1 of 3 images"):
        load_images(task(ingest, ["site"]), tmp_path)


# ------------------------------------------------------------------------------------------- determinism
def test_same_inputs_give_identical_frames(tmp_path: Path) -> None:
    image_folder(tmp_path)
    np.savez(tmp_path / "d.npz", x=RNG.random((5, 9, 7, 3)), y=np.array([0, 1, 2, 0, 1]))
    for ingest in ({**FOLDER, "size": 5}, {"source": "npz", "path": "d.npz", "size": 4}):
        first, second = load_images(task(ingest), tmp_path), load_images(task(ingest), tmp_path)
        pd.testing.assert_frame_equal(first, second)


def test_class_names_rejects_two_names_for_one_label() -> None:
    frame = pd.DataFrame({"label": [0, 1, 1], "class_name": ["a", "b", "c"]})
    with pytest.raises(ImageDataError, match=r"label 1 has several names \['b', 'c'\]"):
        class_names(frame)
