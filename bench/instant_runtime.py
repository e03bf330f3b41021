"""A stand-in for sd-runtime that answers at once, for measuring the middleware alone.

Serves the SageMaker container contract (``GET /ping``, ``POST /invocations``)
on ``SAGEMAKER_BIND_TO_PORT`` and answers every invocation with one 8x8 image
in the A1111 shape. Not a runtime: it never looks at the request.
"""

from __future__ import annotations

import base64
import io
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def _answer() -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 255)).save(picture, format="PNG")
    image = base64.b64encode(picture.getvalue()).decode()
    return json.dumps({"images": [image], "parameters": {"seed": 1}, "info": json.dumps({"seed": 1})}).encode()


ANSWER = _answer()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._reply(200 if self.path == "/ping" else 404, b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._reply(200 if self.path == "/invocations" else 404, ANSWER)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    host = os.environ.get("SD_RUNTIME_HOST", "127.0.0.1")
    ThreadingHTTPServer((host, int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))), Handler).serve_forever()
