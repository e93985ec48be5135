"""`zeroserve version`."""

from __future__ import annotations

import argparse
import sys

from zeroserve.cli.command import Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    del p


def run(args: argparse.Namespace) -> int:
    from zeroserve import __version__

    sys.stdout.write(f"v{__version__}\n")
    return 0


COMMAND = Command(
    name="version",
    usage="",
    short="Prints the version",
    long="Prints the version.",
    add_arguments=add_arguments,
    run=run,
)
