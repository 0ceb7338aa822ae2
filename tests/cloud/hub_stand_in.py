"""A stand-in for the Hugging Face hub on 127.0.0.1, for tests of the Cloud path (no bundled packages).

It speaks the part of the hub's HTTP API that ``huggingface_hub`` uses to download a model:

* ``GET /api/models/{repo_id}[/revision/{rev}]``: the repository's commit and files, with sizes (``?blobs=true``);
* ``GET /api/models/{repo_id}/tree/{rev}``: its files (transformers lists them when it loads a hub id);
* ``HEAD``/``GET /{repo_id}/resolve/{rev}/{filename}``: the file, with ``ETag`` and ``X-Linked-Etag`` (sha256),
  ``X-Repo-Commit``, ``Content-Length`` and ``X-Linked-Size``; 404 with ``X-Error-Code: EntryNotFound`` (or
  ``RepoNotFound``) for what is not there.

``mode`` can be changed while it runs, to make the hub fail:

* ``"ok"``: serves every file (at most ``rate`` bytes per second when set, so a test can watch the progress);
* ``"slow"``: answers every request only after ``slow_s`` seconds (past the client's timeout);
* ``"truncated"``: sends half of any file over 1 MB and closes the connection (fewer bytes than Content-Length);
  a request that resumes it (``Range: bytes=N-``) gets the rest (huggingface_hub resumes a cut transfer, and
  retries for ever while each try brings bytes, so a hub that always cut would hang the client);
* ``"cut"``: serves the ``*.safetensors`` files cut in half, with a matching size and ETag (a damaged upload).

"Unreachable" is :meth:`HubStandIn.stop` (nothing listens on the port any more); :meth:`start` brings it back
on the same port.  Run as a script it serves a repos folder: ``python hub_stand_in.py FOLDER PORT``.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socketserver
import sys
import threading
import time
import urllib.parse
from pathlib import Path

_BIG = 1 << 20  # bytes: "truncated" cuts files larger than this


def repo_commit(repo_id: str) -> str:
    """A fixed 40-hex commit id per repository."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


class _Repo:
    """One repository: file name -> path on disk; sha256s computed once."""

    def __init__(self, repo_id: str, files: dict[str, Path]) -> None:
        self.repo_id, self.files, self.commit = repo_id, files, repo_commit(repo_id)
        self._sha: dict[tuple[str, bool], str] = {}

    def body(self, name: str, cut: bool) -> bytes:
        data = self.files[name].read_bytes()
        return data[: len(data) // 2] if cut and name.endswith(".safetensors") else data

    def sha256(self, name: str, cut: bool) -> str:
        key = (name, cut and name.endswith(".safetensors"))
        if key not in self._sha:
            self._sha[key] = hashlib.sha256(self.body(name, cut)).hexdigest()
        return self._sha[key]

    def size(self, name: str, cut: bool) -> int:
        full = self.files[name].stat().st_size
        return full // 2 if cut and name.endswith(".safetensors") else full


class HubStandIn:
    """The stand-in hub; ``url`` goes into ``HF_ENDPOINT``; ``requests`` logs each ``(method, path, range)``."""

    def __init__(self, repos: dict[str, dict[str, Path]], port: int = 0, slow_s: float = 5.0) -> None:
        self.repos = {rid: _Repo(rid, files) for rid, files in repos.items()}
        self.mode = "ok"
        self.rate: float | None = None  # bytes per second in mode "ok" (None: as fast as it goes)
        self.slow_s = slow_s
        self.requests: list[tuple[str, str, str | None]] = []
        self.port = port
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubStandIn:
        hub = self

        class Handler(_Handler):
            stand_in = hub

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="hub-stand-in", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(http.server.BaseHTTPRequestHandler):
    stand_in: HubStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: the test reads stand_in.requests instead
        return None

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        hub = self.stand_in
        path = urllib.parse.urlsplit(self.path).path
        hub.requests.append((self.command, path, self.headers.get("Range")))
        self.head = head  # a HEAD answer has headers only (a body would corrupt the kept-alive connection)
        if hub.mode == "slow":
            time.sleep(hub.slow_s)
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"]:
            return self._model_info(parts[2:])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._file("/".join(parts[:2]), "/".join(parts[4:]), head)
        return self._error(404, "RepoNotFound", "not a path of this stand-in")

    def _model_info(self, rest: list[str]) -> None:
        repo = self.stand_in.repos.get("/".join(rest[:2]))
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        cut = self.stand_in.mode == "cut"
        if len(rest) > 3 and rest[2] == "tree":  # list_repo_tree: one page, top-level files only
            if len(rest) > 4:  # a subfolder: there are none
                return self._error(404, "EntryNotFound", "no such folder", commit=repo.commit)
            tree = [{"type": "file", "path": name, "size": repo.size(name, cut), "oid": repo.sha256(name, cut)[:40]}
                    for name in sorted(repo.files)]
            return self._json(tree)
        siblings = [{"rfilename": name, "size": repo.size(name, cut)} for name in sorted(repo.files)]
        self._json({"id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit, "private": False,
                    "disabled": False, "gated": False, "tags": [], "siblings": siblings})

    def _json(self, value) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self.head:
            self.wfile.write(body)

    def _file(self, repo_id: str, name: str, head: bool) -> None:
        hub = self.stand_in
        repo = hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if name not in repo.files:
            return self._error(404, "EntryNotFound", f"{name} does not exist", commit=repo.commit)
        cut = hub.mode == "cut"
        size, etag = repo.size(name, cut), repo.sha256(name, cut)
        start = _range_start(self.headers.get("Range"), size) if not head else 0
        truncate = hub.mode == "truncated" and size > _BIG and start == 0 and not head
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", repo.commit)
        if name.endswith(".safetensors"):  # stored in LFS on the hub
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(size))
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        data = repo.body(name, cut)[start:]
        if truncate:
            self.wfile.write(data[: size // 2])
            self.close_connection = True
            return
        step = 1 << 20
        for at in range(0, len(data), step):
            self.wfile.write(data[at:at + step])
            if hub.rate:
                time.sleep(step / hub.rate)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if not self.head:
            self.wfile.write(body)


def _range_start(header: str | None, size: int) -> int:
    """The first byte asked for by ``Range: bytes=N-`` (0 without one, or for one this stand-in does not serve)."""
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return 0
    try:
        start = int(header[len("bytes="):-1])
    except ValueError:
        return 0
    return start if 0 < start < size else 0


def folder_repos(root: Path) -> dict[str, dict[str, Path]]:
    """``root/<org>/<name>/<files>`` as repositories (top-level files of each)."""
    return {f"{org.name}/{repo.name}": {p.name: p for p in repo.iterdir() if p.is_file()}
            for org in sorted(root.iterdir()) if org.is_dir() for repo in sorted(org.iterdir()) if repo.is_dir()}


if __name__ == "__main__":
    hub = HubStandIn(folder_repos(Path(sys.argv[1])), port=int(sys.argv[2])).start()
    print(hub.url, flush=True)
    threading.Event().wait()
