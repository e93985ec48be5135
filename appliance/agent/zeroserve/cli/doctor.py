"""`zeroserve doctor`: checks everything the appliance needs from the kernel and the box."""

from __future__ import annotations

import argparse
import sys

from zeroserve.cli.command import Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    del p  # no flags: every check always runs


def run(args: argparse.Namespace) -> int:
    from zeroserve.doctor import render_table, run_checks

    results = run_checks()
    sys.stdout.write(render_table(results))
    return 0 if all(r.ok for r in results) else 1


COMMAND = Command(
    name="doctor",
    usage="",
    short="Checks the kernel and the box for what zeroserve needs",
    long="Probes BPF, bpffs, bcc, XDP, TC, sk_lookup, io_uring and limits; exit 1 on any failure.",
    add_arguments=add_arguments,
    run=run,
)
