"""Errors that ``cap`` raises for bad input: the CLI prints them without a traceback."""

from __future__ import annotations


class CapError(Exception):
    """Base class of every error caused by the user's input, data or config."""


class DataError(CapError, ValueError):
    """Bad feature arrays: NaN/inf, wrong shape, mismatched dimensions, empty bank."""


class ConfigError(CapError, ValueError):
    """An unknown name (dataset, class, backbone, head) or an invalid setting."""


class MissingResourceError(CapError, FileNotFoundError):
    """A dataset or weight file that is not where it must be (offline, or not downloaded)."""


class NotFittedError(CapError, RuntimeError):
    """A detector used before ``fit``."""
