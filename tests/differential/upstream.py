"""The backend that reverse_proxy and forward_auth cases proxy to: one echo server for both.

Both Caddy and zeroserve reach the same `{UPSTREAM}` (127.0.0.1:port), so whatever they send
upstream shows up in their responses and gets compared. Python's own http.server, answering:

- `/status/NNN...`: status NNN;
- `/set-header/NAME/VALUE...`: that response header added;
- anything else: 200.

The body is the request as received: method, target, headers sorted by name (minus the ones
that vary per connection), then the body.
"""

from __future__ import annotations

import re
import threading
from http.server import ThreadingHTTPServer

from tests.support import QuietHandler

# The proxy's own outbound connection details, not behaviour under test.
_UNECHOED = frozenset({"connection", "keep-alive"})
_STATUS = re.compile(r"^/status/(\d{3})")
_SET_HEADER = re.compile(r"^/set-header/([A-Za-z0-9-]+)/([^/?]*)")


class _Echo(QuietHandler):
    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes:
        # Read all of it, chunked too: leftovers would be taken for the next request on
        # this kept-alive connection.
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return body
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self) -> None:
        body = self._body()
        lines = [f"{self.command} {self.path}"]
        lines += sorted(
            f"{k.lower()}: {v}" for k, v in self.headers.items() if k.lower() not in _UNECHOED
        )
        out = ("\n".join(lines) + "\n\n").encode() + body
        status = int(m.group(1)) if (m := _STATUS.match(self.path)) else 200
        self.send_response(status)
        if m := _SET_HEADER.match(self.path):
            self.send_header(m.group(1), m.group(2))
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _answer

    def version_string(self) -> str:
        return "echo"

    def date_time_string(self, timestamp: float | None = None) -> str:
        # A fixed date, so a proxy passing it through does not vary.
        return "Mon, 01 Jan 2024 00:00:00 GMT"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # several proxies connect at once

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a proxy hanging up early (after HEAD, say) is its business, shown in its
        response; a traceback here would only clutter the test output."""


class Upstream:
    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Echo)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
