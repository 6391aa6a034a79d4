"""Measure families; importing this package registers every measure."""

from congruence.measures import kernel  # noqa: F401

__all__ = ["kernel"]
