"""What every verb module provides, and the error every verb may raise.

Modelled on Caddy's `RegisterCommand`: a name, a usage line, a one-line summary and
long help, with the body kept thin so the work stays in library code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


class CommandError(Exception):
    """A user-facing failure: printed as one `Error: ...` line, exit status 1."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    short: str
    long: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
