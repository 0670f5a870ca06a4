"""Time-series forecasting tasks (`kind: timeseries`)."""
