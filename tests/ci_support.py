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
from dataclasses import dataclass, field
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
    """What GET /pulls/{n}/files reports: filename, status and blob sha of each changed file."""
    statuses = {"A": "added", "M": "modified", "D": "removed", "T": "modified"}
    files = []
    raw = git(repo, "diff", "--name-status", "--no-renames", f"{base}...{head}")
    for line in raw.splitlines():
        status, name = line.split("\t", 1)
        entry = {"filename": name, "status": statuses[status[0]]}
        entry["sha"] = (git(repo, "rev-parse", f"{head}:{name}") if status[0] != "D"
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

@dataclass
class FakeGitHub:
    """The endpoints evaluator.ci.github calls, with GitHub's shapes, pagination (Link
    headers) and a redirect for artifact downloads. ``requests`` logs every call."""

    pulls: dict[int, dict] = field(default_factory=dict)
    files: dict[int, list[dict]] = field(default_factory=dict)
    comments: dict[int, list[dict]] = field(default_factory=dict)
    artifacts: dict[int, list[dict]] = field(default_factory=dict)
    blobs: dict[int, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    page_size: int = 30
    url: str = ""
    _next_id: int = 1000

    def add_pull(self, number: int, author: str, head_sha: str, head_branch: str,
                 head_owner: str, files: list[dict], state: str = "open") -> dict:
        pr = {"number": number, "state": state, "user": {"login": author},
              "head": {"sha": head_sha, "ref": head_branch,
                       "repo": {"full_name": f"{head_owner}/leaderboard"},
                       "label": f"{head_owner}:{head_branch}"},
              "base": {"sha": "0" * 40, "ref": "main", "repo": {"full_name": REPO}}}
        self.pulls[number] = pr
        self.files[number] = files
        self.comments.setdefault(number, [])
        return pr

    def add_artifact(self, run_id: int, name: str, data: bytes) -> dict:
        self._next_id += 1
        artifact = {"id": self._next_id, "name": name, "size_in_bytes": len(data),
                    "expired": False,
                    "archive_download_url": f"{self.url}/repos/{REPO}/actions/artifacts/"
                                            f"{self._next_id}/zip"}
        self.artifacts.setdefault(run_id, []).append(artifact)
        self.blobs[self._next_id] = data
        return artifact

    def bot_comment(self, number: int, body: str) -> dict:
        self._next_id += 1
        comment = {"id": self._next_id, "user": {"login": BOT, "type": "Bot"}, "body": body}
        self.comments.setdefault(number, []).append(comment)
        return comment

    # routing ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, body: dict | None):
        prefix = f"/repos/{REPO}"
        self.requests.append((method, path))
        if path.startswith("/blob/"):
            return 200, self.blobs[int(path.split("/")[2])], None
        if path == "/search/issues":
            author = re.search(r"author:(\S+)", query["q"][0]).group(1)
            items = [{"number": n} for n, p in self.pulls.items() if p["user"]["login"] == author]
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
            return self._page(None, self.files[int(m.group(1))], path, query)
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(m.group(1))
            if method == "POST":
                self._next_id += 1
                comment = {"id": self._next_id, "user": {"login": BOT, "type": "Bot"},
                           "body": body["body"]}
                self.comments.setdefault(number, []).append(comment)
                return 201, comment, None
            return self._page(None, self.comments.get(number, []), path, query)
        if m := re.fullmatch(r"/issues/comments/(\d+)", rest):
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(m.group(1)) and method == "PATCH":
                        comment["body"] = body["body"]
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
