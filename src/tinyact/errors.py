"""User-facing error types.

Every error a user can cause (a bad file, a bad config, a mismatched model) is a subclass of
:class:`TinyActError`. The CLI prints these as one clear line and exits with status 2 instead of a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TinyActError(Exception):
    """Base class of errors caused by user input; its message says what to do next."""


class ConfigError(TinyActError):
    """A configuration file or option is invalid."""


class DatasetError(TinyActError):
    """A dataset root, annotation file or manifest is unusable."""
