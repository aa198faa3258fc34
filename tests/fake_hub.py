"""A small local fake of the Hugging Face Hub HTTP API, bound to 127.0.0.1, for offline tests.

It implements just what ``HfApi.create_repo``, ``HfApi.upload_folder`` / ``create_commit``,
``hf_hub_download`` / ``snapshot_download`` and ``transformers``' ``from_pretrained`` need
(huggingface_hub 2.4), with repositories kept in memory:

=======================================================  ======================================
``POST /api/repos/create``                               create a repo (409 if it exists)
``POST /api/validate-yaml``                              README metadata check (YAML must parse)
``POST /api/{type}s/{repo}/preupload/{rev}``             every file is answered ``"regular"``
``POST /api/{type}s/{repo}/commit/{rev}``                NDJSON commit: ``header``, ``file``, ``deletedFile``
``GET  /api/{type}s/{repo}[/revision/{rev}]``            repo info with ``sha`` and ``siblings``
``GET  /api/{type}s/{repo}/tree/{rev}[/{path}]``         file listing
``HEAD|GET /{repo}/resolve/{rev}/{path}``                file content, ``ETag``, ``X-Repo-Commit``, ...
=======================================================  ======================================

Files are always committed as *regular* (base64 inside the commit payload): the real Hub would route
large binaries through Xet/LFS storage, which this fake does not emulate. Errors carry the
``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) that
``huggingface_hub`` turns into its typed exceptions. Every request is logged in ``FakeHub.requests``;
anything not implemented answers 501 so that tests notice.

Run standalone: ``python tests/fake_hub.py --port 8999`` (Ctrl-C to stop).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_ID = r"(?P<repo>[\w.\-]+/[\w.\-]+|[\w.\-]+)"
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob, which the Hub uses as the ETag of regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    """One repository: its files at the head of ``main`` and the commit history (shas)."""

    repo_id: str
    repo_type: str
    private: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        return self.commits[-1]

    def commit(self, summary: str, files: dict[str, bytes | None]) -> str:
        """Apply additions (bytes) and deletions (None); return the new commit sha."""
        for path, content in files.items():
            if content is None:
                self.files.pop(path, None)
            else:
                self.files[path] = content
        digest = hashlib.sha1(summary.encode())
        digest.update((self.commits[-1] if self.commits else "").encode())
        for path in sorted(self.files):
            digest.update(path.encode() + git_blob_sha1(self.files[path]).encode())
        sha = digest.hexdigest()
        self.commits.append(sha)
        self.snapshots[sha] = dict(self.files)
        return sha

    def at(self, revision: str) -> dict[str, bytes] | None:
        """Files at a revision (``main`` or a commit sha), or None if unknown."""
        if revision in ("main", self.sha if self.commits else ""):
            return self.files
        return self.snapshots.get(revision)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------------
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return  # quiet; requests are recorded in FakeHub.requests

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers=headers)

    def _authorised(self) -> bool:
        token = self.server.hub.token
        if token is None:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {token}"

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.server.hub.requests.append((self.command, self.path))
        for method, pattern, handler in ROUTES:
            if self.command in method:
                match = re.fullmatch(pattern, path)
                if match:
                    try:
                        handler(self, query=query, **match.groupdict())
                    except Exception as err:  # a bug in the fake: say so instead of hanging the client
                        self._error(500, f"fake hub error: {err!r}")
                    return
        self._error(501, f"fake hub: {self.command} {path} is not implemented")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch  # noqa: N815

    # -- helpers ---------------------------------------------------------------------------------
    def _repo(self, kind: str, repo: str) -> Repo | None:
        found = self.server.hub.repos.get((TYPES.get(kind, kind), repo))
        if found is None or (found.private and not self._authorised()):
            self._error(404, f"Repository Not Found for url: {self.path}.", "RepoNotFound")
            return None
        return found

    def _repo_info(self, repo: Repo, files: dict[str, bytes], sha: str) -> dict:
        return {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "siblings": [{"rfilename": name, "size": len(data)} for name, data in sorted(files.items())],
        }

    # -- routes ---------------------------------------------------------------------------------
    def create_repo(self, query: dict) -> None:
        if not self._authorised():
            self._error(401, "Invalid credentials in Authorization header")
            return
        payload = json.loads(self._body() or b"{}")
        name, org = payload["name"], payload.get("organization")
        repo_id = f"{org}/{name}" if org else f"user/{name}"
        repo_type = payload.get("type") or "model"
        key = (repo_type, repo_id)
        if key in self.server.hub.repos:
            self._error(409, "You already created this model repo")
            return
        repo = Repo(repo_id, repo_type, private=bool(payload.get("private")))
        repo.commit(
            "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        )
        self.server.hub.repos[key] = repo
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        self._json(200, {"url": f"{self.server.hub.endpoint}/{prefix}{repo_id}", "name": repo_id})

    def validate_yaml(self, query: dict) -> None:
        content = json.loads(self._body())["content"]
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            self._json(400, {"errors": [{"message": str(err)}]})
            return
        self._json(200, {"errors": [], "warnings": []})

    def preupload(self, query: dict, kind: str, repo: str, rev: str) -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        files = json.loads(self._body())["files"]
        current = found.files
        answer = []
        for entry in files:
            old = current.get(entry["path"])
            answer.append(
                {
                    "path": entry["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(old) if old is not None else None,
                }
            )
        self._json(200, {"files": answer, "commitOid": found.sha})

    def commit(self, query: dict, kind: str, repo: str, rev: str) -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        if not self._authorised():
            self._error(401, "Invalid credentials in Authorization header")
            return
        if rev != "main":
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return
        summary, changes = "", {}
        for line in self._body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise ValueError(f"unsupported encoding {value.get('encoding')}")
                changes[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                changes[value["path"]] = None
            else:  # lfsFile, deletedFolder, ...: not emulated
                self._error(422, f"fake hub: commit operation {key!r} is not supported")
                return
        sha = found.commit(summary, changes)
        prefix = "" if found.repo_type == "model" else f"{found.repo_type}s/"
        self._json(
            200,
            {
                "commitUrl": f"{self.server.hub.endpoint}/{prefix}{found.repo_id}/commit/{sha}",
                "commitOid": sha,
                "pullRequestUrl": None,
            },
        )

    def info(self, query: dict, kind: str, repo: str, rev: str | None = None) -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        files = found.at(rev or "main")
        if files is None:
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return
        sha = found.sha if (rev or "main") == "main" else rev
        self._json(200, self._repo_info(found, files, sha))

    def tree(self, query: dict, kind: str, repo: str, rev: str, sub: str | None = None) -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        files = found.at(rev)
        if files is None:
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return
        prefix = f"{sub.strip('/')}/" if sub else ""
        entries = [
            {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
            for name, data in sorted(files.items())
            if name.startswith(prefix)
        ]
        self._json(200, entries)

    def resolve(self, query: dict, repo: str, rev: str, file: str, kind: str = "models") -> None:
        found = self._repo(kind, repo)
        if found is None:
            return
        files = found.at(rev)
        if files is None:
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return
        sha = found.sha if rev == "main" else rev
        if file not in files:
            self._send(
                404,
                b"Entry not found",
                "text/plain",
                {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", "X-Repo-Commit": sha},
            )
            return
        content = files[file]
        headers = {"ETag": f'"{git_blob_sha1(content)}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if byte_range and self.command == "GET":
            start = int(byte_range.group(1))
            end = int(byte_range.group(2)) if byte_range.group(2) else len(content) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            self._send(206, content[start : end + 1], "application/octet-stream", headers)
            return
        self._send(200, content, "application/octet-stream", headers)


_KIND = r"(?P<kind>models|datasets|spaces)"
ROUTES = [
    (("POST",), r"/api/repos/create", _Handler.create_repo),
    (("POST",), r"/api/validate-yaml", _Handler.validate_yaml),
    (("POST",), rf"/api/{_KIND}/{REPO_ID}/preupload/(?P<rev>[^/]+)", _Handler.preupload),
    (("POST",), rf"/api/{_KIND}/{REPO_ID}/commit/(?P<rev>[^/]+)", _Handler.commit),
    (("GET",), rf"/api/{_KIND}/{REPO_ID}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", _Handler.tree),
    (("GET",), rf"/api/{_KIND}/{REPO_ID}/revision/(?P<rev>[^/]+)", _Handler.info),
    (("GET",), rf"/api/{_KIND}/{REPO_ID}", _Handler.info),
    (
        ("GET", "HEAD"),
        rf"/(?P<kind>datasets|spaces)/{REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<file>.+)",
        _Handler.resolve,
    ),
    (("GET", "HEAD"), rf"/{REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", _Handler.resolve),
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class FakeHub:
    """The fake Hub server; use as a context manager or call ``start()`` / ``stop()``.

    Args:
        host: address to bind (loopback by default).
        port: port to bind (0 = a free one).
        token: when set, write operations require ``Authorization: Bearer <token>`` and private repos
            are hidden from other callers.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._server = _Server((host, port), _Handler)
        self._server.hub = self
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """The files at the head of ``main`` of a repo (KeyError if it does not exist)."""
        return self.repos[(repo_type, repo_id)].files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    hub = FakeHub(args.host, args.port, args.token)
    print(f"fake hub at {hub.endpoint}", flush=True)
    hub._server.serve_forever()


if __name__ == "__main__":
    main()
