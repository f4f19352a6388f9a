"""Errors a baseline run reports as one clear line (never a traceback)."""


class BaselineError(Exception):
    """Base class; `leaderboard baseline run` prints the message and exits."""


class BaselineDataError(BaselineError):
    """The dataset or a cache is missing, incomplete or unreadable; the message names the file.
    Exit status 3."""


class BaselineUsageError(BaselineError):
    """The options do not fit (device, board, output folder, weights). Exit status 2."""
