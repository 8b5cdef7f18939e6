"""Fixtures for the reports tests: a request-counting local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from reports_testkit import CountingServer


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    record: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            record.append("connect")
            super().setup()

        def do_GET(self) -> None:
            record.append(f"GET {self.path}")
            body = b"SSRF-CANARY-FROM-HTTP"
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield CountingServer(port=server.server_address[1], connections=record)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
