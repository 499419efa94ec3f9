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


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The informative line of an exception, for a one-line message.

    TensorFlow puts the informative line last, after "in user code:"; everything else first.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if lines[0].startswith("in user code") else lines[0])[:limit]
