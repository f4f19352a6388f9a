"""The hashed lock files the privileged workflow jobs install from (requirements/*.lock) match
pyproject.toml: made from the same dependency lists, every pin hashed, every direct
requirement satisfied. Remake them with `python3 requirements/lock.py`."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _lock_module():
    spec = importlib.util.spec_from_file_location("lock", REPO / "requirements" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCK = _lock_module()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
REMAKE = "pyproject.toml changed since the lock was made: run `python3 requirements/lock.py`"


def _pins(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile style lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        pinned = re.match(r"^([A-Za-z0-9._-]+)==([^ \\;]+)", line)
        if pinned:
            current = canonicalize_name(pinned.group(1))
            pins[current] = (pinned.group(2), [])
        elif current and (found := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            pins[current][1].append(found.group(1))
    return pins


@pytest.mark.parametrize("name,extras", sorted(LOCK.LOCKS.items()))
def test_lock_was_made_from_the_current_pyproject(name, extras):
    text = (REPO / "requirements" / name).read_text()
    digest = next(line.removeprefix(LOCK.DIGEST_PREFIX) for line in text.splitlines()
                  if line.startswith(LOCK.DIGEST_PREFIX))
    assert digest == LOCK.inputs_digest(PYPROJECT, extras), REMAKE


@pytest.mark.parametrize("name,extras", sorted(LOCK.LOCKS.items()))
def test_every_pin_is_exact_and_hashed_and_satisfies_pyproject(name, extras):
    text = (REPO / "requirements" / name).read_text()
    pins = _pins(text)
    assert pins
    unhashed = [n for n, (_, hashes) in pins.items() if not hashes]
    assert not unhashed, f"{name}: pins without a hash: {unhashed}"
    # Nothing but pins, hashes and comments: no index URLs, editable or path installs.
    for line in text.splitlines():
        stripped = line.strip()
        assert (not stripped or stripped.startswith(("#", "--hash="))
                or re.match(r"^[A-Za-z0-9._-]+==", stripped)), f"{name}: unexpected {line!r}"
    project = PYPROJECT["project"]
    direct = project["dependencies"] + [r for e in extras
                                        for r in project["optional-dependencies"][e]]
    for spec in map(Requirement, direct):
        if spec.marker and not spec.marker.evaluate({"platform_system": "Linux",
                                                     "python_version": LOCK.PYTHON_VERSION}):
            continue
        key = canonicalize_name(spec.name)
        assert key in pins, f"{name}: {spec.name} is missing ({REMAKE})"
        assert spec.specifier.contains(pins[key][0], prereleases=True), \
            f"{name}: {spec.name}=={pins[key][0]} does not satisfy {spec} ({REMAKE})"


def test_the_digest_changes_with_the_dependency_lists():
    changed = {**PYPROJECT, "project": {**PYPROJECT["project"],
                                        "dependencies": PYPROJECT["project"]["dependencies"]
                                        + ["six"]}}
    assert LOCK.inputs_digest(changed, ("ci",)) != LOCK.inputs_digest(PYPROJECT, ("ci",))
