"""Where zeroserve's BPF objects live in bpffs, and the bpffs mount itself.

Maps outlive programs: each layer's maps are pinned by name under
`<root>/v<LAYOUT_VERSION>/<hook>/`, so counters and rule sets survive a reload and
a restarted agent finds them. bcc does not check a pinned map's key or value
layout against the program that reuses it, so LAYOUT_VERSION must change
whenever a struct in appliance/bpf/include/structs.h or a map definition changes;
old versions are then unused and `remove_stale_versions` unlinks them.

The rendered programs do not pin into the hook directory themselves: bcc would
reopen an existing pin by map id (BPF_MAP_GET_FD_BY_ID, which needs CAP_SYS_ADMIN,
not the CAP_BPF the unit grants). They pin into an empty directory of fresh maps,
and the build child points the programs at the hook's pins, opened by path (see
build.py). Programs are pinned only briefly, in a hand-off directory, to pass them
from the build child to the agent. Both directories sit under `handoff/`.

Beside the versions: `owner` (the running agent's claim), `sysctls`, the
namespace settings SYN cookies replaced (syncookie.py), and `xdp-attached`, the
XDP program on the interfaces, which outlive the layout.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zeroserve.datapath.capabilities import CAP_SYS_ADMIN, has_capability

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "zeroserve"
LAYOUT_VERSION = 6
_VERSION = re.compile(r"v\d+")


class BpffsError(OSError):
    """bpffs is missing at the expected path and could not be mounted."""

    def __str__(self) -> str:
        return self.strerror


def bpffs_mounted(path: Path = BPFFS, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """True if a bpf filesystem is mounted exactly at path."""
    target = os.path.realpath(path)
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        # Mount points escape blanks as octal; ours never contain any.
        if fields[4] == target and fields[sep + 1] == "bpf":
            return True
    return False


def ensure_bpffs(path: Path = BPFFS) -> bool:
    """Mount bpffs at path unless it is there; returns True if this call mounted it."""
    if bpffs_mounted(path):
        return False
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BpffsError(err.errno, f"cannot create {path}: {err.strerror}") from err
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(b"bpf", os.fsencode(path), b"bpf", 0, None) != 0:
        code = ctypes.get_errno()
        text = f"bpffs is not mounted at {path}, and mounting it failed: {os.strerror(code)}"
        if code == errno.EPERM and not has_capability(CAP_SYS_ADMIN):
            text += " (mounting takes CAP_SYS_ADMIN: mount it before the agent starts)"
        raise BpffsError(code, text)
    return True


@dataclass(frozen=True)
class PinLayout:
    """Pin paths for one root; tests use their own root so they never touch the host's."""

    root: Path = PIN_ROOT
    version: int = LAYOUT_VERSION

    @property
    def base(self) -> Path:
        return self.root / f"v{self.version}"

    def hook_dir(self, hook: str) -> Path:
        return self.base / hook

    def map_path(self, hook: str, name: str) -> Path:
        return self.hook_dir(hook) / name

    @property
    def sysctls_pin(self) -> Path:
        return self.root / "sysctls"

    @property
    def xdp_pin(self) -> Path:
        """The XDP program the running agent has attached (edge.py)."""
        return self.root / "xdp-attached"

    def handoff_dir(self, nonce: str) -> Path:
        return self.base / "handoff" / nonce

    def fresh_dir(self, hook: str) -> Path:
        """Where a build of the hook's programs pins the maps bcc makes (ZS_PIN_DIR)."""
        return self.base / "handoff" / f"maps-{hook}"

    def prepare(self, hook: str) -> Path:
        """Create the hook's pin directory (bcc pins maps into it but does not mkdir)."""
        directory = self.hook_dir(hook)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise changes to pinned state between agents, CLI runs and tests."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def remove_unused(self, hook: str, keep: set[str]) -> list[str]:
        """Unlink the hook's map pins not in keep (features the plan no longer uses)."""
        directory = self.hook_dir(hook)
        if not directory.is_dir():
            return []
        removed = sorted(p.name for p in directory.iterdir() if p.name not in keep)
        for name in removed:
            (directory / name).unlink()
        return removed

    def remove_stale_versions(self) -> list[str]:
        """Unlink every pin under layout versions other than ours."""
        if not self.root.is_dir():
            return []
        stale = sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _VERSION.fullmatch(p.name) and p.name != self.base.name
        )
        for name in stale:
            shutil.rmtree(self.root / name)
        return stale

    def remove_handoffs(self) -> None:
        """Unlink hand-off pins a build left behind when its parent died mid-way."""
        shutil.rmtree(self.base / "handoff", ignore_errors=True)

    def claim(self) -> int | None:
        """Claim the pinned state for one agent's lifetime: a held lock on a directory
        beside the versions, released by the kernel when the agent exits or dies.

        Returns the fd that holds the claim, or None if a live agent holds it.
        """
        owner = self.root / "owner"
        owner.mkdir(parents=True, exist_ok=True)
        fd = os.open(owner, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def remove_all(self) -> None:
        """Unlink every pin under root (tests' teardown; `zeroserve` uninstall)."""
        if self.root.exists():
            shutil.rmtree(self.root)
