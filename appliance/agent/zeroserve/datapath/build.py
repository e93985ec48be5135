"""Compile and load BPF C with bcc in a child process, and hand the programs back.

bcc links LLVM and clang; a compile leaves hundreds of MB mapped in the process
that ran it. The agent is long-lived, so compiling happens in a short-lived
child: `python -m zeroserve.datapath.build` reads a JSON request on stdin,
compiles, loads each program, pins it into a fresh hand-off directory under
bpffs, prints a JSON reply and exits. The parent opens the pins (taking its own
references), then unlinks the hand-off directory. Maps the program declares with
BPF_TABLE_PINNED are created or reused by bcc at their layout-versioned paths
(pins.py), so they need no hand-off.

The child's stderr (clang diagnostics, the verifier log) becomes BuildError's text.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from zeroserve.datapath import libbpf
from zeroserve.datapath.pins import PinLayout

# A cold compile takes well under 10 s on this hardware; beyond this the child is stuck.
CHILD_TIMEOUT_S = 120.0
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


class BuildError(Exception):
    """Compile, verifier or hand-off failure; str() carries the compiler's own words."""


@dataclass(frozen=True)
class ProgramSpec:
    """One function of the source to load as a program of the given type."""

    function: str
    prog_type: int
    attach_type: int = -1


@dataclass
class LoadedProgram:
    function: str
    fd: int
    info: libbpf.ProgInfo


@dataclass
class Built:
    """Programs loaded by a build; the caller owns the fds (close() releases them)."""

    programs: dict[str, LoadedProgram]

    def fd(self, function: str) -> int:
        return self.programs[function].fd

    def close(self) -> None:
        for prog in self.programs.values():
            if prog.fd >= 0:
                os.close(prog.fd)
                prog.fd = -1

    def __enter__(self) -> Built:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build(
    source: str,
    programs: Iterable[ProgramSpec],
    layout: PinLayout,
    cflags: Iterable[str] = (),
    timeout: float = CHILD_TIMEOUT_S,
) -> Built:
    """Compile source, load programs, return them opened in this process."""
    specs = list(programs)
    handoff = layout.handoff_dir(uuid.uuid4().hex)
    handoff.mkdir(parents=True)
    request = {
        "source": source,
        "cflags": list(cflags),
        "programs": [asdict(s) for s in specs],
        "handoff": str(handoff),
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_PARENT), env.get("PYTHONPATH")]))
    try:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "zeroserve.datapath.build"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise BuildError(f"bcc build child did not finish in {timeout:.0f}s") from err
        if proc.returncode != 0:
            raise BuildError(_diagnostics(proc.stderr) or f"bcc child exited {proc.returncode}")
        loaded: dict[str, LoadedProgram] = {}
        try:
            for spec in specs:
                fd = libbpf.obj_get(handoff / spec.function)
                loaded[spec.function] = LoadedProgram(spec.function, fd, libbpf.prog_info(fd))
        except libbpf.BpfError as err:
            Built(loaded).close()
            raise BuildError(f"hand-off from bcc child failed: {err}") from err
        return Built(loaded)
    finally:
        shutil.rmtree(handoff, ignore_errors=True)


def _diagnostics(stderr: str) -> str:
    """bcc's stderr, less its attempt to modprobe kheaders (no modprobe on the appliance).

    Clang's first errors explain the rest, while a verifier log ends with its
    reason, so long output is cut at the end or at the start accordingly.
    """
    lines = [ln for ln in stderr.splitlines() if ln and "modprobe: not found" not in ln]
    if any(ln.endswith(("error generated.", "errors generated.")) for ln in lines):
        return "\n".join(lines[:40] + lines[-1:] if len(lines) > 41 else lines)
    return "\n".join(lines[-40:])


def _child() -> int:
    from bcc import BPF  # only the child pays for LLVM

    request = json.load(sys.stdin)
    handoff = Path(request["handoff"])
    try:
        bpf = BPF(text=request["source"], cflags=request["cflags"])
        for spec in request["programs"]:
            fn = bpf.load_func(spec["function"], spec["prog_type"], attach_type=spec["attach_type"])
            libbpf.obj_pin(fn.fd, handoff / spec["function"])
    except Exception as err:  # noqa: BLE001 - bcc raises bare Exception; the text is the report
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child())
