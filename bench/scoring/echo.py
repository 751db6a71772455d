"""The HTTP layer alone: our ``HttpServer`` (uvloop + httptools) with a handler that answers every request
with a fixed body, without parsing it. Its throughput is the most any model can get from one worker.

    PYTHONPATH=scoring-image python bench/scoring/echo.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from scoring.config import Settings
from scoring.http import HttpServer, make_socket

ANSWER = b'{"predictions": [0]}'


class Echo:
    def handle(self, req) -> None:
        req.respond(200, ANSWER)

    def too_large(self, req) -> None:
        req.respond(413, b"{}")

    def protocol_error(self, req, status: int) -> None:
        return None


async def main(port: int) -> None:
    server = HttpServer(Echo(), Settings())
    await server.start(make_socket("127.0.0.1", port))
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
