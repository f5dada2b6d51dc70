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


class UnsupportedBackboneError(ConfigError):
    """The timm model is not a ViT that DCAL can drive block by block."""


class LocalizationError(DCALError):
    """The pointing game cannot be computed for this transform, model or data."""


class RunFolderError(DCALError):
    """A run folder cannot be used as asked (a run is already there, none is, or a resume changes it)."""


class ExportError(DCALError):
    """The model could not be exported, or the exported file disagrees with PyTorch."""


class TrainingInterrupted(DCALError):
    """Training stopped on SIGINT, SIGTERM or SIGUSR2; :attr:`exit_code` is 128 + the signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class TrainingDiverged(DCALError):
    """The loss became NaN or infinite."""


class EvaluationFailed(DCALError):
    """The evaluation after an epoch failed; the epoch's checkpoint is on disk and the run can resume."""


class EvaluationError(DCALError):
    """Inputs to an evaluation are inconsistent (lengths, shapes, empty sets, NaN distances)."""
