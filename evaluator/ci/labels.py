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


SECRET_VARIABLES = ("LEADERBOARD_LABEL_KEY", "LEADERBOARD_LABELS_URL_TOKEN")


def mask_label_secrets() -> None:
    """Ask the runner to hide the label key, the download token and every label source spec
    (a signed URL carries its secret in the query string) from all later log lines. GitHub
    masks secrets by itself; this also covers values that arrive through variables."""
    for name, value in os.environ.items():
        if name in SECRET_VARIABLES or name.startswith(ENV_PREFIX):
            actions.mask(value)
