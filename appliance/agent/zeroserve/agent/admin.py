"""The admin endpoint, shaped like Caddy's (admin.go): `POST /load`, `GET /config/`, `POST /stop`,
plus read-only views (`GET /metrics`, `GET /zeroserve/status`) and deletions
(`DELETE /zeroserve/cache`).

It is the control plane, so it runs in Python on its own thread; requests to the sites
never pass through it. Behaviour kept from Caddy:
- listens on `localhost:2019` unless the config's `admin.listen` says otherwise, and not at
  all with `admin.disabled`; a new config that moves the address moves the endpoint;
- Host (and Origin, when sent) must name the listen address, so a web page cannot drive it;
- `/load` takes JSON, or any adapter by `Content-Type: text/<adapter>`; an unchanged config is
  not reloaded unless `Cache-Control: must-revalidate`; a rejected config keeps the old one
  serving and answers 400 with `{"error": ...}`;
- every response is JSON, except Go's plain `404 page not found`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from zeroserve.caddyjson.encode import encode

DEFAULT_ADDRESS = "localhost:2019"
MAX_BODY = 100 * 1024 * 1024
ConfigLoader = Callable[[bytes, str | None, bool], list[dict[str, Any]]]
# GET path -> (content type, body): read-only reports such as /metrics.
Views = Mapping[str, Callable[[], tuple[str, bytes]]]
# DELETE path -> (query string -> (content type, body)): e.g. purging the response cache.
Deletes = Mapping[str, Callable[[str], tuple[str, bytes]]]


class AdminError(Exception):
    """An error with the HTTP status the admin API answers it with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def admin_address(config: dict[str, Any]) -> str | None:
    """Where the config wants the admin endpoint, or None when it is disabled."""
    admin = config.get("admin") or {}
    if admin.get("disabled"):
        return None
    return admin.get("listen") or DEFAULT_ADDRESS


def split_address(address: str) -> tuple[str, int]:
    address = address.removeprefix("tcp/")
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"invalid admin address {address!r}: no port") from None
    return host.strip("[]"), number


def allowed_hosts(address: str) -> set[str]:
    """Host values that may reach a loopback admin endpoint (Caddy's default origins)."""
    host, port = split_address(address)
    names = {host, "localhost", "127.0.0.1", "::1"} if host in {"", "localhost"} else {host}
    if host in {"127.0.0.1", "::1"}:
        names |= {"localhost", "127.0.0.1", "::1"}
    allowed = set()
    for name in names:
        shown = f"[{name}]" if ":" in name else name
        allowed |= {f"{shown}:{port}", shown}
    return allowed


class AdminServer:
    """One admin listener; `move_to` follows config changes of `admin.listen`."""

    def __init__(
        self,
        get_config: Callable[[], dict[str, Any]],
        load: ConfigLoader,
        stop: Callable[[], None],
        views: Views | None = None,
        deletes: Deletes | None = None,
    ) -> None:
        self._get_config = get_config
        self._load = load
        self._stop = stop
        self.views = dict(views or {})
        self.deletes = dict(deletes or {})
        self._server: ThreadingHTTPServer | None = None
        self.address: str | None = None

    def move_to(self, address: str | None) -> None:
        """(Re)bind to `address`; None closes the endpoint. Bind errors propagate (OSError)."""
        if address == self.address:
            return
        old = self._server
        self._server, self.address = None, address
        if address is not None:
            host, port = split_address(address)
            try:
                server = ThreadingHTTPServer((host or "localhost", port), self._handler_class())
            except OSError as exc:
                # Name the endpoint, as Caddy does: a port clash is otherwise a riddle.
                why = (exc.strerror or str(exc)).lower()
                raise OSError(f"admin endpoint: listen tcp {address}: bind: {why}") from None
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name="admin", daemon=True).start()
            self._server = server
        if old is not None:
            # Closing from a request thread would deadlock on serve_forever's shutdown wait.
            threading.Thread(target=_close, args=(old,), daemon=True).start()

    def close(self) -> None:
        """Close the endpoint and free its port before returning (so a caller may bind it
        again at once); never from a request thread."""
        old = self._server
        self._server, self.address = None, None
        if old is not None:
            _close(old)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        admin = self

        class Handler(_AdminHandler):
            server_admin = admin

        return Handler


def _close(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def _etag(path: str, body: bytes) -> str:
    return f'"{path} {hashlib.sha256(body).hexdigest()[:16]}"'


def _config_at(config: Any, path: str) -> Any:
    """The value at a /config/ path (object keys or array indexes), as Caddy resolves it."""
    node = config
    for part in [p for p in path.split("/") if p]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise AdminError(400, f"unknown object path: /config/{path}")
    return node


class _AdminHandler(BaseHTTPRequestHandler):
    server_admin: AdminServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        """Silence http.server's per-request stderr lines; the agent logs what matters."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            self._check_origin()
            path = self.path.split("?", 1)[0]
            if path == "/load":
                self._require(method, "POST")
                self._load()
            elif path == "/stop":
                self._require(method, "POST")
                self._send(200, b"", None)
                self.server_admin._stop()
            elif path == "/config" or path.startswith("/config/"):
                self._require(method, "GET")
                self._get_config(path.removeprefix("/config").lstrip("/"))
            elif path in self.server_admin.deletes and method == "DELETE":
                query = self.path.split("?", 1)[1] if "?" in self.path else ""
                content_type, body = self.server_admin.deletes[path](query)
                self._send(200, body, content_type)
            elif path in self.server_admin.views:
                self._require(method, "GET")
                content_type, body = self.server_admin.views[path]()
                self._send(200, body, content_type)
            else:
                self._send(
                    404,
                    b"404 page not found\n",
                    "text/plain; charset=utf-8",
                    {"X-Content-Type-Options": "nosniff"},
                )
        except AdminError as err:
            self._send_error(err.status, str(err))

    def _require(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise AdminError(405, "method not allowed")

    def _check_origin(self) -> None:
        address = self.server_admin.address or DEFAULT_ADDRESS
        allowed = allowed_hosts(address)
        host = self.headers.get("Host", "")
        if host not in allowed:
            raise AdminError(403, f"host not allowed: {host}")
        origin = self.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1].rstrip("/") not in allowed:
            raise AdminError(403, f"client is not allowed to access from origin '{origin}'")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise AdminError(413, "request body too large")
        return self.rfile.read(length)

    def _load(self) -> None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type in {"", "application/json"}:
            adapter = None
        elif content_type.startswith("text/"):
            adapter = content_type.removeprefix("text/")
        else:
            raise AdminError(400, f"unrecognized config adapter '{content_type}'")
        force = "must-revalidate" in (self.headers.get("Cache-Control") or "")
        warnings = self.server_admin._load(self._body(), adapter, force)
        body = encode({"warnings": warnings}, pretty=False) + b"\n" if warnings else b""
        self._send(
            200, body, "text/plain; charset=utf-8" if body else None, {"Connection": "close"}
        )

    def _get_config(self, path: str) -> None:
        value = _config_at(self.server_admin._get_config(), path)
        body = encode(value, pretty=False) + b"\n"
        self._send(200, body, "application/json", {"Etag": _etag("/config/" + path, body)})

    def _send_error(self, status: int, message: str) -> None:
        body = encode({"error": message}, pretty=False) + b"\n"
        self._send(status, body, "application/json", {"Connection": "close"})

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if (headers or {}).get("Connection") == "close":
            self.close_connection = True
