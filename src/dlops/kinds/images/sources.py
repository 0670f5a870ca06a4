"""Image sources of the `images` task: scikit-learn's digits, MNIST-format IDX, NumPy .npz and image folders.

Each becomes the per-image raw table that ingest writes: one row per image, in a deterministic order,
holding the stored uint8 pixels (converted to the configured channels and resized to size x size with
torch) and what validate checks (original shape and dtype, pixel range, sha1, readable), plus the group
columns of the optional metadata CSV.

Every failure is an `ImageDataError` naming the file (and the column or key). A folder file that Pillow
cannot decode is not a failure here: its row says readable=False, so validate can name all of them.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dlops.data.inputs import project_path
from dlops.data.splitting import with_given_test
from dlops.errors import BadInput
from dlops.params import DigitsSource, IdxSource, ImageFolderSource, ImageTask, NpzSource

IDX_IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (N, H, W)
IDX_LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (N,)
GZIP_MAGIC = b"\x1f\x8b"
RESIZE_CHUNK_VALUES = 1 << 24  # float values per interpolate call, so memory stays bounded for large images
TABLE_COLUMNS = [
    "image", "stored_shape", "label", "class_name", "source", "readable",
    "height", "width", "channels", "dtype", "pixel_min", "pixel_max", "sha1",
]  # fmt: skip


class ImageDataError(BadInput, ValueError):
    """An image source cannot be loaded; the message names the file (and the column or key)."""


@dataclass
class _Images:
    """Decoded images of one source, aligned by row, before they become the raw table."""

    stored: list[np.ndarray | None]  # each (C, H, W) uint8, None when unreadable
    labels: np.ndarray  # (N,) int64
    names: list[str]  # class names by label
    sources: list[str]
    keys: list[int] | list[str]  # the metadata CSV's join key of each image
    heights: np.ndarray  # (N,) int64, of the original image
    widths: np.ndarray  # (N,) int64
    channels: np.ndarray  # (N,) int64
    dtypes: list[str]


# ------------------------------------------------------------------------------------------- public API
def load_images(task_cfg: ImageTask, root: Path) -> pd.DataFrame:
    """The per-image raw table, one row per image, in a deterministic order (a `test:` sub-source's
    images after the source's, marked in `__split`)."""
    return with_given_test(task_cfg, lambda cfg: _load_one(cfg, root))


def _load_one(task_cfg: ImageTask, root: Path) -> pd.DataFrame:
    src = task_cfg.ingest
    if isinstance(src, DigitsSource):
        images = _digits(src)
    elif isinstance(src, IdxSource):
        images = _idx(src, root)
    elif isinstance(src, NpzSource):
        images = _npz(src, root)
    else:
        images = _folder(src, root)
    frame = _table(images)
    split_column = task_cfg.preprocess.split.column
    wanted = [*task_cfg.columns.sensitive, *([split_column] if split_column else [])]
    if src.metadata is None:
        if wanted:
            raise ImageDataError(
                f"columns.sensitive and preprocess.split.column: {wanted} need ingest.metadata, a CSV with "
                "one row per image"
            )
        return frame
    key_column = "file" if isinstance(src, ImageFolderSource) else "index"
    return _join_metadata(frame, images.keys, src.metadata, root, key_column, wanted)


def images_array(frame: pd.DataFrame) -> np.ndarray:
    """Decode the `image` column into one uint8 array (N, C, H, W); raise ImageDataError naming the first
    `source` whose stored_shape differs from the others or that is unreadable."""
    if frame.empty:
        raise ImageDataError("images_array: the table has no rows")
    shapes = frame["stored_shape"].astype(str).to_numpy()
    readable = frame["readable"].to_numpy(dtype=bool)
    common = _most_common(shapes[readable]) if readable.any() else ""
    odd = ~readable | (shapes != common)
    if odd.any():
        row = int(np.flatnonzero(odd)[0])
        source = frame["source"].iloc[row]
        more = f" ({int(odd.sum()) - 1} more rows are odd too)" if odd.sum() > 1 else ""
        if not readable[row]:
            raise ImageDataError(f"{source}: unreadable image, it has no pixels{more}")
        raise ImageDataError(
            f"{source}: stored shape {shapes[row]} differs from {common} of the other images{more}; "
            "set ingest.size to resize every image to one size"
        )
    c, h, w = (int(v) for v in common.split("x"))
    blobs = frame["image"].tolist()
    sizes = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    if (wrong := np.flatnonzero(sizes != c * h * w)).size:
        row = int(wrong[0])
        raise ImageDataError(
            f"{frame['source'].iloc[row]}: holds {sizes[row]} bytes, stored shape {common} needs {c * h * w}"
        )
    return np.frombuffer(bytearray().join(blobs), dtype=np.uint8).reshape(len(blobs), c, h, w)


def class_names(frame: pd.DataFrame) -> list[str]:
    """Class names ordered by label 0..K-1 (from the class_name column)."""
    pairs = frame[["label", "class_name"]].drop_duplicates().sort_values("label", kind="stable")
    if (twice := pairs["label"].duplicated()).any():
        label = pairs["label"][twice].iloc[0]
        names = pairs.loc[pairs["label"] == label, "class_name"].tolist()
        raise ImageDataError(f"class_name column: label {label} has several names {names}")
    labels = pairs["label"].astype(int).tolist()
    if labels != list(range(len(labels))):
        raise ImageDataError(f"label column: labels {labels[:20]} are not 0..K-1 with every class present")
    return pairs["class_name"].astype(str).tolist()


# ------------------------------------------------------------------------------------------ array sources
def _digits(src: DigitsSource) -> _Images:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255 / 16)).astype(np.uint8)  # (N, 8, 8), 0..16 -> 0..255
    labels = bunch.target.astype(np.int64)
    names = _names_for(labels, src.class_names, "sklearn-digits")
    sources = [f"sklearn-digits[{i}]" for i in range(len(labels))]
    return _from_array(pixels[..., None], labels, names, sources, src, str(bunch.images.dtype))


def _idx(src: IdxSource, root: Path) -> _Images:
    images = _read_idx(_file(src.images, root), src.images, IDX_IMAGES_MAGIC)  # (N, H, W)
    labels = _read_idx(_file(src.labels, root), src.labels, IDX_LABELS_MAGIC).astype(np.int64)  # (N,)
    if len(images) != len(labels):
        raise ImageDataError(
            f"{src.images}: holds {len(images)} images but {src.labels} {len(labels)} labels"
        )
    names = _names_for(labels, src.class_names, src.labels)
    name = src.images  # as configured: the training and the test pair name their own files
    sources = [f"{name}[{i}]" for i in range(len(labels))]
    return _from_array(images[..., None], labels, names, sources, src, "uint8")


def _read_idx(path: Path, where: str, magic: int) -> np.ndarray:
    """An IDX file (gzipped or not, told by its first bytes) as a uint8 array of the header's shape."""
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ImageDataError(f"{where}: not a complete gzip file ({exc})") from exc
    ndim = magic & 0xFF
    what = "images" if magic == IDX_IMAGES_MAGIC else "labels"
    if len(raw) < 4 + 4 * ndim:
        raise ImageDataError(f"{where}: only {len(raw)} bytes, too short for an IDX {what} header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ImageDataError(
            f"{where}: magic number 0x{found:08x}, expected 0x{magic:08x} (IDX uint8 {what}, {ndim}-d)"
        )
    dims = [int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        of = f" of {'x'.join(map(str, dims[1:]))}" if ndim > 1 else ""
        unit = "pixels" if magic == IDX_IMAGES_MAGIC else "labels"
        raise ImageDataError(
            f"{where}: header says {dims[0]} {what}{of}, the file holds {data.size} bytes of {unit} "
            f"(expected {int(np.prod(dims))})"
        )
    return data.reshape(dims)


NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")  # a zip of .npy arrays (or one .npy)


def _npz(src: NpzSource, root: Path) -> _Images:
    path = _file(src.path, root)
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head.startswith(NPZ_MAGIC):  # np.load would take anything else for a pickle and say so
        raise ImageDataError(
            f"{src.path}: not an .npz (a zip of .npy arrays, as np.savez writes): it starts with {head!r}"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ImageDataError(f"{src.path}: cannot read as .npz ({type(exc).__name__}: {exc})") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ImageDataError(
            f"{src.path}: a single .npy array, expected an .npz with {src.x_key!r} and {src.y_key!r}"
        )
    with loaded:
        x = _npz_array(loaded, src.x_key, "x_key", src.path)
        y = _npz_array(loaded, src.y_key, "y_key", src.path)
    where = f"{src.path}: {src.x_key!r}"
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise ImageDataError(f"{where} has shape {x.shape}, expected (N, H, W) or (N, H, W, C) with C 1 or 3")
    if len(x) == 0:
        raise ImageDataError(f"{where} holds no images")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        raise ImageDataError(
            f"{src.path}: {src.y_key!r} has shape {y.shape} and dtype {y.dtype}, "
            f"expected ({len(x)},) integer labels"
        )
    labels = y.astype(np.int64)
    names = _names_for(labels, src.class_names, f"{src.path}: {src.y_key!r}")
    name = src.path  # as configured
    sources = [f"{name}[{i}]" for i in range(len(labels))]
    return _from_array(_as_uint8(x, where), labels, names, sources, src, str(x.dtype))


def _npz_array(npz: np.lib.npyio.NpzFile, key: str, option: str, where: str) -> np.ndarray:
    if key not in npz.files:
        raise ImageDataError(f"{where}: no array {key!r} (ingest.{option}); the file holds {npz.files}")
    try:
        return np.asarray(npz[key])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ImageDataError(f"{where}: cannot read array {key!r} ({type(exc).__name__}: {exc})") from exc


def _as_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Pixels as uint8: integers must lie in 0..255; floats in [0, 1] are scaled, in [0, 255] rounded."""
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind not in "iuf":
        raise ImageDataError(f"{where} has dtype {x.dtype}, expected uint8, integers or floats")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ImageDataError(f"{where} holds NaN or infinite pixel values")
    low, high = x.min(), x.max()
    if low < 0 or high > 255:
        raise ImageDataError(
            f"{where} holds {x.dtype} pixels from {low} to {high}, expected 0..255 (or 0..1)"
        )
    if x.dtype.kind != "f":
        return x.astype(np.uint8)
    scaled = x.astype(np.float64) * 255.0 if high <= 1.0 else x
    return np.rint(scaled).astype(np.uint8)


def _from_array(
    pixels: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    sources: list[str],
    src: DigitsSource | IdxSource | NpzSource,
    dtype: str,
) -> _Images:
    """`pixels` (N, H, W, C) uint8, all of one original shape."""
    n, h, w, c = pixels.shape
    stored = _resize(_to_channels(pixels, src.channels), src.size)  # (N, C, size, size)
    return _Images(
        stored=list(stored), labels=labels, names=names, sources=sources, keys=list(range(n)),
        heights=np.full(n, h, dtype=np.int64), widths=np.full(n, w, dtype=np.int64),
        channels=np.full(n, c, dtype=np.int64), dtypes=[dtype] * n,
    )  # fmt: skip


def _names_for(labels: np.ndarray, configured: list[str] | None, where: str) -> list[str]:
    """Class names for labels 0..K-1, which must all be present: `configured`, or str(label)."""
    present = np.unique(labels)
    if present.size == 0 or present[0] < 0 or present[-1] != present.size - 1:
        shown = present[:20].tolist()
        raise ImageDataError(f"{where}: labels must be 0..K-1 with every class present, found {shown}")
    if configured is None:
        return [str(label) for label in range(present.size)]
    if len(configured) != present.size or len(set(configured)) != len(configured):
        raise ImageDataError(
            f"ingest.class_names: {len(configured)} names {configured} for the {present.size} distinct "
            f"classes found in {where}"
        )
    return list(configured)


# ------------------------------------------------------------------------------------------ image folder
def _folder(src: ImageFolderSource, root: Path) -> _Images:
    folder = _directory(src.path, root)
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ImageDataError(f"{src.path}: no class subfolders (expected one folder of images per class)")
    names = [d.name for d in class_dirs]
    if src.class_names is not None and list(src.class_names) != names:
        raise ImageDataError(
            f"ingest.class_names: {src.class_names} differ from the folders {names} in {src.path}"
        )
    extensions = {("" if e.startswith(".") else ".") + e.lower() for e in src.extensions}
    files: list[tuple[int, Path]] = []
    for label, class_dir in enumerate(class_dirs):
        found = sorted(_image_files(class_dir, extensions), key=lambda f: f.relative_to(folder).as_posix())
        if not found:
            raise ImageDataError(
                f"{src.path}/{class_dir.name}: no files with extensions {sorted(extensions)}"
            )
        files += [(label, f) for f in found]
    decoded = [_decode(f, src.channels) for _, f in files]
    relative = [f.relative_to(folder).as_posix() for _, f in files]  # the metadata CSV's `file` keys
    return _Images(
        stored=_resize_each([d[0] for d in decoded], src.size),
        labels=np.array([label for label, _ in files], dtype=np.int64),
        names=names, sources=[f"{src.path}/{r}" for r in relative], keys=relative,  # train/ vs test/
        heights=np.array([d[1][0] for d in decoded], dtype=np.int64),
        widths=np.array([d[1][1] for d in decoded], dtype=np.int64),
        channels=np.array([d[1][2] for d in decoded], dtype=np.int64),
        dtypes=[d[2] for d in decoded],
    )  # fmt: skip


def _image_files(class_dir: Path, extensions: set[str]) -> list[Path]:
    """Files below `class_dir` with one of `extensions` (any case); hidden files (._x.png) are skipped."""
    return [
        f for f in class_dir.rglob("*")
        if f.is_file() and f.suffix.lower() in extensions and not f.name.startswith(".")
    ]  # fmt: skip


def _decode(path: Path, channels: int) -> tuple[np.ndarray | None, tuple[int, int, int], str]:
    """(pixels (C, H, W) uint8 or None, original (height, width, channels), original dtype)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            original = np.asarray(img)  # (H, W) or (H, W, C)
            converted = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except Exception:  # Pillow raises many types for a foreign or broken file; validate reports it
        return None, (0, 0, 0), ""
    shape = (original.shape[0], original.shape[1], original.shape[2] if original.ndim == 3 else 1)
    pixels = converted[None] if converted.ndim == 2 else converted.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels), shape, str(original.dtype)


# ------------------------------------------------------------------------------------- channels, resizing
def _to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(N, H, W, C) uint8 with C 1 or 3 -> (N, channels, H, W): gray repeated, RGB to ITU-R 601 luma."""
    if pixels.shape[3] != channels:
        pixels = np.repeat(pixels, 3, axis=3) if channels == 3 else _luminance(pixels)[..., None]
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) uint8, bit-exact with Pillow's convert("L") (ITU-R 601-2 luma)."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _resize(images: np.ndarray, size: int | None) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C, size, size) uint8: antialiased bilinear on float, rounded, in chunks."""
    n, c, h, w = images.shape
    if size is None or (h, w) == (size, size):
        return images
    import torch

    out = np.empty((n, c, size, size), dtype=np.uint8)
    step = max(1, RESIZE_CHUNK_VALUES // (c * max(h * w, size * size)))
    for start in range(0, n, step):
        chunk = torch.from_numpy(images[start : start + step].astype(np.float32))
        resized = torch.nn.functional.interpolate(
            chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + step] = resized.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def _resize_each(images: list[np.ndarray | None], size: int | None) -> list[np.ndarray | None]:
    """Resize images of mixed native shapes, one stacked batch per shape; None (unreadable) stays None."""
    if size is None:
        return images
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for row, img in enumerate(images):
        if img is not None:
            by_shape.setdefault(img.shape, []).append(row)
    out = list(images)
    for rows in by_shape.values():
        resized = _resize(np.stack([images[r] for r in rows]), size)  # type: ignore[misc]
        for row, img in zip(rows, resized, strict=True):
            out[row] = img
    return out


# ------------------------------------------------------------------------------------------------- table
def _table(images: _Images) -> pd.DataFrame:
    blobs = [b"" if img is None else img.tobytes() for img in images.stored]
    shape_text: dict[tuple[int, ...], str] = {}
    shapes = [shape_text.setdefault(s, "x".join(map(str, s))) for s in _shapes(images.stored)]
    return pd.DataFrame(
        {
            "image": blobs,
            "stored_shape": shapes,
            "label": images.labels.astype(np.int64),
            "class_name": [images.names[label] for label in images.labels],
            "source": images.sources,
            "readable": np.array([img is not None for img in images.stored], dtype=bool),
            "height": images.heights,
            "width": images.widths,
            "channels": images.channels,
            "dtype": images.dtypes,
            "pixel_min": np.array([0 if img is None else img.min() for img in images.stored], dtype=np.int64),
            "pixel_max": np.array([0 if img is None else img.max() for img in images.stored], dtype=np.int64),
            "sha1": [hashlib.sha1(blob, usedforsecurity=False).hexdigest() for blob in blobs],
        },
        columns=TABLE_COLUMNS,
    )


def _shapes(stored: list[np.ndarray | None]) -> list[tuple[int, ...]]:
    return [(0, 0, 0) if img is None else img.shape for img in stored]


def _most_common(values: np.ndarray) -> str:
    """The most frequent value; a tie goes to the one seen first."""
    unique, first, counts = np.unique(values, return_index=True, return_counts=True)
    return str(unique[np.lexsort((first, -counts))[0]])


# ---------------------------------------------------------------------------------------------- metadata
def _join_metadata(
    frame: pd.DataFrame,
    keys: list[int] | list[str],
    csv: str,
    root: Path,
    key_column: str,
    sensitive: list[str],
) -> pd.DataFrame:
    """`frame` plus the CSV's `sensitive` columns (group columns and a split column, as strings), matched
    on `key_column` per image."""
    path = _file(csv, root)
    try:
        meta = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ImageDataError(f"{csv}: cannot read as CSV ({type(exc).__name__}: {exc})") from exc
    meta.columns = [str(c).strip() for c in meta.columns]
    for column in [key_column, *sensitive]:
        if column not in meta.columns:
            raise ImageDataError(f"{csv}: no column {column!r}; it has {list(meta.columns)}")
    for column in sensitive:
        if column in frame.columns:
            raise ImageDataError(f"{csv}: column {column!r} clashes with the image table's own column")
    meta_keys = _metadata_keys(meta[key_column], csv, key_column)
    if (twice := meta_keys.duplicated()).any():
        raise ImageDataError(
            f"{csv}: column {key_column!r} lists {meta_keys[twice].iloc[0]!r} more than once"
        )
    rows = pd.Index(meta_keys).get_indexer(pd.Index(keys))
    if (missing := np.flatnonzero(rows < 0)).size:
        first = keys[int(missing[0])]
        raise ImageDataError(
            f"{csv}: no row with {key_column} {first!r} ({missing.size} of {len(keys)} images have no row)"
        )
    groups = meta[sensitive].iloc[rows].reset_index(drop=True)
    for column in sensitive:
        groups[column] = groups[column].str.strip()
    return pd.concat([frame, groups], axis=1)


def _metadata_keys(values: pd.Series, csv: str, key_column: str) -> pd.Series:
    """Row numbers (`index`) as int64, or file paths (`file`) with `/` separators."""
    text = values.fillna("").astype(str).str.strip()
    if key_column == "file":
        return text.str.replace("\\", "/", regex=False).str.removeprefix("./")
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ImageDataError(
            f"{csv}: column 'index' holds {text.iloc[row]!r} on line {row + 2}, not a row number"
        )
    return numbers.astype(np.int64)


# ------------------------------------------------------------------------------------------------- paths
def _file(path: str, root: Path) -> Path:
    return project_path(path, root, "file", ImageDataError)


def _directory(path: str, root: Path) -> Path:
    return project_path(path, root, "folder", ImageDataError)
