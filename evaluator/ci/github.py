"""The GitHub REST calls the score workflow makes, through github-action-toolkit's API client.

Only a handful of endpoints are used, each named in its method, so the calls can be read against
GitHub's REST documentation and served by a small fake API in the tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from github_action_toolkit import GitHubAPIClient
from github_action_toolkit.exceptions import APIError

from evaluator.ci.actions import repository

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
BOT_LOGIN = "github-actions[bot]"


class GitHubError(Exception):
    pass


class GitHub:
    def __init__(self, token: str | None = None, api_url: str | None = None,
                 repo: str | None = None) -> None:
        token = token or os.environ.get("GITHUB_TOKEN")
        if not token:
            raise GitHubError("GITHUB_TOKEN is not set: the score step needs the workflow's "
                              "token (pull-requests: write, actions: read)")
        self.repo = repo or repository()
        self.api = GitHubAPIClient(token=token,
                                   api_base_url=api_url or os.environ.get("GITHUB_API_URL"),
                                   max_retries=2, rate_limit_wait=False)

    # plumbing -------------------------------------------------------------------------------

    def _get(self, path: str, **params) -> object:
        try:
            return self.api.request("GET", path, params=params or None, timeout=60).json()
        except APIError as exc:
            raise GitHubError(f"GET {path}: {exc}") from None

    def _pages(self, path: str, **params) -> Iterator[dict]:
        url: str | None = path
        params = {"per_page": 100, **params}
        while url:
            try:
                response = self.api.request("GET", url, params=params, timeout=60)
            except APIError as exc:
                raise GitHubError(f"GET {path}: {exc}") from None
            body = response.json()
            yield from body["items"] if isinstance(body, dict) and "items" in body else body
            match = _NEXT_LINK.search(response.headers.get("Link", ""))
            url, params = (match.group(1), None) if match else (None, None)

    def _send(self, method: str, path: str, body: dict) -> dict:
        try:
            return self.api.request(method, path, json=body, timeout=60).json()
        except APIError as exc:
            raise GitHubError(f"{method} {path}: {exc}") from None

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

    def pull_request_files(self, number: int) -> list[dict]:
        """GET /repos/{repo}/pulls/{number}/files: path, status and blob sha of each file."""
        return list(self._pages(f"/repos/{self.repo}/pulls/{int(number)}/files"))

    def pulls_by_author_since(self, login: str, since: str) -> list[int]:
        """GET /search/issues: this author's PRs in this repository updated since ``since``
        (YYYY-MM-DD), for the scoring quota."""
        query = f"repo:{self.repo} is:pr author:{login} updated:>={since}"
        return [item["number"] for item in self._pages("/search/issues", q=query)]

    # comments -------------------------------------------------------------------------------

    def bot_comments(self, number: int) -> list[dict]:
        """GET /repos/{repo}/issues/{number}/comments, keeping the workflow bot's only (nobody
        else can write or edit those)."""
        return [c for c in self._pages(f"/repos/{self.repo}/issues/{int(number)}/comments")
                if c.get("user", {}).get("login") == BOT_LOGIN]

    def create_comment(self, number: int, body: str) -> dict:
        """POST /repos/{repo}/issues/{number}/comments"""
        return self._send("POST", f"/repos/{self.repo}/issues/{int(number)}/comments",
                          {"body": body})

    def update_comment(self, comment_id: int, body: str) -> dict:
        """PATCH /repos/{repo}/issues/comments/{id}"""
        return self._send("PATCH", f"/repos/{self.repo}/issues/comments/{int(comment_id)}",
                          {"body": body})

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
        try:
            response = self.api.request("GET", artifact["archive_download_url"], stream=True,
                                        timeout=300)
        except APIError as exc:
            raise GitHubError(f"downloading artifact {name!r}: {exc}") from None
        read = 0
        with open(target, "wb") as sink:
            for chunk in response.iter_content(1 << 20):
                read += len(chunk)
                if read > max_bytes:
                    raise GitHubError(f"artifact {name!r} is larger than {max_bytes} bytes")
                sink.write(chunk)
        return target
