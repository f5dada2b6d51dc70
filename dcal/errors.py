"""The exceptions dcal raises for mistakes a user can make.

Everything a user can cause (a wrong path, a misspelt config key, a checkpoint of another
architecture, a corrupt image) is reported as a :class:`DCALError` whose message names the file,
key or value and what was expected.  The ``dcal`` command prints such errors without a traceback.
"""


class DCALError(Exception):
    """Base class of every error a user can cause."""


class ConfigError(DCALError):
    """A configuration file or ``key=value`` override is invalid."""


class DatasetError(DCALError):
    """A dataset root is missing, laid out wrongly, or holds an unreadable file."""


class CheckpointError(DCALError):
    """A checkpoint or weights file cannot be used with the requested model."""
