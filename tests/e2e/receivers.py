"""A webhook receiver for tests and benches: one HTTP server on 127.0.0.1, a thread per request.

``on_post(path, headers, body)`` records the request and answers its status (it may sleep first, to
play a receiver that hangs); a thread per request means a hanging path holds up no other.
:class:`OriginPerPath` gives each path a server (an origin) of its own, as separate receiving hosts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OnPost = Callable[[str, dict[str, str], bytes], int]


def serve_receivers(on_post: OnPost) -> ThreadingHTTPServer:
    """The running server (``server_address[1]`` is its port); ``shutdown()`` stops it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            status = on_post(self.path, dict(self.headers.items()), body)
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up waiting (a hanging receiver)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class OriginPerPath:
    """A server per path, made at its first URL: webhooks shares delivery slots and pauses per origin, so
    paths that are to behave as separate receiving hosts need origins of their own."""

    def __init__(self, on_post: OnPost) -> None:
        self._on_post = on_post
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        with self._lock:
            if path not in self._servers:
                self._servers[path] = serve_receivers(self._on_post)
            port = self._servers[path].server_address[1]
        return f"http://127.0.0.1:{port}{path}"

    def shutdown(self) -> None:
        with self._lock:
            for server in self._servers.values():
                server.shutdown()
