"""The reference `caddy adapt` as the oracle for directive and matcher unmarshalers.

`assert_adapts_like_caddy(caddyfile, workdir)` writes the Caddyfile, adapts it with
the real Caddy binary and with zeroserve, and requires the same outcome: the same
JSON bytes (compact, key order included), or the same error message.
"""

from __future__ import annotations

from pathlib import Path

from tests.caddyfile.oracle import caddy_adapt_output
from zeroserve.adapt import adapt_caddyfile
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import encode


def zeroserve_adapt(workdir: Path, monkeypatch: object) -> tuple[bytes | None, str | None]:
    """The same as `caddy_adapt_output`, from our adapter (run with `workdir` as cwd)."""
    monkeypatch.chdir(workdir)  # type: ignore[attr-defined]
    body = (workdir / "Caddyfile").read_bytes()
    try:
        result = adapt_caddyfile(body, "Caddyfile")
    except CaddyfileError as exc:
        return None, str(exc)
    return encode(result.config, False), None


def assert_adapts_like_caddy(caddyfile: str, workdir: Path, monkeypatch: object) -> None:
    (workdir / "Caddyfile").write_text(caddyfile)
    expected = caddy_adapt_output(workdir)
    got = zeroserve_adapt(workdir, monkeypatch)
    if expected[1] is not None:
        assert got[1] == expected[1], f"caddy failed with: {expected[1]}\nwe gave: {got}"
    else:
        assert got[1] is None, f"caddy adapted it, we failed: {got[1]}"
        assert got[0] == expected[0]


def site(body: str) -> str:
    """A one-site Caddyfile on :80 with `body` inside its block."""
    return ":80 {\n" + body.strip("\n") + "\n}\n"
