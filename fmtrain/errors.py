"""The errors fmtrain raises on purpose, and the exit code each maps to."""

from __future__ import annotations


class FmtrainError(Exception):
    """Base class: a failure fmtrain understands and can explain in one line."""

    exit_code = 1


class ConfigError(FmtrainError):
    """The YAML file, a ``--set`` override or a command-line argument is wrong."""

    exit_code = 2


class DataError(FmtrainError):
    """A data file is missing, unreadable or does not fit the config."""

    exit_code = 2


class RunDirError(FmtrainError):
    """A run directory is missing, incomplete, or may not be written."""

    exit_code = 2


class ExpectationFailed(FmtrainError):
    """An ``--expect`` threshold was missed."""

    exit_code = 3


class Interrupted(FmtrainError):
    """SIGINT/SIGTERM: training stopped after the current step, with a checkpoint saved."""

    exit_code = 130


class TrainingFailed(FmtrainError):
    """Training stopped on its own terms (for example a NaN loss)."""

    exit_code = 1
