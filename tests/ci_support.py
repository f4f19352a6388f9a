"""A simulated GitHub Actions environment for the pipeline's entry points: the runner's files
(GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH), a git repository with a default branch
and a pull-request branch, and a small fake of the GitHub REST API served on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import subprocess
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

REPO = "lb-org/leaderboard"
TOKEN = "test-token-not-secret"
BOT = "github-actions[bot]"


# The runner's files --------------------------------------------------------------------------

@dataclass
class ActionsEnv:
    root: Path
    monkeypatch: object

    @property
    def output(self) -> Path:
        return self.root / "github_output"

    @property
    def summary(self) -> Path:
        return self.root / "step_summary.md"

    def set_event(self, name: str, payload: dict) -> None:
        path = self.root / "event.json"
        path.write_text(json.dumps(payload))
        self.monkeypatch.setenv("GITHUB_EVENT_NAME", name)
        self.monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))

    def outputs(self) -> dict[str, str]:
        """GITHUB_OUTPUT as the runner reads it (name<<DELIMITER / value / DELIMITER)."""
        text = self.output.read_text() if self.output.exists() else ""
        return {m.group(1): m.group(3) for m in
                re.finditer(r"^(.+?)<<(\S+)\n(.*?)\n\2\n", text, re.M | re.S)}

    def summary_text(self) -> str:
        return self.summary.read_text() if self.summary.exists() else ""


def actions_env(monkeypatch, root: Path, api_url: str | None = None) -> ActionsEnv:
    root.mkdir(parents=True, exist_ok=True)
    (root / "runner-temp").mkdir(exist_ok=True)
    env = ActionsEnv(root, monkeypatch)
    for name, value in {
        "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(env.output),
        "GITHUB_STEP_SUMMARY": str(env.summary), "GITHUB_REPOSITORY": REPO,
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "4242",
        "GITHUB_TOKEN": TOKEN, "RUNNER_TEMP": str(root / "runner-temp"),
        "GITHUB_API_URL": api_url or "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("LEADERBOARD_LABELS", "LEADERBOARD_LABELS_FORB", "LEADERBOARD_QUOTA",
                 "LEADERBOARD_QUOTA_HOURS", "LEADERBOARD_LABEL_KEY"):
        monkeypatch.delenv(name, raising=False)
    return env


def command_lines(text: str) -> list[str]:
    """Lines the runner would take as workflow commands, honouring stop-commands."""
    commands, stopped = [], None
    for line in text.splitlines():
        if stopped:
            if line == f"::{stopped}::":
                stopped = None
            continue
        if line.startswith("::stop-commands::"):
            stopped = line.split("::")[2]
            continue
        if line.startswith("::"):
            commands.append(line)
    return commands


# A git repository ----------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.org")
    git(path, "config", "user.name", "Test")
    git(path, "config", "commit.gpgsign", "false")
    return path


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def pr_files(repo: Path, base: str, head: str) -> list[dict]:
    """What GET /pulls/{n}/files and GET /compare/{base}...{head} report: filename, status and
    blob sha of each changed file, renames (as GitHub detects them) with previous_filename."""
    statuses = {"A": "added", "M": "modified", "D": "removed", "T": "modified",
                "R": "renamed", "C": "copied"}
    files = []
    raw = git(repo, "diff", "--name-status", "-M", f"{base}...{head}")
    for line in raw.splitlines():
        status, *names = line.split("\t")
        entry = {"filename": names[-1], "status": statuses[status[0]]}
        if status[0] in "RC":
            entry["previous_filename"] = names[0]
        entry["sha"] = (git(repo, "rev-parse", f"{head}:{names[-1]}") if status[0] != "D"
                        else "0" * 40)
        files.append(entry)
    return files


def zip_folder(folder: Path) -> bytes:
    """What actions/upload-artifact stores: the folder's files, relative to the folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


# A fake GitHub REST API ----------------------------------------------------------------------

def iso_now(offset: timedelta = timedelta(0)) -> str:
    return (datetime.now(timezone.utc) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fault:
    """A failure the fake answers with, ``times`` times, instead of (``landed``: after)
    handling a matching request."""

    method: str
    path: str
    status: int
    headers: dict = field(default_factory=dict)
    times: int = 1
    landed: bool = False


@dataclass
class FakeGitHub:
    """The endpoints evaluator.ci.github calls, with GitHub's shapes, pagination (Link
    headers) and a redirect for artifact downloads. ``requests`` logs every call (``queries``
    with its query string); ``faults`` and ``on_request`` let a test fail or change things
    at a chosen call. With ``git_repo`` set, the compare endpoint diffs real commits."""

    pulls: dict[int, dict] = field(default_factory=dict)
    files: dict[int, list[dict]] = field(default_factory=dict)
    comments: dict[int, list[dict]] = field(default_factory=dict)
    artifacts: dict[int, list[dict]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    queries: list[tuple[str, str, dict]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    on_request: Callable[[str, str], None] | None = None
    git_repo: Path | None = None
    file_list_cap: int = 3000     # GitHub: 3,000 for PR files, 300 for compare
    compare_cap: int = 300
    page_size: int = 30
    url: str = ""
    _next_id: int = 1000

    def add_pull(self, number: int, author: str, head_sha: str, head_branch: str,
                 head_owner: str, files: list[dict], state: str = "open",
                 base_sha: str = "0" * 40, updated_at: str | None = None) -> dict:
        pr = {"number": number, "state": state,
              "user": {"login": author, "id": self.user_id(author)},
              "head": {"sha": head_sha, "ref": head_branch,
                       "repo": {"full_name": f"{head_owner}/leaderboard"},
                       "label": f"{head_owner}:{head_branch}"},
              "base": {"sha": base_sha, "ref": "main", "repo": {"full_name": REPO}},
              "changed_files": len(files), "updated_at": updated_at or iso_now()}
        self.pulls[number] = pr
        self.files[number] = files
        self.comments.setdefault(number, [])
        return pr

    @staticmethod
    def user_id(login: str) -> int:
        """The account's numeric id (stable for a test's logins)."""
        return zlib.crc32(login.encode())

    def move_head(self, number: int, head_sha: str) -> None:
        """A push (or force-push) to the PR's branch: its head and file list change."""
        pr = self.pulls[number]
        pr["head"]["sha"] = head_sha
        self.files[number] = pr_files(self.git_repo, pr["base"]["sha"], head_sha)
        pr["changed_files"] = len(self.files[number])
        pr["updated_at"] = iso_now()

    def add_artifact(self, run_id: int, name: str, data: bytes) -> dict:
        self._next_id += 1
        artifact = {"id": self._next_id, "name": name, "size_in_bytes": len(data),
                    "expired": False,
                    "archive_download_url": f"{self.url}/repos/{REPO}/actions/artifacts/"
                                            f"{self._next_id}/zip"}
        self.artifacts.setdefault(run_id, []).append(artifact)
        self.blobs[self._next_id] = data
        return artifact

    def bot_comment(self, number: int, body: str, updated_at: str | None = None) -> dict:
        self._next_id += 1
        comment = {"id": self._next_id, "user": {"login": BOT, "type": "Bot"}, "body": body,
                   "updated_at": updated_at or iso_now()}
        self.comments.setdefault(number, []).append(comment)
        return comment

    # routing ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, body: dict | None):
        self.requests.append((method, path))
        self.queries.append((method, path, {k: v[0] for k, v in query.items()}))
        if self.on_request:
            self.on_request(method, path)
        fault = next((f for f in self.faults if f.times > 0 and f.method == method
                      and f.path == path), None)
        if fault is None:
            return self._route(method, path, query, body)
        fault.times -= 1
        if fault.landed:
            self._route(method, path, query, body)
        return fault.status, {"message": "fault injected by the test"}, fault.headers

    def _route(self, method: str, path: str, query: dict, body: dict | None):
        prefix = f"/repos/{REPO}"
        if path.startswith("/blob/"):
            return 200, self.blobs[int(path.split("/")[2])], None
        if path == "/search/issues":
            q = query["q"][0]
            author = re.search(r"author:(\S+)", q).group(1)
            since = re.search(r"updated:>=(\S+)", q)
            pulls = sorted(self.pulls.values(), key=lambda p: p["updated_at"], reverse=True)
            items = [{"number": p["number"]} for p in pulls if p["user"]["login"] == author
                     and (not since or p["updated_at"] >= since.group(1))]
            return self._page({"total_count": len(items)}, items, path, query, key="items")
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}, None
        rest = path[len(prefix):]
        if m := re.fullmatch(r"/pulls/(\d+)", rest):
            pr = self.pulls.get(int(m.group(1)))
            return (200, pr, None) if pr else (404, {"message": "Not Found"}, None)
        if rest == "/pulls":
            head = query.get("head", [""])[0]
            found = [p for p in self.pulls.values()
                     if p["head"]["label"] == head and p["state"] == query["state"][0]]
            return self._page(None, found, path, query)
        if m := re.fullmatch(r"/commits/(\w+)/pulls", rest):
            found = [p for p in self.pulls.values() if p["head"]["sha"] == m.group(1)]
            return self._page(None, found, path, query)
        if m := re.fullmatch(r"/pulls/(\d+)/files", rest):
            listed = self.files[int(m.group(1))][:self.file_list_cap]
            return self._page(None, listed, path, query)
        if m := re.fullmatch(r"/compare/(\w+)\.\.\.(\w+)", rest):
            files = pr_files(self.git_repo, m.group(1), m.group(2))[:self.compare_cap]
            return 200, {"status": "ahead", "files": files}, None
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(m.group(1))
            if method == "POST":
                comment = self.bot_comment(number, body["body"])
                return 201, comment, None
            since = query.get("since", [""])[0]
            listed = [c for c in self.comments.get(number, []) if c["updated_at"] >= since]
            return self._page(None, listed, path, query)
        if m := re.fullmatch(r"/issues/comments/(\d+)", rest):
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(m.group(1)) and method == "PATCH":
                        comment["body"] = body["body"]
                        comment["updated_at"] = iso_now()
                        return 200, comment, None
            return 404, {"message": "Not Found"}, None
        if m := re.fullmatch(r"/actions/runs/(\d+)/artifacts", rest):
            listed = self.artifacts.get(int(m.group(1)), [])
            return 200, {"total_count": len(listed), "artifacts": listed}, None
        if m := re.fullmatch(r"/actions/artifacts/(\d+)/zip", rest):
            # GitHub answers with a redirect to short-lived blob storage.
            return 302, None, {"Location": f"{self.url}/blob/{m.group(1)}"}
        return 404, {"message": "Not Found"}, None

    def _page(self, wrapper, items, path, query, key=None):
        per_page = min(int(query.get("per_page", ["30"])[0]), self.page_size)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            params = {k: v[0] for k, v in query.items() if k != "page"}
            params["page"] = str(page + 1)
            from urllib.parse import urlencode
            headers["Link"] = f'<{self.url}{path}?{urlencode(params)}>; rel="next"'
        body = {**wrapper, key: chunk} if key else chunk
        return 200, body, headers


def serve(fake: FakeGitHub):
    """Start the fake API on 127.0.0.1; returns the server (call .shutdown())."""

    class Handler(BaseHTTPRequestHandler):
        def _respond(self, method):
            parsed = urlparse(self.path)
            if not parsed.path.startswith("/blob/") and \
                    self.headers.get("Authorization") != f"token {TOKEN}":
                self._send(401, {"message": "Bad credentials"}, None)
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload, headers = fake.handle(method, parsed.path,
                                                   parse_qs(parsed.query), body)
            self._send(status, payload, headers)

        def _send(self, status, payload, headers):
            data = payload if isinstance(payload, bytes) else (
                b"" if payload is None else json.dumps(payload).encode())
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._respond("GET")

        def do_POST(self):
            self._respond("POST")

        def do_PATCH(self):
            self._respond("PATCH")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
