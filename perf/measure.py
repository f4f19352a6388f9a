"""Wall time and peak memory of one `leaderboard` process, for the benchmark scripts.

The peak is the child's own VmHWM, read from /proc when it exits: the rusage a parent gets
from wait4 also counts the memory the parent had when it forked, which would inflate it."""

from __future__ import annotations

import subprocess
import sys
import time

_WRAPPER = """
import atexit, sys
def _report_peak():
    with open("/proc/self/status") as status:
        peak = next(l.split()[1] for l in status if l.startswith("VmHWM:"))
    sys.stderr.write(f"\\nPEAK_KB {peak}\\n")
atexit.register(_report_peak)
from evaluator.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(args: list[str]) -> tuple[float, float]:
    """Run `leaderboard ARGS`; return (wall seconds, peak resident MB). Exits on failure."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: leaderboard {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    peak_kb = int(proc.stderr.rsplit("PEAK_KB ", 1)[1].split()[0])
    return wall, peak_kb / 1024
