"""Helpers shared by the bad-input tests: find a reported problem, run the CLI."""

from __future__ import annotations

import pytest

from evaluator.cli import main
from evaluator.validation.report import ValidationReport


def problem(report: ValidationReport, file: str, line, *fragments: str):
    """The problem at ``file:line`` whose message holds every fragment (``line=...`` matches
    any line); fails with the whole report if there is none."""
    for p in report.problems:
        if p.file == file and line in (..., p.line) and all(f in p.message for f in fragments):
            where = file if p.line is None else f"{file}:{p.line}"
            assert str(p).startswith(f"{where}: error: ")
            return p
    pytest.fail(f"no {file}:{line} {fragments} in:\n" + "\n".join(report.lines()))


def cli(capsys, *args: str) -> tuple[int, str]:
    """Run `leaderboard ARGS`; return its exit code and output, which never holds a traceback."""
    code = main(list(args))
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "Traceback" not in out
    return code, out
