"""Forecasting task kind (placeholder docstring; the Kind class is written separately)."""
