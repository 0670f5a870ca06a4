"""Evaluation: metrics, fairness, overfitting diagnosis and plots, as pure functions returning plain dicts."""
