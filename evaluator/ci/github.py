"""The GitHub REST calls the score workflow makes, through github-action-toolkit's API client.

Only a handful of endpoints are used, each named in its method, so the calls can be read against
GitHub's REST documentation and served by a small fake API in the tests.

Every failure of a call (an error status, the rate limit, retries used up, no connection, a body
that is not JSON) becomes a :class:`GitHubError` with a one-line message in :func:`_api_errors`,
the one place that knows what the toolkit and ``requests`` raise.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from urllib.parse import urlsplit

import requests
from github_action_toolkit import GitHubAPIClient
from github_action_toolkit.exceptions import APIError, GitHubActionError, RateLimitError

from evaluator.ci.actions import repository

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
BOT_LOGIN = "github-actions[bot]"
# GET /compare lists at most this many changed files and says nothing when it stops there, so
# a list this long may be incomplete (the PR files API stops at 3,000 the same way).
COMPARE_FILE_LIMIT = 300


class GitHubError(Exception):
    pass


def iso(moment: dt.datetime) -> str:
    """The timestamp format of the API's ``since`` parameters and search qualifiers."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _failure(exc: Exception) -> str:
    """What went wrong, in one line. Never the URL: a redirect to blob storage is signed."""
    if isinstance(exc, RateLimitError):
        reset = (f" until {dt.datetime.fromtimestamp(exc.reset_time, dt.timezone.utc):%H:%M} UTC"
                 if exc.reset_time else "")
        return f"the API rate limit is used up{reset}; re-run the workflow later"
    if isinstance(exc, APIError):
        return " ".join(str(exc).split())[:300]
    if isinstance(exc, requests.exceptions.RetryError):
        return "the API kept answering with server errors, also when retried"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the API did not answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "could not connect to the API"
    if isinstance(exc, ValueError):
        return "the API's answer is not JSON"
    return f"the request failed ({type(exc).__name__})"


@contextmanager
def _api_errors(method: str, path: str) -> Iterator[None]:
    """Turn whatever a call raises into a GitHubError naming the endpoint (without query)."""
    try:
        yield
    except (GitHubActionError, requests.exceptions.RequestException, ValueError) as exc:
        raise GitHubError(f"{method} {urlsplit(path).path}: {_failure(exc)}") from None


class GitHub:
    def __init__(self, token: str | None = None, api_url: str | None = None,
                 repo: str | None = None) -> None:
        token = token or os.environ.get("GITHUB_TOKEN")
        if not token:
            raise GitHubError("GITHUB_TOKEN is not set: the score step needs the workflow's "
                              "token (pull-requests: write, actions: read)")
        self.repo = repo or repository()
        api_url = api_url or os.environ.get("GITHUB_API_URL")
        self.api = GitHubAPIClient(token=token, api_base_url=api_url, max_retries=2,
                                   rate_limit_wait=False)
        # The toolkit retries POST after a server error; a POST that did land then lands twice.
        # Creating goes through a client that never retries, and create_marked_comment looks
        # for the comment before trying again.
        self.api_once = GitHubAPIClient(token=token, api_base_url=api_url, max_retries=0,
                                        rate_limit_wait=False)

    # plumbing -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, once: bool = False,
                 **kwargs) -> requests.Response:
        with _api_errors(method, path):
            client = self.api_once if once else self.api
            return client.request(method, path, timeout=kwargs.pop("timeout", 60), **kwargs)

    def _json(self, method: str, path: str, once: bool = False, **kwargs) -> object:
        response = self._request(method, path, once, **kwargs)
        with _api_errors(method, path):
            return response.json()

    def _get(self, path: str, **params) -> object:
        return self._json("GET", path, params=params or None)

    def _pages(self, path: str, **params) -> Iterator[dict]:
        url: str | None = path
        params = {"per_page": 100, **params}
        while url:
            response = self._request("GET", url, params=params)
            with _api_errors("GET", path):
                body = response.json()
            yield from body["items"] if isinstance(body, dict) and "items" in body else body
            match = _NEXT_LINK.search(response.headers.get("Link", ""))
            url, params = (match.group(1), None) if match else (None, None)

    # pull requests --------------------------------------------------------------------------

    def pull_request(self, number: int) -> dict:
        """GET /repos/{repo}/pulls/{number}"""
        return self._get(f"/repos/{self.repo}/pulls/{int(number)}")

    def open_pulls_from(self, head_owner: str, head_branch: str) -> list[dict]:
        """GET /repos/{repo}/pulls?state=open&head={owner}:{branch}; works for forks, whose
        runs come with an empty ``pull_requests`` list."""
        return list(self._pages(f"/repos/{self.repo}/pulls", state="open",
                                head=f"{head_owner}:{head_branch}"))

    def pulls_with_commit(self, sha: str) -> list[dict]:
        """GET /repos/{repo}/commits/{sha}/pulls"""
        return list(self._pages(f"/repos/{self.repo}/commits/{sha}/pulls"))

    def changed_files(self, base: str, head: str) -> list[dict]:
        """GET /repos/{repo}/compare/{base}...{head}: the files ``head`` changes since its merge
        base with ``base`` (filename, status, blob sha, previous_filename for renames), pinned
        to those exact commits. At most COMPARE_FILE_LIMIT are listed."""
        body = self._get(f"/repos/{self.repo}/compare/{base}...{head}")
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise GitHubError(f"GET /repos/{self.repo}/compare: no file list in the answer")
        return files

    def pulls_by_author_since(self, login: str, since: dt.datetime, most: int) -> list[int]:
        """GET /search/issues: this author's PRs in this repository updated since ``since``,
        newest first, for the scoring quota; stops after ``most`` + 1, so a caller can tell
        that there are more than ``most``."""
        query = f"repo:{self.repo} is:pr author:{login} updated:>={iso(since)}"
        found = self._pages("/search/issues", q=query, sort="updated", order="desc")
        return [item["number"] for item in islice(found, most + 1)]

    # comments -------------------------------------------------------------------------------

    def bot_comments(self, number: int, since: dt.datetime | None = None) -> list[dict]:
        """GET /repos/{repo}/issues/{number}/comments[?since=], keeping the workflow bot's
        only (nobody else can write or edit those). ``since``: only comments updated since."""
        params = {"since": iso(since)} if since else {}
        return [c for c in self._pages(f"/repos/{self.repo}/issues/{int(number)}/comments",
                                       **params)
                if c.get("user", {}).get("login") == BOT_LOGIN]

    def create_comment(self, number: int, body: str) -> dict:
        """POST /repos/{repo}/issues/{number}/comments (never retried: see __init__)"""
        return self._json("POST", f"/repos/{self.repo}/issues/{int(number)}/comments",
                          once=True, json={"body": body})

    def update_comment(self, comment_id: int, body: str) -> dict:
        """PATCH /repos/{repo}/issues/comments/{id}"""
        return self._json("PATCH", f"/repos/{self.repo}/issues/comments/{int(comment_id)}",
                          json={"body": body})

    def _marked_comment(self, number: int, marker: str) -> dict | None:
        return next((c for c in self.bot_comments(number) if marker in c.get("body", "")), None)

    def upsert_marked_comment(self, number: int, marker: str, body: str) -> None:
        """Update the bot's comment that holds ``marker`` (in ``body`` too), or create it: one
        comment per pull request, also when a create fails after it landed."""
        existing = self._marked_comment(number, marker)
        if existing is None:
            try:
                self.create_comment(number, body)
                return
            except GitHubError:
                # A server error does not say whether the comment was made: look again.
                existing = self._marked_comment(number, marker)
                if existing is None:
                    raise
        self.update_comment(existing["id"], body)

    # artifacts ------------------------------------------------------------------------------

    def download_artifact(self, run_id: int, name: str, target: Path, max_bytes: int) -> Path:
        """GET /repos/{repo}/actions/runs/{id}/artifacts, then the artifact's zip, streamed
        with a size cap (the size the API states is checked first, then the bytes read)."""
        listing = self._get(f"/repos/{self.repo}/actions/runs/{int(run_id)}/artifacts",
                            name=name)
        found = [a for a in listing.get("artifacts", []) if a.get("name") == name]
        if not found:
            raise GitHubError(f"run {run_id} uploaded no artifact called {name!r}")
        artifact = found[0]
        if artifact.get("expired"):
            raise GitHubError(f"artifact {name!r} of run {run_id} has expired")
        if int(artifact.get("size_in_bytes", 0)) > max_bytes:
            raise GitHubError(f"artifact {name!r} is larger than {max_bytes} bytes")
        url = artifact["archive_download_url"]
        response = self._request("GET", url, stream=True, timeout=300)
        read = 0
        with open(target, "wb") as sink, _api_errors("GET", url):
            for chunk in response.iter_content(1 << 20):
                read += len(chunk)
                if read > max_bytes:
                    raise GitHubError(f"artifact {name!r} is larger than {max_bytes} bytes")
                sink.write(chunk)
        return target
