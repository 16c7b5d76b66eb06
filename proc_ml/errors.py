"""User-facing errors: each prints as one line naming the file or key and what is wrong."""


class ProcMLError(Exception):
    """Base class for errors the CLI reports as a single line (no traceback)."""


class ConfigError(ProcMLError):
    """A configuration file, key or value is invalid."""


class DatasetError(ProcMLError):
    """A dataset file is missing or malformed."""


class ModelError(ProcMLError):
    """A model file is missing, malformed or does not match its inputs."""


class OutputError(ProcMLError):
    """An output location cannot be written (a file where a folder is needed, read-only,
    full disk, locked by another run, a planted symlink)."""


class LimitError(ProcMLError):
    """An input is over a size or memory limit (checked before anything large is allocated)."""


class TrainingError(ProcMLError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""
