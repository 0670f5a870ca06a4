"""The building blocks of every params schema: `Strict`, `ConfigError`, the path, URL and name rules,
the split every task kind shares, and `params_hash`."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Collection
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from dlops.errors import BadInput


class ConfigError(BadInput, ValueError):
    """params.yaml is invalid; the message names each offending key path."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------ path and URL rules
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def plain_name(name: str) -> str | None:
    """Why `name` (a task or model name: it becomes a path component and part of a registered model
    name) is not a plain name, or None when it is."""
    if not _PLAIN_NAME.fullmatch(name) or ".." in name:
        return (
            f"{name!r} is not a plain name: use letters, digits, '-', '_' and '.', not starting with '.' "
            "(it becomes a path component such as data/raw/<task>.parquet or models/<model>/)"
        )
    return None


def _local_path(value: str) -> str:
    """An input path of a source that reads local files only: a URL here is refused, not taken for a
    relative path."""
    if "://" in value:
        raise ValueError(
            f"{value!r} is a URL, but this key takes a local path; download the file and give its path "
            "(only `source: table` reads a `url`, pinned by `sha256`)"
        )
    return value


def _inside_project(value: str) -> str:
    """An output path under the project root: relative, no URL, no `..` that leaves the project."""
    _local_path(value)
    normal = os.path.normpath(value.replace("\\", "/"))
    if os.path.isabs(value) or normal == ".." or normal.startswith("../"):
        raise ValueError(f"{value!r} must be a relative path inside the project (it is written there)")
    return value


def _http_url(value: str) -> str:
    """An http(s) URL with a host; file://, ftp://, s3:// and the like are refused."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value


def _sha256_hex(value: str) -> str:
    """A sha256 as 64 hex digits, lowercased (PowerShell's Get-FileHash prints upper case)."""
    lowered = value.strip().lower()
    if not _SHA256.fullmatch(lowered):
        raise ValueError(f"must be 64 hex characters (a sha256 digest), got {value!r}")
    return lowered


_REGISTERED = re.compile(r"^models:/[A-Za-z0-9_.-]+(@[A-Za-z0-9_-]+|/[0-9]+)$")


def _init_from(value: str) -> str:
    """`champion`, a registered model URI, or a checkpoint file inside the project."""
    if value == "champion" or _REGISTERED.fullmatch(value):
        return value
    if value.startswith("models:"):
        raise ValueError(
            f"{value!r} is not a registered model URI; use models:/<name>@<alias> or models:/<name>/<version>"
        )
    normal = os.path.normpath(value.replace("\\", "/"))
    escapes = normal == ".." or normal.startswith("../")
    if not value.strip() or "://" in value or os.path.isabs(value) or escapes:
        raise ValueError(
            f"{value!r}: use champion, models:/<name>@<alias>, models:/<name>/<version> or a checkpoint "
            "path relative to the project root, inside it (no URL, absolute path or '..')"
        )
    return value


LocalPath = Annotated[str, AfterValidator(_local_path)]
InitFrom = Annotated[str, AfterValidator(_init_from)]
ProjectPath = Annotated[str, AfterValidator(_inside_project)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Sha256 = Annotated[str, AfterValidator(_sha256_hex)]


# ---------------------------------------------------------------------------------- shared by every kind
class SplitConfig(Strict):
    train: float = Field(0.7, gt=0.0, lt=1.0)
    val: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)
    seed: int = 0
    # A column holding the dataset's own split (train / val / test): rows keep it, val is carved from
    # train by val / (train + val) when no row is val, and the fractions apply only to rows without one.
    column: str | None = None

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:.4f}")
        return self


# ------------------------------------------------------------------------------------------------ helpers
def unknown_name(what: str, name: str, known: Collection[str], where: str) -> str:
    """`where: unknown <what> <name>; known: [...]`, with the closest known name as a hint."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown {what} {name!r}; known: {sorted(known)}.{hint}"


def params_hash(section: BaseModel | dict[str, Any]) -> str:
    """A stable short hash of a params section, for tags and checkpoint fingerprints."""
    data = section.model_dump(mode="json", by_alias=True) if isinstance(section, BaseModel) else section
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class TableFile(Strict):
    """A CSV/Parquet file a source reads: a local path or an http(s) URL pinned by sha256."""

    path: LocalPath | None = None
    url: HttpUrl | None = None
    sha256: Sha256 | None = None
    format: Literal["auto", "csv", "parquet"] = "auto"
    csv_options: dict[str, Any] = Field(default_factory=dict)  # passed to pandas.read_csv
    # Values to rewrite after reading, per column: e.g. {income: {">50K.": ">50K"}} for a test file
    # that spells its labels with a trailing dot.
    replace: dict[str, dict[Any, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_location(self) -> TableFile:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of 'path' or 'url'")
        if self.url is not None and self.sha256 is None:
            raise ValueError("a `url` needs a pinned `sha256` (64 hex characters, e.g. from sha256sum)")
        return self


def _regex(value: str) -> str:
    """A pattern Python's `re` compiles (a declared national-ID shape for the PII screen)."""
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {value!r}") from None
    if pattern.fullmatch(""):
        raise ValueError(f"{value!r} matches the empty string, so it would flag every text")
    return value


class PiiScreen(Strict):
    """`validate.pii`: the screen of string columns for direct identifiers (`dlops.privacy.pii`).

    `critical` fails validate on a finding, `warning` logs it and goes on, `off` does not screen.
    `national_ids` adds a pattern per national ID the data may hold, `{name: regex}`."""

    severity: Literal["critical", "warning", "off"] = "critical"
    national_ids: dict[str, Annotated[str, AfterValidator(_regex)]] = Field(default_factory=dict)


class TaskSchema(Strict):
    """What every kind's task section declares besides its keys (each kind's schema subclasses it)."""

    mitigation: ClassVar[bool] = True  # reweighing and fair thresholds can name its sensitive columns
    # A pretraining study on this kind: its classifier families, and whether they pretrain their own
    # encoder on the training inputs (text: masked tokens) instead of loading an autoencoder/VAE entry's.
    pretraining_classifiers: ClassVar[tuple[str, ...]] = ("cnn",)
    pretrains_own_encoder: ClassVar[bool] = False

    def batch_defaults(self) -> dict[str, Any]:
        """Source keys a batch spec inherits from the task's own source (e.g. the image size)."""
        return {}


def input_paths(source: BaseModel) -> list[str]:
    """The local files and folders a source reads: the values of its `LocalPath` fields, in field order,
    then those of its sub-sources (a `test:` file) (what DVC must watch for the task's ingest stage)."""
    found = []
    for name, info in type(source).model_fields.items():
        value = getattr(source, name)
        if isinstance(value, BaseModel):
            found += input_paths(value)
        elif value is not None and (_local(info.metadata) or _is_local_path(info.annotation)):
            found.append(str(value))
    return found


def _local(metadata: Any) -> bool:
    return any(getattr(m, "func", None) is _local_path for m in metadata)


def _is_local_path(annotation: Any) -> bool:
    """`LocalPath`, or a union holding it (`LocalPath | None`)."""
    from typing import get_args

    args = get_args(annotation)
    if getattr(annotation, "__metadata__", None) is not None:  # Annotated[str, AfterValidator(...)]
        return _local(annotation.__metadata__)
    return any(_is_local_path(arg) for arg in args if arg is not type(None))
