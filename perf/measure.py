"""Wall time and peak memory of one Python process, for the benchmark scripts.

The peak is the child's own VmHWM, read from /proc when it exits: the rusage a parent gets
from wait4 also counts the memory the parent had when it forked, which would inflate it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

_PEAK_REPORT = """
import atexit, sys
def _report_peak():
    with open("/proc/self/status") as status:
        peak = next(l.split()[1] for l in status if l.startswith("VmHWM:"))
    sys.stderr.write(f"\\nPEAK_KB {peak}\\n")
atexit.register(_report_peak)
"""
_CLI = "from evaluator.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def run_cli(args: list[str], source: str | None = None) -> tuple[float, float]:
    """Run `leaderboard ARGS`; return (wall seconds, peak resident MB). Exits on failure.
    ``source``: a checkout of another version of the evaluator to run instead (put first on
    the module path), for before/after timings interleaved under the same load."""
    return run_python(_CLI, args, f"leaderboard {' '.join(args)}", source)


def run_python(code: str, args: list[str], what: str | None = None,
               source: str | None = None) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter (``sys.argv[1:]`` = ARGS); return (wall seconds,
    peak resident MB). Exits on failure."""
    env = None
    if source is not None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [source, *filter(None, [os.environ.get("PYTHONPATH")])])}
    start = time.perf_counter()
    # Run from the other checkout's folder: the current folder comes first on the module
    # path, before PYTHONPATH.
    proc = subprocess.run([sys.executable, "-c", _PEAK_REPORT + code, *args],
                          capture_output=True, text=True, env=env, cwd=source)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {what or code}\n{proc.stdout}\n{proc.stderr}")
    peak_kb = int(proc.stderr.rsplit("PEAK_KB ", 1)[1].split()[0])
    return wall, peak_kb / 1024
