"""Progress bars for baseline stages (tqdm): images/s while features are computed, queries/s
while searching. Shown on a terminal only, so logs stay readable; every stage also prints a
one-line summary when it ends (baselines.run_record)."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str):
    from tqdm import tqdm

    disable = None if not os.environ.get("LEADERBOARD_NO_PROGRESS") else True
    with tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
              dynamic_ncols=True, smoothing=0.1) as bar:
        yield bar
