"""Compile and load BPF C with bcc in a child process, and hand the programs back.

bcc links LLVM and clang; a compile leaves hundreds of MB mapped in the process
that ran it. The agent is long-lived, so compiling happens in a short-lived
child: `python -m zeroserve.datapath.build` reads a JSON request on stdin,
compiles, loads each program, pins it into a fresh hand-off directory under
bpffs, prints a JSON reply and exits. The parent opens the pins (taking its own
references), then unlinks the hand-off directory.

Maps the program declares with BPF_TABLE_PINNED are made by bcc, fresh, in the
hook's fresh directory (`PinLayout.fresh_dir`, the source's ZS_PIN_DIR): bcc reuses a
pin only by reopening its map id, which takes CAP_SYS_ADMIN. The child then settles
each one by name against the hook's pin directory: a map pinned there already is
opened by path (BPF_OBJ_GET, which CAP_BPF and the pin's owner may do) and the
programs' instructions are pointed at it instead of the fresh one; a map not pinned
there yet is the fresh one, moved there. So rules and counters survive a restart of
an agent that runs without CAP_SYS_ADMIN, as the appliance's does.

The child's stderr (clang diagnostics, the verifier log) becomes BuildError's text.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from zeroserve.datapath import libbpf
from zeroserve.datapath.pins import PinLayout

# A cold compile takes well under 10 s on this hardware; beyond this the child is stuck.
CHILD_TIMEOUT_S = 120.0
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
# The one instruction that names a map: BPF_LD | BPF_DW | BPF_IMM, two slots wide, with
# src_reg BPF_PSEUDO_MAP_FD and the map's fd in the first slot's imm (uapi/linux/bpf.h).
_LD_IMM64 = 0x18
_PSEUDO_MAP_FD = 1
_INSN = struct.Struct("<BBhi")


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
    hook: str | None = None,
) -> Built:
    """Compile source, load programs, return them opened in this process.

    hook: the source pins its maps into `layout.fresh_dir(hook)`, to be settled
    against the hook's pins (see above); None for sources without pinned maps.
    """
    specs = list(programs)
    handoff = layout.handoff_dir(uuid.uuid4().hex)
    handoff.mkdir(parents=True)
    request = {
        "source": source,
        "cflags": list(cflags),
        "programs": [asdict(s) for s in specs],
        "handoff": str(handoff),
    }
    fresh = None
    if hook is not None:
        fresh = layout.fresh_dir(hook)
        # Left by a child killed mid-way; builds of one layout run under its lock.
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        request["maps"] = {"fresh": str(fresh), "pinned": str(layout.hook_dir(hook))}
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
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)


def _diagnostics(stderr: str) -> str:
    """bcc's stderr, less its attempt to modprobe kheaders (no modprobe on the appliance).

    Clang's first errors explain the rest, while a verifier log ends with its
    reason, so long output is cut at the end or at the start accordingly.
    """
    lines = [ln for ln in stderr.splitlines() if ln and "modprobe: not found" not in ln]
    if any(ln.endswith(("error generated.", "errors generated.")) for ln in lines):
        return "\n".join(lines[:40] + lines[-1:] if len(lines) > 41 else lines)
    return "\n".join(lines[-40:])


def _settle_maps(table_fd: Callable[[str], int], fresh: Path, pinned: Path) -> dict[int, int]:
    """Move each fresh map to its pin, or, where one is pinned already, open that one.

    table_fd gives the fd bcc holds for a map; returns fresh fd -> pinned map's fd for
    the maps to swap in the instructions.
    """
    swap = {}
    for path in sorted(fresh.iterdir()):
        fd = table_fd(path.name)
        if fd < 0:
            raise BuildError(f"bcc pinned {path.name} but holds no map of that name")
        target = pinned / path.name
        if target.exists():
            swap[fd] = libbpf.obj_get(target)
        else:
            path.rename(target)
    return swap


def _point_at_maps(insns: ctypes.Array, swap: dict[int, int]) -> None:
    """Rewrite, in place, the map fds the instructions load, as swap says."""
    at = 0
    while at + _INSN.size <= len(insns):
        code, regs, off, imm = _INSN.unpack_from(insns, at)
        if code != _LD_IMM64:
            at += _INSN.size
            continue
        if regs >> 4 == _PSEUDO_MAP_FD and imm in swap:
            _INSN.pack_into(insns, at, code, regs, off, swap[imm])
        at += 2 * _INSN.size


def _child() -> int:
    from bcc import BPF, lib  # only the child pays for LLVM

    request = json.load(sys.stdin)
    handoff = Path(request["handoff"])
    try:
        bpf = BPF(text=request["source"], cflags=request["cflags"])
        swap = {}
        if "maps" in request:
            swap = _settle_maps(
                lambda name: lib.bpf_table_fd(bpf.module, name.encode()),
                Path(request["maps"]["fresh"]),
                Path(request["maps"]["pinned"]),
            )
        for spec in request["programs"]:
            name = spec["function"].encode()
            start = lib.bpf_function_start(bpf.module, name)
            if swap and start:
                # bcc loads the function from this buffer (its own copy, writable: bcc
                # itself wrote the fresh maps' fds into it).
                size = lib.bpf_function_size(bpf.module, name)
                _point_at_maps((ctypes.c_uint8 * size).from_address(start), swap)
            fn = bpf.load_func(spec["function"], spec["prog_type"], attach_type=spec["attach_type"])
            libbpf.obj_pin(fn.fd, handoff / spec["function"])
    except Exception as err:  # noqa: BLE001 - bcc raises bare Exception; the text is the report
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child())
