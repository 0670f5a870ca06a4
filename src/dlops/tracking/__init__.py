"""The only package that talks to MLflow, by concern: `store` (URI, configure, client), `runs` (training,
search, evaluation and report runs), `lineage` (where a model comes from), `registry` (versions, aliases,
the champion, checkpoint integrity) and `promotion` (registration with gates and the @champion decision).

mlflow is imported inside functions so the CLI starts fast.
"""

from dlops.tracking.lineage import lineage_tags
from dlops.tracking.promotion import PairedRows, register
from dlops.tracking.registry import (
    MAX_DESCRIPTION,
    ModelIntegrityError,
    champion_checkpoint,
    champion_info,
    load_champion,
    load_registered,
    model_name,
    registered_checkpoint,
    version_by_alias,
    version_with_sha,
)
from dlops.tracking.runs import (
    TAG_MAX_CHARS,
    RunLogger,
    find_run,
    finish_search_run,
    flatten_params,
    log_evaluation,
    log_report_run,
    quote,
    search_parent_run,
    training_run,
)
from dlops.tracking.store import (
    HTTP_RETRY_DEFAULTS,
    bound_http_retries,
    client,
    configure,
    experiment_id,
    server_uri,
    tracking_uri,
)

__all__ = [
    "HTTP_RETRY_DEFAULTS",
    "MAX_DESCRIPTION",
    "TAG_MAX_CHARS",
    "ModelIntegrityError",
    "PairedRows",
    "RunLogger",
    "bound_http_retries",
    "champion_checkpoint",
    "champion_info",
    "client",
    "configure",
    "experiment_id",
    "find_run",
    "finish_search_run",
    "flatten_params",
    "lineage_tags",
    "load_champion",
    "load_registered",
    "log_evaluation",
    "log_report_run",
    "model_name",
    "quote",
    "register",
    "registered_checkpoint",
    "search_parent_run",
    "server_uri",
    "tracking_uri",
    "training_run",
    "version_by_alias",
    "version_with_sha",
]
