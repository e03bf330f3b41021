"""A webhook receiver that answers 200 one byte at a time, for the chaos suite.

Every path of the server is a receiver that reads the whole request, then sends its status line and
headers one byte every ``byte_every_s`` seconds: the answer never completes within a delivery
attempt's deadline, so each attempt to it holds a delivery slot for that whole deadline, the worst a
receiver can do without ever refusing anything.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class TricklingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, byte_every_s: float) -> None:
        self.byte_every_s = byte_every_s
        self.requests: list[tuple[str, float]] = []  # (path, when it arrived)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Trickle)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self) -> int:
        with self.lock:
            return len(self.requests)


class _Trickle(BaseHTTPRequestHandler):
    server: TricklingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        with self.server.lock:
            self.server.requests.append((self.path, time.time()))
        self.close_connection = True
        for byte in ANSWER:
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return  # the sender gave up on the attempt
            time.sleep(self.server.byte_every_s)

    def log_message(self, *args: object) -> None:
        pass


def serve_trickling(byte_every_s: float = 2.5) -> TricklingServer:
    """The running server; ``shutdown()`` stops it taking requests (answers under way go on trickling)."""
    server = TricklingServer(byte_every_s)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
