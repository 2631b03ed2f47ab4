"""Fixtures for the data tests: a local HTTP server on 127.0.0.1 (the fixture files are in datafiles.py)."""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field

import pytest


@dataclass
class FileServer:
    """What the server serves (``files``: name -> bytes), how it misbehaves, and what it was asked."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # name -> HTTP error status to answer
    truncate: dict[str, int] = field(default_factory=dict)  # name -> bytes sent before closing
    ranges: bool = True  # honour Range requests
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 5  # seconds per socket operation: a stuck client cannot hang the test run

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        state: FileServer = self.server.state
        name = self.path.lstrip("/")
        state.requests.append((name, self.headers.get("Range")))
        if name in state.status or name not in state.files:
            self.send_error(state.status.get(name, 404))
            return
        body = state.files[name]
        start = 0
        if state.ranges and (spec := self.headers.get("Range")):
            start = int(spec.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        sent = body[start:]
        if name in state.truncate:
            sent = sent[: state.truncate[name]]
            self.close_connection = True
        self.wfile.write(sent)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def file_server():
    """An HTTP server on 127.0.0.1 (ephemeral port) in a thread, shut down after the test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.state = FileServer(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
