"""Model families: one file each, registered by name in `registry`."""

from dlops.models.registry import build_model, known_families

__all__ = ["build_model", "known_families"]
