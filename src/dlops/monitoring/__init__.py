"""Watching data after deployment: drift of new batches against the training reference."""
