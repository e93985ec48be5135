"""Entry point: the table of verbs, argument parsing and Caddy-style errors.

Every failure a user can cause ends as one `Error: ...` line on stderr and exit
status 1; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys

from zeroserve.cli import (
    adapt,
    doctor,
    fmt,
    plan,
    reload,
    run,
    start,
    status,
    stop,
    validate,
    version,
)
from zeroserve.cli.command import Command, CommandError

COMMANDS: tuple[Command, ...] = (
    adapt.COMMAND,
    doctor.COMMAND,
    fmt.COMMAND,
    plan.COMMAND,
    reload.COMMAND,
    run.COMMAND,
    start.COMMAND,
    status.COMMAND,
    stop.COMMAND,
    validate.COMMAND,
    version.COMMAND,
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage mistakes as one Caddy-style line, exit 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zeroserve", description="Caddy-compatible edge web server appliance")
    verbs = parser.add_subparsers(dest="verb", metavar="<command>", parser_class=_Parser)
    for command in COMMANDS:
        sub = verbs.add_parser(
            command.name,
            help=command.short,
            description=command.long,
            usage=f"zeroserve {command.name} {command.usage}".rstrip(),
        )
        command.add_arguments(sub)
        sub.set_defaults(command=command)
    return parser


def _front_end_errors() -> tuple[type[BaseException], ...]:
    """Errors whose text is already Caddy's message (`Caddyfile:6: ...`)."""
    from zeroserve.caddyfile.errors import CaddyfileError

    return (CaddyfileError,)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        if argv and not argv[0].startswith("-") and argv[0] not in {c.name for c in COMMANDS}:
            raise CommandError(f'unknown command "{argv[0]}" for "zeroserve"')
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help()
            return 0
        return args.command.run(args)
    except CommandError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except _front_end_errors() as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
