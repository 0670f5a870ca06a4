"""Schema of a `kind: images` task: its sources (scikit-learn's digits, IDX, NPZ, an image folder),
columns, validation, preprocessing and batch augmentation."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from dlops.params.fields import LocalPath, ProjectPath, SplitConfig, Strict, TaskSchema


# ---------------------------------------------------------------------------------------------- ingest
class _ImageSourceBase(Strict):
    # Every image is resized to size x size (torch, antialiased); None keeps the native size, which
    # must then be the same for every image.
    size: int | None = Field(None, ge=4, le=1024)
    channels: Literal[1, 3] = 1
    # Optional CSV with one row per image and group columns (e.g. a site or a demographic); joined on
    # `index` (row number, IDX/NPZ) or `file` (path below the folder, image-folder).
    metadata: LocalPath | None = None
    class_names: list[str] | None = None  # names for labels 0..K-1 (IDX/NPZ); folders name their own


class DigitsSource(_ImageSourceBase):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), read from the installed package."""

    source: Literal["sklearn-digits"]
    size: int | None = Field(16, ge=4, le=1024)


class IdxFiles(Strict):
    """The dataset's own test pair (e.g. MNIST's t10k files), with its own metadata CSV if any."""

    images: LocalPath
    labels: LocalPath
    metadata: LocalPath | None = None


class IdxSource(_ImageSourceBase):
    """MNIST-format IDX files (gzipped or not): an idx3 images file and an idx1 labels file; `test`
    names the official test pair (kept as the test split; val is carved from the training pair)."""

    source: Literal["idx"]
    images: LocalPath
    labels: LocalPath
    test: IdxFiles | None = None


class NpzSource(_ImageSourceBase):
    """A NumPy .npz with images (N, H, W) or (N, H, W, C) uint8 and integer labels (N,)."""

    source: Literal["npz"]
    path: LocalPath
    x_key: str = "x"
    y_key: str = "y"
    test: LocalPath | None = None  # the official test .npz (same keys), kept as the test split


class ImageFolderSource(_ImageSourceBase):
    """One subfolder per class holding PNG/JPEG files (read with Pillow)."""

    source: Literal["image-folder"]
    path: LocalPath
    test: LocalPath | None = None  # the official test folder (same class subfolders), kept as test
    extensions: list[str] = Field(default_factory=lambda: [".png", ".jpg", ".jpeg"])


ImageIngestConfig = Annotated[
    DigitsSource | IdxSource | NpzSource | ImageFolderSource, Field(discriminator="source")
]


# --------------------------------------------------------------------------- columns, validate, preprocess
class ImageColumns(Strict):
    """Columns of the per-image raw table: `label`, plus the metadata CSV's group columns named here."""

    target: Literal["label"] = "label"
    positive_label: None = None
    sensitive: list[str] = Field(default_factory=list)


class ImageValidateConfig(Strict):
    suite: ProjectPath
    draft_if_missing: bool = False
    min_rows: int = Field(100, ge=1)
    min_class_fraction: float = Field(0.02, ge=0.0, le=1.0)
    max_class_fraction: float = Field(0.5, ge=0.0, le=1.0)
    max_duplicate_fraction: float = Field(0.01, ge=0.0, le=1.0)


class ImagePreprocessConfig(Strict):
    split: SplitConfig = SplitConfig()


class ImageAugmentConfig(Strict):
    """kornia, on the training device, training batches only. 0 switches a transform off."""

    degrees: float = Field(0.0, ge=0.0, le=180.0)  # random rotation in [-degrees, degrees]
    translate: float = Field(0.0, ge=0.0, le=0.5)  # shift up to this fraction of width/height
    scale: float = Field(0.0, ge=0.0, le=0.5)  # zoom in [1 - scale, 1 + scale]
    erasing_p: float = Field(0.0, ge=0.0, le=1.0)  # probability of random erasing per image
    noise_std: float = Field(0.0, ge=0.0, le=1.0)  # Gaussian pixel noise (pixels are in [0, 1])

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in self.model_dump().values())


# ---------------------------------------------------------------------------------------------------- task
class ImageTask(TaskSchema):
    kind: Literal["images"]
    ingest: ImageIngestConfig
    columns: ImageColumns
    validate_: ImageValidateConfig = Field(alias="validate")
    preprocess: ImagePreprocessConfig
    augment: ImageAugmentConfig

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    mitigation: ClassVar[bool] = False  # the digits have no group columns to reweigh or threshold by

    def batch_defaults(self) -> dict[str, Any]:
        return {"size": self.ingest.size, "channels": self.ingest.channels}
