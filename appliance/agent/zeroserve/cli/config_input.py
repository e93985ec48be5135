"""Reading `--config` the way Caddy's CLI does: a path, or `-` for standard input."""

from __future__ import annotations

import sys
from pathlib import Path

from zeroserve.cli.command import CommandError


def read_config(path: str) -> bytes:
    """Return the config's bytes; a missing, unreadable or empty file is a CommandError."""
    if path == "-":
        body = sys.stdin.buffer.read()
        name = "stdin"
    else:
        try:
            body = Path(path).read_bytes()
        except FileNotFoundError:
            raise CommandError(
                f"reading config file: open {path}: no such file or directory"
            ) from None
        except IsADirectoryError:
            raise CommandError(f"reading config file: read {path}: is a directory") from None
        except PermissionError:
            raise CommandError(f"reading config file: open {path}: permission denied") from None
        except OSError as exc:
            raise CommandError(f"reading config file: {path}: {exc.strerror}") from None
        name = path
    if not body.strip():
        raise CommandError(f"reading config file: {name} is empty")
    return body


def config_filename(path: str) -> str:
    """The file name errors cite (`Caddyfile:6: ...`), as Caddy's adapter does."""
    return "stdin" if path == "-" else path
