"""A local stand-in for the Hugging Face Hub's file endpoint, with fault injection.

``hf_hub_download`` (huggingface_hub 2.x) talks to ``{endpoint}/{org}/{repo}/resolve/{revision}/{filename}``:

- ``HEAD`` first: it needs ``X-Repo-Commit`` (40 hex digits; the snapshot folder is named
  after it), an ``ETag`` (the cache blob is named after it; ``X-Linked-Etag`` wins when
  present) and the size (``X-Linked-Size`` or ``Content-Length``), which ``GET`` is checked
  against. Errors are told apart by ``X-Error-Code``: ``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``.
- ``GET`` then, possibly with ``Range: bytes=N-`` to resume after a dropped connection.

Like the Hub, large files (``.safetensors``) are served as LFS objects: their ETag is the
sha256 of the content; other files use the git blob sha1. Files are read from
``root/{org}/{repo}/`` at request time; a repository answers to the revision ``main`` and
to the hash of any commit it has served (a sha1 of its files: editing a file makes a new
commit and moves ``main``, older commits stay downloadable, as on the Hub).

Fault injection, per file name, on ``GET`` only (``HEAD`` keeps announcing the genuine ETag
and size, as a flaky CDN would):

- ``server.corrupt``: the body has the right length but some bytes flipped;
- ``server.truncate``: the headers announce the full length, the connection drops after half
  of the file, on every attempt (resumed requests included).

``server.requests`` logs ``(method, path)`` of every request; ``server.after_request``, if
set, is called with the same pair once the request is resolved and before its response is
sent (to change the repository between two requests without racing the client).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import types
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob (what the Hub returns as ETag of a non-LFS file)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubServer:
    """Serve ``root/{org}/{repo}/*`` on ``http://127.0.0.1:{port}`` the way the Hub resolves files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.after_request: Callable[[str, str], None] | None = None
        self._history: dict[tuple[str, str], dict[str, bytes]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving (idempotent); later requests are refused by the OS."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    # ----------------------------------------------------------- repository view -----
    def snapshot(self, repo_id: str) -> tuple[str, dict[str, bytes]]:
        """The current commit hash of ``org/name`` and its files; every commit seen stays servable."""
        files = {p.name: p.read_bytes() for p in (self.root / repo_id).iterdir() if p.is_file()}
        digest = hashlib.sha1()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        commit = digest.hexdigest()
        with self._lock:
            self._history[(repo_id, commit)] = files
        return commit, files

    def commit(self, repo_id: str) -> str:
        """The commit hash the branch ``main`` of ``org/name`` currently points to."""
        return self.snapshot(repo_id)[0]

    def count(self, method: str | None = None, filename: str | None = None) -> int:
        """How many requests were logged, optionally only those of ``method`` for ``filename``."""
        with self._lock:
            return sum(
                (method is None or m == method) and (filename is None or p.endswith("/" + filename))
                for m, p in self.requests
            )

    def log(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def resolve(self, path: str) -> tuple[int, dict[str, str], bytes | None]:
        """Status, headers and genuine content for a ``/{org}/{repo}/resolve/{rev}/{file}`` path."""
        parts = [unquote(p) for p in urlsplit(path).path.split("/")]
        if len(parts) < 6 or parts[3] != "resolve":
            return 404, {"X-Error-Code": "RepoNotFound"}, None
        repo_id, revision, filename = f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:])
        folder = self.root / repo_id
        if not folder.is_dir() or ".." in parts:
            return 404, {"X-Error-Code": "RepoNotFound"}, None
        commit, files = self.snapshot(repo_id)
        if revision != "main":
            commit, files = revision, self._history.get((repo_id, revision))
            if files is None:
                return 404, {"X-Error-Code": "RevisionNotFound"}, None
        content = files.get(filename)
        if content is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, None
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if Path(filename).suffix in LFS_SUFFIXES:
            sha256 = hashlib.sha256(content).hexdigest()
            headers |= {"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"'}
            headers["X-Linked-Size"] = str(len(content))
        else:
            headers["ETag"] = f'"{git_blob_sha1(content)}"'
        return 200, headers, content


def _make_handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a truncated body ends with a closed socket.
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args) -> None:  # keep pytest output quiet
            pass

        def _answer(self, with_body: bool) -> None:
            server.log(self.command, self.path)
            status, headers, content = server.resolve(self.path)
            if server.after_request is not None:
                # Before the response goes out, so the client cannot race the change.
                server.after_request(self.command, self.path)
            if content is None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            filename = Path(urlsplit(self.path).path).name
            start = _range_start(self.headers.get("Range"))
            body = content[start:]
            if with_body and filename in server.corrupt:
                body = bytes(b ^ 0xFF if i % 97 == 0 else b for i, b in enumerate(body))
            if with_body and filename in server.truncate:
                # The connection always dies at the same byte of the file, resumes included.
                body = body[: max(0, len(content) // 2 - start)]
            self.send_response(206 if start else 200)
            for key, value in headers.items():
                self.send_header(key, value)
            if start:
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}"
                )
            self.send_header("Content-Length", str(len(content) - start))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

    return Handler


def _range_start(header: str | None) -> int:
    if not header or not header.startswith("bytes="):
        return 0
    start = header[len("bytes=") :].split("-", 1)[0]
    return int(start) if start.isdigit() else 0


def serve_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """Start a :class:`HubServer` on ``tmp_path/hub`` and point huggingface_hub at it.

    Use from a fixture that calls ``server.stop()`` afterwards.

    huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and its cache folders into
    ``huggingface_hub.constants`` once, at import, and builds its URL template from the
    endpoint there, so setting the environment inside a test is too late for that module:

    - ``HF_ENDPOINT`` is set in the environment only: ``hdrzoo.hub`` reads it on every call
      and passes it as ``endpoint=``. ``constants.ENDPOINT`` is deliberately *not* patched, so
      a code path that ignored ``HF_ENDPOINT`` would try the real Hub and fail (there is no
      network here) instead of passing by luck;
    - ``HF_HUB_OFFLINE`` is forced off, in the environment and in the constant, so a test
      starts online whatever the caller's shell says (see :func:`set_offline`);
    - the default cache (``HF_HOME``, ``constants.HF_HUB_CACHE``) moves under ``tmp_path``, so
      nothing touches the user's cache even where a test omits ``cache_dir``; ``HF_TOKEN`` is
      removed so no credential is ever sent to the test server;
    - retries do not sleep (:func:`skip_retry_sleeps`).
    """
    import huggingface_hub.constants as hf_constants

    (tmp_path / "hub").mkdir()
    server = HubServer(tmp_path / "hub")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    # Keep any HTTP(S)_PROXY of the caller's environment away from 127.0.0.1.
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    set_offline(monkeypatch, False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    skip_retry_sleeps(monkeypatch)
    return server


def skip_retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make huggingface_hub's retry back-off instant (it waits 1 + 2 + 4 + 8 + 8 s on a dead host).

    Its modules call ``time.sleep`` through their module-level ``time``; that name is replaced
    by a copy of the ``time`` module whose ``sleep`` returns at once. ``raising=False``: if a
    future version drops the name, the tests only get slower.
    """
    import huggingface_hub.file_download as file_download
    import huggingface_hub.utils._http as hub_http

    instant = types.SimpleNamespace(**{**vars(time), "sleep": lambda seconds: None})
    for module in (file_download, hub_http):
        monkeypatch.setattr(module, "time", instant, raising=False)


def set_offline(monkeypatch: pytest.MonkeyPatch, offline: bool = True) -> None:
    """Switch huggingface_hub's offline mode the way a user does (env) and as imported (constant)."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", offline)
