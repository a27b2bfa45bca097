"""A local HTTP server for inputs read by URL; on a plan per path, it misbehaves as busy
CommonCrawl servers do.

Each request to a path takes the next step of its plan (then "full" once the plan is spent):
  "503"           Service Unavailable (Retry-After: 0)
  "cut:N"         the answer's headers announce the whole body, N bytes of it are sent, then the
                  connection closes
  "ignore-range"  the whole file with 200, whatever Range asked for
  "full"          the file, or the range asked for (206 with Content-Range)
  "moved:PATH"    301 to PATH
"""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path not in server.files:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = server.files[self.path]
        plan = server.plans.get(self.path) or []
        step = plan.pop(0) if plan else "full"
        if step == "503":
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if step.startswith("moved:"):
            self.send_response(301)
            self.send_header("Location", step.split(":", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        asked = self.headers.get("Range")
        start = 0
        if asked and step != "ignore-range":
            start = int(asked.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if step.startswith("cut:"):
            self.wfile.write(body[: int(step.split(":")[1])])
            self.close_connection = True
            return
        self.wfile.write(body)


@contextmanager
def flaky_server(files: dict[str, bytes], plans: dict[str, list[str]] | None = None):
    """Serves `files` ({"/path": bytes}) on 127.0.0.1; yields (base URL, server), whose
    `requests` lists (path, Range header) in order and whose `plans` may be changed."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.plans, server.requests = files, dict(plans or {}), []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
