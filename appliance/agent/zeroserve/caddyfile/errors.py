"""The one error type of the Caddyfile front end.

`str(err)` is exactly the text Caddy v2.11.7 reports for the same input, so the
CLI can print `Error: {err}` and match `caddy adapt` byte for byte.
"""

from __future__ import annotations


class CaddyfileError(Exception):
    """A lexer, parser or adapter error; the message carries its own location."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
