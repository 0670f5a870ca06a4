"""Typed model of params.yaml and every project path: the only reader of params.yaml.

A typo, a wrong type or an out-of-range value stops the run with a `ConfigError` that names the key
path (and, for typos, the closest valid key), so nothing downstream ever sees a silent default.
One module per concern: `fields` (shared rules), `tasks_<kind>` and `tasks` (a task of each kind),
`train`, `gates`, `search`, `models` (a model entry and its cross-checks), `retrain`, `root` (`Params`,
`load_params`) and `paths`.
"""

from dlops.params.fields import ConfigError, PiiScreen, SplitConfig, params_hash
from dlops.params.gates import GatesConfig
from dlops.params.models import ModelEntry, PretrainingConfig
from dlops.params.paths import SPLITS, Paths, paths
from dlops.params.root import MlflowConfig, Params, load_params
from dlops.params.search import SearchConfig, SearchParam
from dlops.params.tasks import TaskConfig, batch_source
from dlops.params.tasks_images import (
    DigitsSource,
    IdxSource,
    ImageAugmentConfig,
    ImageColumns,
    ImageFolderSource,
    ImageTask,
    ImageValidateConfig,
    NpzSource,
)
from dlops.params.tasks_tabular import (
    ColumnRoles,
    PreprocessConfig,
    SyntheticIncomeSource,
    TableSource,
    TabularAugmentConfig,
    TabularTask,
    ValidateConfig,
)
from dlops.params.tasks_text import (
    SyntheticReviewsSource,
    TextAugmentConfig,
    TextColumns,
    TextFolderSource,
    TextTableSource,
    TextTask,
    TextValidateConfig,
    TokenizerConfig,
)
from dlops.params.train import PrivacyConfig, TrainConfig

__all__ = [
    "ColumnRoles",
    "ConfigError",
    "DigitsSource",
    "GatesConfig",
    "IdxSource",
    "ImageAugmentConfig",
    "ImageColumns",
    "ImageFolderSource",
    "ImageTask",
    "ImageValidateConfig",
    "MlflowConfig",
    "ModelEntry",
    "NpzSource",
    "Params",
    "Paths",
    "PiiScreen",
    "PreprocessConfig",
    "PretrainingConfig",
    "SearchConfig",
    "SearchParam",
    "SplitConfig",
    "SyntheticIncomeSource",
    "SyntheticReviewsSource",
    "TableSource",
    "TabularAugmentConfig",
    "TabularTask",
    "TaskConfig",
    "TextAugmentConfig",
    "TextColumns",
    "TextFolderSource",
    "TextTableSource",
    "TextTask",
    "TextValidateConfig",
    "TokenizerConfig",
    "PrivacyConfig",
    "TrainConfig",
    "ValidateConfig",
    "batch_source",
    "load_params",
    "params_hash",
    "paths",
    "SPLITS",
]
