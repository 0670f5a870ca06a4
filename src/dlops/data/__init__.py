"""Data code every kind shares: project files, splits, the processed array files, the Great Expectations
runner and new batches. A kind's own data code lives in its package, `dlops.kinds.<kind>`."""
