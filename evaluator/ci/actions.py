"""The one place that talks to the Actions runner, through the ``github-action-toolkit`` package:
outputs, the step summary, annotations, masks and the event payload.

The toolkit writes what it is given; escaping is the caller's job, and this module does it for
every piece of text that may come from a pull request (entry names, file names, messages):

* workflow commands (``::error ...::message``): the message is escaped with the runner's own
  rules (``%``, CR, LF), so it can never end the line and start a command of its own;
* plain log lines: untrusted blocks are printed between ``::stop-commands::<token>`` and
  ``::<token>::``, so the runner ignores anything command-like inside them;
* Markdown (step summary, PR comments): :func:`md` turns every character that is not a letter,
  digit or space into a numeric character reference, which GitHub renders as that character
  but never as Markdown or HTML syntax; ``@`` and ``#`` also get a zero-width space so text
  cannot mention people or link issues.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import github_action_toolkit as gat
from github_action_toolkit.print_messages import escape_data

# A summary or comment larger than this is truncated by GitHub; keep well below.
MAX_MARKDOWN_CHARS = 60_000
MAX_INLINE_CHARS = 300


# Markdown ---------------------------------------------------------------------------------------

def md(text: Any, limit: int = MAX_INLINE_CHARS) -> str:
    """Untrusted text as inert inline Markdown: one line, shown exactly as written."""
    flat = " ".join(str(text).split())  # newlines and tabs cannot end a table row or block
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    out = []
    for char in flat:
        if unicodedata.category(char)[0] in "CZ" and char != " ":
            char = "\ufffd"  # controls, bidi overrides, odd spaces: shown as a replacement
        if char == " " or (char.isalnum() and char.isascii()):
            out.append(char)
        elif char in "@#":
            out.append(f"&#{ord(char)};&#8203;")
        else:
            out.append(f"&#{ord(char)};")
    return "".join(out)


def md_code(text: Any, limit: int = MAX_INLINE_CHARS) -> str:
    """Untrusted text shown in a monospace font, as inert as :func:`md`."""
    return f"<code>{md(text, limit)}</code>"


# Log and workflow commands ---------------------------------------------------------------------

def command_text(text: Any) -> str:
    """A workflow command's message: the runner decodes %25, %0D and %0A back."""
    return escape_data(text)


@contextmanager
def commands_off() -> Iterator[None]:
    """Print untrusted text inside this block: the runner treats none of it as a command."""
    token = secrets.token_hex(16)
    gat.echo(f"::stop-commands::{token}")
    try:
        yield
    finally:
        gat.echo(f"::{token}::")


def log(text: Any) -> None:
    """One log line that may hold untrusted text (line breaks become spaces); print blocks of
    them inside :func:`commands_off`."""
    gat.echo(" ".join(str(text).splitlines()))


def annotate_error(message: str, file: str | None = None, line: int | None = None,
                   title: str = "leaderboard") -> None:
    """An error annotation on ``file``:``line`` of the pull request's diff."""
    gat.error(command_text(message), title=title, file=file, line=line)


def annotate_warning(message: str, file: str | None = None, line: int | None = None,
                     title: str = "leaderboard") -> None:
    gat.warning(command_text(message), title=title, file=file, line=line)


def mask(value: str) -> None:
    """Hide ``value`` from every later log line (e.g. a key derived at run time)."""
    if value:
        gat.add_mask(value)


# Outputs, summary, event -----------------------------------------------------------------------

def set_output(name: str, value: str) -> None:
    """A step output; outside Actions (local runs) there is nowhere to put it."""
    if os.environ.get("GITHUB_OUTPUT"):
        gat.set_output(name, value)


def write_summary(markdown: str) -> None:
    """Append to the job's step summary. ``markdown`` must be built with :func:`md` for every
    untrusted piece (the toolkit turns %0A back into newlines, which :func:`md` never emits)."""
    if len(markdown) > MAX_MARKDOWN_CHARS:
        markdown = markdown[:MAX_MARKDOWN_CHARS] + "\n\n(truncated)\n"
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        gat.append_job_summary(markdown)


def event_payload() -> dict:
    """The JSON payload of the event that started the workflow (``$GITHUB_EVENT_PATH``)."""
    if not os.environ.get("GITHUB_EVENT_PATH"):
        raise RuntimeError("GITHUB_EVENT_PATH is not set: this step runs inside GitHub Actions "
                           "(tests set it to a payload file)")
    return gat.EventPayload().get_payload()


def repository() -> str:
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    if "/" not in repo:
        raise RuntimeError("GITHUB_REPOSITORY is not set (owner/name)")
    return repo


def run_url() -> str | None:
    """The link to this workflow run, recorded in evaluation provenance."""
    server, repo, run = (os.environ.get(k) for k in
                         ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run:
        return f"{server}/{repo}/actions/runs/{run}"
    return None
