"""Errors the store raises for bad databases, worded for the person who has to fix them."""

from __future__ import annotations


class StoreError(Exception):
    """A database that cannot be used: corrupt, foreign, too new, unreachable."""


class NotFound(StoreError):
    """A task or run that does not exist."""
