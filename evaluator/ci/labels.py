"""Where the workflows find hidden labels: by convention an encrypted bundle per benchmark in
``labels/<benchmark>.bundle`` (made with ``leaderboard labels pack``), unless the workflow sets
``LEADERBOARD_LABELS_<BENCHMARK>`` (e.g. to ``url:https://...`` for a private download)."""

from __future__ import annotations

import os
from pathlib import Path

from evaluator.ci import actions
from evaluator.labels import ENV_PREFIX, env_var
from evaluator.registry import benchmarks

LABELS_DIR = "labels"


def bundle_path(repo: Path, benchmark: str) -> Path:
    return repo / LABELS_DIR / f"{benchmark}.bundle"


def default_label_specs(repo: Path) -> list[str]:
    """``--labels`` specs for the bundles present, for benchmarks the environment does not
    configure otherwise."""
    specs = []
    for benchmark in benchmarks():
        name = benchmark.info.name
        path = bundle_path(repo, name)
        if path.is_file() and not os.environ.get(env_var(name)):
            specs.append(f"{name}=bundle:{path}")
    return specs


def mask_label_secrets() -> None:
    """Ask the runner to hide every label source spec (a signed URL carries its credential in
    the query string) from later log lines, also when a maintainer passes one through a
    variable rather than a secret. Secrets themselves (the label key, the download token) are
    masked by GitHub and are not repeated in a mask command."""
    for name, value in os.environ.items():
        if name.startswith(ENV_PREFIX):
            actions.mask(value)
