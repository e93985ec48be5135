"""`zeroserve fmt`: formats a Caddyfile exactly as `caddy fmt` does.

Like Caddy, an unformatted input makes the command exit 1 (after printing the
result or the diff) with an error naming the first line that differs, so CI can
use `zeroserve fmt --diff` as a check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zeroserve.cli.command import Command, CommandError
from zeroserve.cli.config_input import read_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=None, help="Caddyfile ('-' = stdin)")
    p.add_argument("-c", "--config", default=None, help="Configuration file")
    p.add_argument("-w", "--overwrite", action="store_true", help="Overwrite the input file")
    p.add_argument("-d", "--diff", action="store_true", help="Print the differences")


def caddy_diff(before: str, after: str) -> str:
    """Caddy's --diff layout: two-space, '- ' and '+ ' prefixed lines; not a patch."""
    import difflib  # here, not at the top: every verb is imported at CLI start-up

    old, new = before.split("\n"), after.split("\n")
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            out += ["  " + line for line in old[i1:i2]]
            continue
        out += ["- " + line for line in old[i1:i2]]
        out += ["+ " + line for line in new[j1:j2]]
    return "\n".join(out) + "\n"


def first_difference(before: str, after: str) -> int:
    for number, (a, b) in enumerate(zip(before.split("\n"), after.split("\n"), strict=False), 1):
        if a != b:
            return number
    return min(before.count("\n"), after.count("\n")) + 1


def run(args: argparse.Namespace) -> int:
    from zeroserve.caddyfile.format import format_caddyfile

    path = args.path or args.config or "Caddyfile"
    original = read_config(path)
    formatted = format_caddyfile(original)
    if args.overwrite and path != "-":
        Path(path).write_bytes(formatted)
        return 0
    before, after = original.decode(errors="replace"), formatted.decode(errors="replace")
    if args.diff:
        sys.stdout.write(caddy_diff(before, after))
    else:
        sys.stdout.buffer.write(formatted)
    sys.stdout.flush()
    if formatted != original:
        raise CommandError(
            f"{path}:{first_difference(before, after)}: Caddyfile input is not formatted; "
            "Tip: use '--overwrite' to update your Caddyfile in-place instead of previewing it. "
            "Consult '--help' for more options"
        )
    return 0


COMMAND = Command(
    name="fmt",
    usage="[--overwrite] [--diff] [<path>]",
    short="Formats a Caddyfile",
    long="Formats a Caddyfile like `caddy fmt`: to stdout, in place (--overwrite) or as a diff.",
    add_arguments=add_arguments,
    run=run,
)
