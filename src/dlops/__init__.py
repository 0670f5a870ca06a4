"""dlops: one DVC DAG and its Prefect twin that train, check and register classic deep-learning models."""

__version__ = "0.1.0"
