"""Hyperparameter search: the study (spaces, sampling, pruning, storage, summary) in `study`, the
result `train` reads in `result`, and the stage's run (trials as MLflow child runs, workers) in `run`.
"""
