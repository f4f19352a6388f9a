"""A one-line progress display on stderr for long work, shown only on an interactive terminal
so CI logs and redirected output stay clean."""

from __future__ import annotations

import os
import sys
import time

_MIN_INTERVAL = 0.1
_enabled: bool | None = None
_last = 0.0
_width = 0


def enabled() -> bool:
    global _enabled
    if _enabled is None:
        _enabled = sys.stderr.isatty() and not os.environ.get("LEADERBOARD_NO_PROGRESS")
    return _enabled


def status(message: str, force: bool = False) -> None:
    """Show ``message`` in place of the previous one (throttled to ten updates a second)."""
    global _last, _width
    if not enabled():
        return
    now = time.monotonic()
    if not force and now - _last < _MIN_INTERVAL:
        return
    _last = now
    text = message[:120]
    sys.stderr.write("\r" + text + " " * max(0, _width - len(text)))
    sys.stderr.flush()
    _width = len(text)


def clear() -> None:
    """Remove the progress line before normal output is printed."""
    global _width
    if enabled() and _width:
        sys.stderr.write("\r" + " " * _width + "\r")
        sys.stderr.flush()
        _width = 0
