"""User-facing errors. The CLI prints their message (no traceback) and exits non-zero.

Every message names the file, the field and the value where there is one.
"""

from __future__ import annotations


class H2OTError(Exception):
    """Base class of errors caused by user input (bad names, files, shapes, settings)."""


class ConfigError(H2OTError, ValueError):
    """A setting, grid or spec that cannot be used."""


class DataError(H2OTError, ValueError):
    """A dataset file that is missing, truncated, malformed or inconsistent."""


class CheckpointError(H2OTError, ValueError):
    """A checkpoint of the wrong architecture, shape or format."""


class ShapeError(H2OTError, ValueError):
    """An input array of the wrong shape."""


class RegistrationError(H2OTError, TypeError):
    """A registry entry that cannot be added: a name registered twice, or a target or info of the wrong kind."""
