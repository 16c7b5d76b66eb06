"""User-facing errors: each prints as one line naming the file or key and what is wrong."""


class ProcMLError(Exception):
    """Base class for errors the CLI reports as a single line (no traceback)."""


class ConfigError(ProcMLError):
    """A configuration file, key or value is invalid."""


class DatasetError(ProcMLError):
    """A dataset file is missing or malformed."""


class ModelError(ProcMLError):
    """A model file is missing, malformed or does not match its inputs."""
