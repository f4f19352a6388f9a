"""The run record a baseline writes beside its predictions (``run.json``): what ran, on what,
with which weights and package versions, and how long each stage took. It is what a reader
needs to trust or repeat a baseline entry."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

RUN_RECORD_FILE = "run.json"
RUN_RECORD_VERSION = 1
PACKAGES = ("cv-leaderboards", "numpy", "scipy", "scikit-learn", "pillow", "torch",
            "torchvision", "timm", "open_clip_torch", "opencv-python-headless", "opencv-python",
            "faiss-cpu", "faiss-gpu-cu12", "open3d", "open3d-cpu", "tifffile", "pyyaml")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[name] = importlib_metadata.version(name)
    return versions


def peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class Stage:
    name: str
    seconds: float
    items: int | None = None
    unit: str | None = None
    cached: bool = False

    def summary(self) -> str:
        if self.cached:
            return f"{self.name}: reused from the cache"
        text = f"{self.name}: {self.seconds:.1f} s"
        if self.items and self.seconds > 0:
            text += f" ({self.items} {self.unit}, {self.items / self.seconds:.1f}/s)"
        return text

    def as_dict(self) -> dict:
        out = {"name": self.name, "seconds": round(self.seconds, 3), "cached": self.cached}
        if self.items is not None:
            out["items"] = self.items
            out["unit"] = self.unit
            if self.seconds > 0 and not self.cached:
                out["per_second"] = round(self.items / self.seconds, 2)
        return out


@dataclass
class RunRecord:
    baseline: str
    command: str
    settings: dict
    data: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    started: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc)
                         .isoformat(timespec="seconds"))
    _t0: float = field(default_factory=time.perf_counter, repr=False)
    peak_gpu_bytes: int | None = None

    @contextlib.contextmanager
    def stage(self, name: str, items: int | None = None, unit: str | None = None):
        """Time a stage; the body may set ``stage.items`` or ``stage.cached``."""
        current = Stage(name, 0.0, items, unit)
        start = time.perf_counter()
        try:
            yield current
        finally:
            current.seconds = time.perf_counter() - start
            self.stages.append(current)
            print(f"[{self.baseline}] {current.summary()}", file=sys.stderr, flush=True)

    def as_dict(self) -> dict:
        return {
            "run_record_version": RUN_RECORD_VERSION,
            "baseline": self.baseline,
            "command": self.command,
            "started": self.started,
            "wall_seconds": round(time.perf_counter() - self._t0, 3),
            "settings": self.settings,
            "data": self.data,
            "weights": self.weights,
            "device": self.device,
            "stages": [s.as_dict() for s in self.stages],
            "peak_memory": {"host_rss_bytes": peak_rss_bytes(),
                            "gpu_allocated_bytes": self.peak_gpu_bytes},
            "packages": package_versions(),
            "platform": {"system": platform.platform(), "machine": platform.machine(),
                         "processor": platform.processor() or None},
        }

    def write(self, entry_dir: Path) -> Path:
        path = entry_dir / RUN_RECORD_FILE
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        return path
