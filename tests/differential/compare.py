"""Turning an exchange into the comparable view, and describing how two views differ.

Compared: status code and reason, every response header except Date and Server (names
case-insensitive, the values of one name in their order), body, interim 1xx statuses and how
the connection ended. Normalised away, because they vary by nature and not by behaviour:

- the port each server listens on (the number, in headers and body), since each has its own;
- compressed bodies (gzip, zstd) are compared decompressed, as two correct encoders may emit
  different bytes; Content-Length of such a body is then only compared for presence;
- the random boundary of multipart/byteranges responses, and the Content-Length it affects;
- the random nonce of a Content-Security-Policy (file_server browse pages), in header and body;
- headers a case names with `@ignore-header` (values made from `{time.*}` placeholders),
  whose presence is still compared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from typing import Any

from tests.differential.wire import Exchange, Response

DROPPED = frozenset({"date", "server"})
_BOUNDARY = re.compile(r"boundary=([^;\s]+)")
_NONCE = re.compile(r"'nonce-([^']+)'")

View = dict[str, Any]


def _decompress(encoding: str, body: bytes) -> bytes | None:
    if encoding == "gzip":
        try:
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        except zlib.error:
            return None
    if encoding == "zstd" and shutil.which("zstd"):
        proc = subprocess.run(["zstd", "-dcq"], input=body, capture_output=True)
        return proc.stdout if proc.returncode == 0 else None
    return None


def _response_view(r: Response, port: int, ignore: frozenset[str]) -> View:
    port_re = re.compile(rf"(?<![0-9]){port}(?![0-9])")
    headers: dict[str, list[str]] = {}
    for name, value in r.headers:
        key = name.lower()
        if key in DROPPED:
            continue
        value = "(ignored)" if key in ignore else port_re.sub("{PORT}", value)
        headers.setdefault(key, []).append(value)
    body = r.body
    encoding = headers.get("content-encoding", [""])[-1].lower()
    if encoding in ("gzip", "zstd"):
        plain = _decompress(encoding, body) if body else b""
        if plain is not None:
            body = plain
            if "content-length" in headers:
                headers["content-length"] = ["(compressed)"]
    ctype = headers.get("content-type", [""])[0]
    if ctype.startswith("multipart/byteranges") and (m := _BOUNDARY.search(ctype)):
        boundary = m.group(1)
        consistent = headers.get("content-length") == [str(len(body))]
        headers["content-type"] = [ctype.replace(boundary, "BOUNDARY")]
        body = body.replace(boundary.encode(), b"BOUNDARY")
        if consistent:
            headers["content-length"] = ["(length of the multipart body)"]
    csp = headers.get("content-security-policy", [""])[0]
    for nonce in set(_NONCE.findall(csp)):
        headers["content-security-policy"] = [csp.replace(nonce, "NONCE")]
        body = body.replace(nonce.encode(), b"NONCE")
    body = re.sub(port_re.pattern.encode(), b"{PORT}", body)
    return {
        "status": r.status,
        "reason": r.reason,
        "interim": r.interim,
        "headers": dict(sorted(headers.items())),
        "body": body,
    }


def view(ex: Exchange, port: int, ignore: frozenset[str] = frozenset()) -> View:
    return {
        "responses": [_response_view(r, port, ignore) for r in ex.responses],
        "end": ex.end,
    }


def _short(body: bytes, limit: int = 160) -> str:
    text = repr(body[:limit])
    return text + (f"... ({len(body)} bytes)" if len(body) > limit else "")


def summary(v: View, headers: bool = False) -> str:
    """One line for humans: `404 b'..'` (with `headers`, `404 {name: [values]} b'..'`),
    responses joined by ' | '."""
    parts = []
    for r in v["responses"]:
        interim = "".join(f"{s}+" for s in r["interim"])
        fields = f" {r['headers']}" if headers else ""
        parts.append(f"{interim}{r['status']}{fields} {_short(r['body'], 60)}")
    if v["end"]:
        parts.append(v["end"])
    return " | ".join(parts) or "nothing"


def differences(expected: View, actual: View) -> list[str]:
    """What differs between Caddy's view (`expected`) and zeroserve's, one line per item."""
    out: list[str] = []
    exp_r, act_r = expected["responses"], actual["responses"]
    if len(exp_r) != len(act_r):
        out.append(f"{len(act_r)} responses instead of {len(exp_r)}")
    for i, (e, a) in enumerate(zip(exp_r, act_r, strict=False)):
        at = f"response {i + 1}: " if len(exp_r) > 1 else ""
        for key in ("status", "reason", "interim"):
            if e[key] != a[key]:
                out.append(f"{at}{key} {a[key]!r} instead of {e[key]!r}")
        for name in sorted(set(e["headers"]) | set(a["headers"])):
            ev, av = e["headers"].get(name), a["headers"].get(name)
            if ev != av:
                out.append(f"{at}header {name}: {av!r} instead of {ev!r}")
        if e["body"] != a["body"]:
            out.append(f"{at}body {_short(a['body'])} instead of {_short(e['body'])}")
    if expected["end"] != actual["end"]:
        out.append(f"connection end {actual['end']!r} instead of {expected['end']!r}")
    return out
