"""A local HTTPS endpoint that answers like the Log Analytics query API (``POST /v1/workspaces/<id>/query``).

Each answer is taken from ``answers`` in order (then ``default``): a ``(status, body, headers)`` triple. Every
request's body (query, timespan) and headers are recorded. TLS with a self-signed certificate for
``IP:127.0.0.1`` (bearer tokens are refused over plain HTTP by azure-core).
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.emulators.acr import FakeCredential, make_certificate

__all__ = ["LogAnalyticsEmulator", "FakeCredential", "table"]


def table(columns: list[tuple[str, str]], rows: list[list]) -> dict:
    return {"name": "PrimaryResult", "columns": [{"name": n, "type": t} for n, t in columns], "rows": rows}


@dataclass
class LogAnalyticsEmulator:
    directory: Path
    answers: list[tuple[int, dict, dict]] = field(default_factory=list)
    default: tuple[int, dict, dict] = (200, {"tables": [table([("t", "datetime")], [])]}, {})
    requests: list[dict] = field(default_factory=list)

    def start(self) -> LogAnalyticsEmulator:
        cert, key = make_certificate(self.directory)
        self.ca = str(cert)
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with emulator.lock:
                    emulator.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                    status, answer, headers = emulator.answers.pop(0) if emulator.answers else emulator.default
                if not self.path.split("?")[0].startswith("/v1/workspaces/") or not self.path.split("?")[0].endswith(
                    "/query"
                ):
                    status, answer, headers = 404, {"error": {"code": "PathNotFound", "message": self.path}}, {}
                if self.headers.get("Authorization") != "Bearer aad-token":
                    status, answer, headers = 401, {"error": {"code": "InvalidToken", "message": "no token"}}, {}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
